r"""Answer verification: gold parsing, answer extraction, equivalence (length plays no part here).

* :func:`parse_gold` - the reference answer from a dataset row (GSM8K ``#### 42``, MATH
  ``\boxed{...}``, or raw text).
* :func:`extract_answer` - the model's final answer: text after the last ``</think>`` (DLER,
  arXiv 2510.15110, reads the answer after ``</think>``), then the last ``\boxed{}``, else the last
  task pattern (``#### X``, toy-task ``A:X``, "answer is X"), else optionally the last number.
* :func:`answers_match` - plain numbers and fractions are compared in Python (fast path, :mod:`rewards.numbers`);
  anything else goes to ``math_verify`` (HF Math-Verify) under a time limit.
* :func:`is_correct` - extract + match; :func:`verify_batch` - the same for a whole batch, with
  Math-Verify in a pool of worker processes.

Bounded extraction. Only the last :data:`MAX_SCAN_CHARS` characters (after the delimiter, with
long whitespace runs collapsed) are examined, and every step is linear in them: one pass pairs the braces for :func:`last_boxed`, and
the default patterns have no two adjacent quantifiers that can split one run of characters (the
old ``(.+?)\s*$`` and ``^[\s*#]*`` were quadratic: 40,000 newlines took 50 s). Extraction of any
completion takes milliseconds (``scripts/bench_verify.py`` fuzzes it); answers longer than
:data:`MAX_ANSWER_CHARS` count as wrong.

Equivalence rules of the fast path (each checked against Math-Verify 0.9 and the MATH/GSM8K
graders; ``tests/test_verify.py`` pins them):

* A plain number is a decimal with optional sign, thousands commas, ``$``, a trailing ``.`` and
  plain-word units (``18 dollars``; not ``18 million``); a fraction is ``a/b`` or
  ``\frac{a}{b}`` (``\dfrac``, ``\tfrac``, ``\frac12``) of plain numbers.
* Scientific notation is a number: ``1.5e3`` = ``1500``. Math-Verify accepts ``1.5E3`` but reads
  ``1.5e3`` as 1.5 * 3 * Euler's e; a digits-``e``-digits final answer means 10^3 (as Python's
  ``float`` and Qwen2.5-Math's grader read it). The MATH reference grader (string equality after
  normalisation) rejects both spellings; GSM8K golds never use it.
* Percent: when exactly one side carries ``%``, both readings count: ``50%`` = ``50`` (GSM8K golds
  drop the sign; the MATH grader strips ``\%``) and ``50%`` = ``0.5`` (Math-Verify reads ``%`` as
  /100 and accepts both, as here). Without a ``%``, ``0.5`` and ``50`` differ.
* Exactness: a fraction is compared exactly, so ``0.333333`` is NOT ``\frac{1}{3}`` (Math-Verify
  rounds to 6 decimals and accepts it; the MATH grader rejects it; a non-terminating value must be
  given exactly) while ``0.5`` = ``\frac{1}{2}``. Two integers compare exactly; two decimals
  within ``abs_tol=1e-6`` / ``rel_tol=1e-9`` (print noise such as ``0.30000000000000004``).
  Inside larger expressions (``x = 0.333333``) Math-Verify's own rules apply.

Time limits of the ``math_verify`` path (:func:`math_verify_match`). Math-Verify's own timeouts
use ``signal.alarm``: they only work in the main thread, take whole seconds (a float such as
``5.0`` makes ``parse`` silently return ``[]`` and ``verify`` return ``False``), and each call
(two parses, each comparison) gets its own alarm. Hence:

* main thread: run in-process with Math-Verify's alarms, each call given the whole seconds left
  of ``timeout`` (so the total stays within about ``timeout + 1`` s). Note: ``signal.alarm(0)``
  cancels any SIGALRM alarm the caller had pending. :func:`is_correct` counts the extraction
  against the same ``timeout``.
* :func:`verify_batch`, any other thread, or ``isolate=True``: a pool of worker processes
  (:mod:`rewards.verify_pool`; their main threads run the alarms); an item not answered within
  ``timeout + 2`` s has its worker killed and replaced, and counts as wrong.

Every error in the ``math_verify`` path counts as "no match" (``False``).
"""

from __future__ import annotations

import logging
import math
import re
import signal
import threading
import time
from collections.abc import Sequence

from .numbers import as_number, numbers_match
from .verify_pool import WorkerPool

__all__ = [
    "DEFAULT_PATTERNS",
    "GOLD_FORMATS",
    "answers_match",
    "extract_answer",
    "is_correct",
    "last_boxed",
    "math_verify_match",
    "parse_gold",
    "verify_batch",
]

log = logging.getLogger(__name__)

GOLD_FORMATS = ("auto", "gsm8k", "boxed", "raw")

