"""``laconic config [RECIPE] [OVERRIDES]``: every field of a recipe with its value and its comment.

The comments are the schema's own (:mod:`rl.config.schema`: the one on a field's line, else the
comment lines right above it), so the listing never drifts from the code. The output is YAML: it can
be saved and edited as a recipe.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import tokenize
from typing import Any

import yaml

from rl.config import schema
from rl.config.schema import CHOICES, Config


def field_comments() -> dict[str, str]:
    """``section.key`` -> the comment the schema gives the field."""
    src = inspect.getsource(schema)
    comments = {tok.start[0]: tok.string.lstrip("# ").strip()
                for tok in tokenize.generate_tokens(io.StringIO(src).readline) if tok.type == tokenize.COMMENT}
    lines = src.splitlines()
    sections = {f.type if isinstance(f.type, str) else f.type.__name__: f.name for f in dataclasses.fields(Config)}
    out: dict[str, str] = {}
    for node in ast.parse(src).body:
        if not isinstance(node, ast.ClassDef) or node.name not in sections:
            continue
        for item in node.body:
            if not isinstance(item, ast.AnnAssign) or not isinstance(item.target, ast.Name):
                continue
            text = comments.get(item.end_lineno or item.lineno, "")
            if not text:  # the comment block right above the field
                above, n = [], item.lineno - 1
                while n in comments and lines[n - 1].lstrip().startswith("#"):
                    above.insert(0, comments[n])
                    n -= 1
                text = " ".join(above)
            out[f"{sections[node.name]}.{item.target.id}"] = text
    return out


def _value(v: Any) -> str:
    return yaml.safe_dump(v, default_flow_style=True, width=10**6, sort_keys=False).strip().removesuffix("...").strip()


def describe(cfg: Config) -> str:
    """The recipe as YAML, one commented line per field (choices named where the schema has them)."""
    notes = field_comments()
    lines = []
    for section, values in cfg.to_dict().items():
        if section == "rewards":
            lines += ["rewards:  # a list of {name: ..., weight: ..., ...} (README, Rewards)"]
            lines += [f"  - {_value(r)}" for r in values]
            continue
        lines.append(f"{section}:")
        for key, v in values.items():
            note = notes.get(f"{section}.{key}", "")
            choices = CHOICES.get(f"{section}.{key}")
            if choices and not any(c in note for c in choices):
                note = (note + "; " if note else "") + " | ".join(choices)
            lines.append(f"  {key}: {_value(v)}" + (f"  # {note}" if note else ""))
    return "\n".join(lines) + "\n"
