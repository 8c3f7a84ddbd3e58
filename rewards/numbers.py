r"""Plain numbers and fractions, compared exactly in Python: the fast path of
:func:`rewards.verify.answers_match`, whose module docstring states the equivalence rules (E-notation,
percent readings, exact fractions, decimal tolerance).

>>> numbers_match(as_number("$1,234."), as_number("1234")), numbers_match(as_number("0.333333"), as_number(r"\frac{1}{3}"))
(True, False)
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import NamedTuple

__all__ = ["ABS_TOL", "REL_TOL", "Number", "as_number", "numbers_match"]

ABS_TOL, REL_TOL = Fraction(1, 10**6), Fraction(1, 10**9)  # between two decimals
_DECIMAL_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,3})?")
_FRACTION_RES = (
    re.compile(r"(?P<sign>[+-]?)\\[dt]?frac\{(?P<num>[^{}]+)\}\{(?P<den>[^{}]+)\}"),
    re.compile(r"(?P<sign>[+-]?)\\[dt]?frac(?P<num>\d)(?P<den>\d)"),
    re.compile(r"(?P<sign>)(?P<num>[^/]+)/(?P<den>[^/]+)"),
)
_THOUSANDS_RE = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_UNIT_RE = re.compile(r"(?<=[\d.%$])(?:\s+[A-Za-z]{2,}\.?)+\s*$")
_SCALE_WORDS = {"hundred", "thousand", "million", "billion", "trillion", "dozen"}


class Number(NamedTuple):
    value: Fraction
    exact: bool  # a fraction (compared exactly), not a decimal
    percent: bool  # written with a % sign


def _as_decimal(s: str) -> Fraction | None:
    if not _DECIMAL_RE.fullmatch(s):
        return None
    try:
        return Fraction(Decimal(s))
    except (InvalidOperation, ValueError, OverflowError):
        return None


def as_number(s: str) -> Number | None:
    r"""A plain number or fraction (see the module docstring) after stripping ``$``, thousands
    commas, spaces, a final ``.``, ``%`` and trailing plain-word units of two letters or more."""
    t = s.strip()
    t = t.replace("{,}", ",")  # LaTeX thousands separator 1{,}234
    percent = "%" in t
    for junk in ("\\$", "$", "\\%", "%", "\\!", "\\,", "\\;", "\\ "):
        t = t.replace(junk, "")
    t = re.sub(r"\\(?:text|mbox|mathrm)\{([^{}]*)\}", r" \1", t)  # "18\text{ dollars}"
    unit = _UNIT_RE.search(t)  # "18 dollars", "5 cm per day": drop plain-word units
    if unit and not _SCALE_WORDS & set(unit.group(0).lower().split()):
        t = t[: unit.start()]
    t = re.sub(r"\s+", "", t).rstrip(".")
    if _THOUSANDS_RE.fullmatch(t):
        t = t.replace(",", "")
    value = _as_decimal(t)
    if value is not None:
        return Number(value, False, percent)
    for rx in _FRACTION_RES:
        m = rx.fullmatch(t)
        if m:
            num, den = _as_decimal(m["num"]), _as_decimal(m["den"])
            if num is None or not den:
                return None
            return Number(num / den * (-1 if m["sign"] == "-" else 1), True, percent)
    return None


def numbers_match(a: Number, b: Number) -> bool:
    """The fast-path rules of the module docstring (percent readings, exact fractions, tolerance)."""
    readings = [(a.value, b.value)]
    if a.percent != b.percent:  # exactly one side says %: it also reads as value / 100
        readings.append((a.value / 100, b.value) if a.percent else (a.value, b.value / 100))
    for x, y in readings:
        if x == y:
            return True
        if a.exact or b.exact or (x.denominator == 1 and y.denominator == 1):
            continue  # fractions and two integers compare exactly (rel_tol would equate 10**9, 10**9+1)
        if abs(x - y) <= max(ABS_TOL, REL_TOL * max(abs(x), abs(y))):
            return True
    return False