#: Task patterns of :func:`extract_answer`; group 1 is the answer. The match that starts last wins.
#: Linear-time by construction (see the module docstring): keep it so when adding one.
DEFAULT_PATTERNS: tuple[str, ...] = (
    r"####\s*([^\n]+)",  # GSM8K
    r"\bA:\s*(-?[\d,]*\.?\d+)",  # the overthinking toy: "...check1:3+5=8.A:8"
    r"(?i)\banswer\s+is\s*(?::\s*)?(\S[^\n]*)",  # "The answer is 42."
    r"(?im)^(?:[*#]|[^\S\n])*(?:final\s+)?answer\s*(?:\*+\s*)?:\s*(\S[^\n]*)",  # "**Final answer:** 42"
)

MAX_SCAN_CHARS = 8192  # extract_answer examines only this many final characters
MAX_ANSWER_CHARS = 2000  # longer "answers" count as wrong
WORKER_GRACE = 2.0  # seconds on top of ``timeout`` before a verifier worker is killed

_BOXED_RE = re.compile(r"\\(boxed|fbox)(?![A-Za-z])")
_BOXED_TOKEN_RE = re.compile(r"[^\s$]+")
_SPACES_RE = re.compile(r"\s*")
_WHITESPACE_RUN_RE = re.compile(r"\s{32,}")  # collapsed before the tail is cut: padding hides nothing
_NUMBER_RE = re.compile(r"(?:(?<![\w)\]}])-)?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|(?:(?<![\w)\]}])-)?\.\d+")


# ------------------------------------------------------------------------------- gold answers


def _brace_pairs(text: str) -> dict[int, int]:
    """``{index of "{": index of its "}"}`` for the balanced braces of ``text``, in one pass
    (a backslash escapes the next character, so ``\\{`` and ``\\}`` are not braces)."""
    pairs, stack, i, n = {}, [], 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            stack.append(i)
        elif c == "}" and stack:
            pairs[stack.pop()] = i
        i += 1
    return pairs


def last_boxed(text: str) -> str | None:
    r"""Content of the last ``\boxed{...}`` / ``\fbox{...}`` with balanced braces (or ``\boxed 5``).

    Linear time: the braces are paired once, then the boxes are tried from the last one.

    >>> last_boxed(r"so \boxed{1} or rather \boxed{\frac{1}{2}}.")
    '\\frac{1}{2}'
    >>> last_boxed(r"\boxed{\{1,2\}}"), last_boxed(r"\boxed 7$"), last_boxed(r"\boxed{12")
    ('\\{1,2\\}', '7', None)
    """
    boxes = list(_BOXED_RE.finditer(text))
    if not boxes:
        return None
    pairs = _brace_pairs(text)
    for m in reversed(boxes):
        i = m.end()
        i = _SPACES_RE.match(text, i).end()  # type: ignore[union-attr]
        if i < len(text) and text[i] == "{":
            if i in pairs:
                return text[i + 1 : pairs[i]]
        elif m.group(1) == "boxed" and i > m.end():
            token = _BOXED_TOKEN_RE.match(text, i)
            if token:
                return token.group(0)
    return None


def _strip_thousands(s: str) -> str:
    """``1,234,567`` -> ``1234567``; commas not in thousands position (``1,2``) are kept."""
    return re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", s)


def parse_gold(text: str, fmt: str = "auto") -> str:
    r"""The gold answer of a dataset row.

    ``gsm8k``: after the last ``####``, stripped, thousands commas removed; ``boxed`` (MATH): the
    content of the last ``\boxed{}``/``\fbox{}``; ``raw``: the stripped text; ``auto``: gsm8k if
    ``####`` is present, else boxed if present, else raw.

    >>> parse_gold("16 - 3 - 4 = 9 ...\n#### 1,234"), parse_gold(r"so $\boxed{\frac{1}{2}}$")
    ('1234', '\\frac{1}{2}')
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_gold expects a string, got {type(text).__name__}")
    fmt = fmt.lower()
    if fmt not in GOLD_FORMATS:
        raise ValueError(f"unknown gold format {fmt!r}; choose one of {', '.join(GOLD_FORMATS)}")
    if fmt == "auto":
        fmt = "gsm8k" if "####" in text else "boxed" if last_boxed(text) is not None else "raw"
    preview = text if len(text) <= 80 else text[:40] + " ... " + text[-35:]
    if fmt == "gsm8k":
        if "####" not in text:
            raise ValueError(f"gold answer has no '####' marker (format 'gsm8k'): {preview!r}")
        answer = _strip_thousands(text.rsplit("####", 1)[1].strip())
    elif fmt == "boxed":
        boxed = last_boxed(text)
        if boxed is None:
            raise ValueError(f"gold answer has no \\boxed{{...}} (format 'boxed'): {preview!r}")
        answer = boxed.strip()
    else:
        answer = text.strip()
    if not answer:
        raise ValueError(f"gold answer is empty (format {fmt!r}): {preview!r}")
    return answer


# ------------------------------------------------------------------------------ model answers


def _clean(answer: str) -> str:
    """Strip markdown bold, a final period and ``$...$`` / ``\\(...\\)`` wrappers."""
    a = answer.strip().strip("*").strip().rstrip(".").strip()
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if a.startswith(left) and a.endswith(right) and len(a) >= len(left) + len(right):
            a = a[len(left) : len(a) - len(right)].strip()
            break
    boxed = last_boxed(a)
    return (boxed if boxed is not None else a).strip()


def _collapse(run: re.Match[str]) -> str:
    return "\n" if "\n" in run.group(0) else " "


def extract_answer(
    completion: str,
    delimiter: str | None = "</think>",
    patterns: Sequence[str | re.Pattern[str]] = DEFAULT_PATTERNS,
    fallback_last_number: bool = False,
    require_delimiter: bool = False,
) -> str | None:
    r"""The final answer of a completion, or ``None``.

    Search the last :data:`MAX_SCAN_CHARS` characters of the text after the LAST ``delimiter``
    (the whole text when it is absent, unless ``require_delimiter``; runs of 32 or more whitespace
    characters count as one space or newline); take the last ``\boxed{}``;
    else the task pattern match that starts last (group 1 of each pattern); else, with
    ``fallback_last_number``, the last number.

    >>> extract_answer(r"<think>\boxed{1}</think>So \boxed{2}."), extract_answer("3+5=8.A:8")
    ('2', '8')
    >>> extract_answer("no answer here 7"), extract_answer("no answer here 7", fallback_last_number=True)
    (None, '7')
    """
    if not isinstance(completion, str):
        return None
    text = completion
    if delimiter:
        cut = text.rfind(delimiter)
        if cut >= 0:
            text = text[cut + len(delimiter) :]
        elif require_delimiter:
            return None
    text = _WHITESPACE_RUN_RE.sub(_collapse, text)[-MAX_SCAN_CHARS:]
    boxed = last_boxed(text)
    if boxed is not None and boxed.strip():
        return boxed.strip()
    best: tuple[int, int, str] | None = None
    for pattern in patterns:
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        group = 1 if rx.groups else 0
        for m in rx.finditer(text):
            if m.group(group) is None:
                continue
            key = (m.start(group), m.end(group), m.group(group))
            if best is None or key[:2] > best[:2]:
                best = key
    if best is not None:
        answer = _clean(best[2])
        if answer:
            return answer
    if fallback_last_number:
        last = None
        for last in _NUMBER_RE.finditer(text):
            pass
        if last is not None:
            return last.group(0)
    return None


# ------------------------------------------------------------------------------------ matching


def answers_match(pred: str | None, gold: str | None, timeout: float = 5.0, *, isolate: bool | None = None) -> bool:
    r"""Whether ``pred`` is equivalent to ``gold``; never raises, never hangs.

    Fast path: both plain numbers or fractions -> the rules of the module docstring; identical
    strings -> True; else :func:`math_verify_match` (see the module docstring for its limits).

    >>> answers_match("$1,234.", "1234"), answers_match("50%", "50"), answers_match("41", "42")
    (True, True, False)
    >>> answers_match("1.5e3", "1500"), answers_match(r"50\%", "0.5"), answers_match("0.333333", r"\frac{1}{3}")
    (True, True, False)
    """
    fast = _fast_match(pred, gold)
    if fast is not None:
        return fast
    return math_verify_match(str(pred).strip(), str(gold).strip(), timeout, isolate=isolate)


def _fast_match(pred: str | None, gold: str | None) -> bool | None:
    """The verdict when it needs no ``math_verify`` (missing, too long, numbers, equal), else None."""
    if pred is None or gold is None:
        return False
    p, g = str(pred).strip(), str(gold).strip()
    if not p or not g or len(p) > MAX_ANSWER_CHARS or len(g) > MAX_ANSWER_CHARS:
        return False
    a, b = as_number(p), as_number(g)
    if a is not None and b is not None:
        return numbers_match(a, b)
    if p == g:
        return True
    return None


def is_correct(
    completion: str,
    gold: str | None,
    delimiter: str | None = "</think>",
    timeout: float = 5.0,
    fallback_last_number: bool = True,
    patterns: Sequence[str | re.Pattern[str]] | None = None,
) -> bool:
    r"""``answers_match(extract_answer(completion), gold)``; no extractable answer -> False.
    The extraction counts against ``timeout``.

    >>> is_correct("<think>it is 3</think>The answer is \\boxed{4}.", "4")
    True
    """
    start = time.monotonic()
    pred = extract_answer(
        completion,
        delimiter=delimiter,
        patterns=DEFAULT_PATTERNS if patterns is None else patterns,
        fallback_last_number=fallback_last_number,
    )
    return pred is not None and answers_match(pred, gold, timeout - (time.monotonic() - start))


def verify_batch(
    completions: Sequence[str],
    golds: Sequence[str | None],
    delimiter: str | None = "</think>",
    timeout: float = 5.0,
    fallback_last_number: bool = True,
    patterns: Sequence[str | re.Pattern[str]] | None = None,
) -> list[bool]:
    r"""``[is_correct(c, g, ...) for c, g in zip(completions, golds)]``, in order, never hanging.

    Extraction and the fast path run here; the answers that need ``math_verify`` go to the worker
    pool, each with ``timeout`` seconds (an overrunning worker is killed and replaced; see the
    module docstring). With ``math_verify`` missing those answers count as wrong.

    >>> verify_batch(["#### 4", r"\boxed{\sqrt{4}}", "no answer"], ["4", "2", "1"])
    [True, True, False]
    """
    if len(completions) != len(golds):
        raise ValueError(f"verify_batch: {len(completions)} completions but {len(golds)} golds")
    kw = dict(delimiter=delimiter, patterns=DEFAULT_PATTERNS if patterns is None else patterns,
              fallback_last_number=fallback_last_number)
    preds = [extract_answer(c, **kw) for c in completions]
    verdicts = [_fast_match(p, g) for p, g in zip(preds, golds)]
    todo = [i for i, v in enumerate(verdicts) if v is None]
    slow = _math_verify_pool([(str(preds[i]).strip(), str(golds[i]).strip()) for i in todo], timeout)
    for i, ok in zip(todo, slow):
        verdicts[i] = ok
    return [bool(v) for v in verdicts]


# ------------------------------------------------------------------------- math_verify fallback


def _signals_usable() -> bool:
    return hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread()


def _wrap(s: str) -> str:
    # math_verify parses bare LaTeX poorly ("\sqrt{2}" -> []); inside \boxed{} it reads it all.
    return s if last_boxed(s) is not None else "\\boxed{" + s + "}"


def _math_verify_inprocess(pred: str, gold: str, timeout: float, use_signals: bool | None = None) -> bool:
    """Math-Verify in this process; with ``use_signals`` (default: in the main thread), every call
    gets the whole seconds left of ``timeout``."""
    import math_verify
    from math_verify.errors import TimeoutException

    if use_signals is None:
        use_signals = _signals_usable()
    deadline = time.monotonic() + max(float(timeout), 0.0)

    def budget() -> int | None:
        if not use_signals:
            return None  # math_verify logs once that its timeouts are off
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        return max(1, math.ceil(left))  # signal.alarm takes whole seconds; 0 would disable it

    try:
        gold_parsed = math_verify.parse(_wrap(gold), parsing_timeout=budget())
        pred_parsed = math_verify.parse(_wrap(pred), parsing_timeout=budget())
        if not gold_parsed or not pred_parsed:
            return False
        for g in gold_parsed:
            for p in pred_parsed:
                if isinstance(g, str) != isinstance(p, str):
                    continue  # math_verify never matches str against sympy
                if math_verify.verify(g, p, timeout_seconds=budget()):
                    return True
        return False
    except (Exception, TimeoutException):
        return False


def math_verify_match(pred: str, gold: str, timeout: float = 5.0, *, isolate: bool | None = None) -> bool:
    r"""Math-Verify equivalence under a time limit (``isolate=None``: worker pool off the main thread).

    >>> math_verify_match(r"\frac{1}{2}", "0.5")
    True
    """
    try:
        pred, gold = str(pred).strip(), str(gold).strip()
        if not pred or not gold or len(pred) > MAX_ANSWER_CHARS or len(gold) > MAX_ANSWER_CHARS:
            return False
        if isolate is None:
            isolate = not _signals_usable()
        if isolate:
            return _math_verify_pool([(pred, gold)], timeout)[0]
        return _math_verify_inprocess(pred, gold, timeout, use_signals=True)
    except ImportError as e:
        _warn_once(f"math_verify is not importable ({e}); non-numeric answers count as wrong")
        return False
    except Exception:
        log.debug("math_verify_match failed", exc_info=True)
        return False


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.warning(message)


#: The worker processes of :func:`verify_batch` and isolated :func:`math_verify_match` calls.
POOL = WorkerPool(preload=("math_verify", __name__), grace=WORKER_GRACE)


def _math_verify_pool(pairs: list[tuple[str, str]], timeout: float) -> list[bool]:
    """``math_verify`` on ``(pred, gold)`` pairs in :data:`POOL`, in order; False on any failure."""
    items = [(p, g, float(timeout)) for p, g in pairs]
    return [bool(ok) for ok in POOL.map(_math_verify_inprocess, items, timeout, default=False)]
