"""Recipes in: a YAML file plus ``section.key=value`` overrides, typed into :class:`~rl.config.schema.Config`.

``laconic train recipes/quickstart.yaml algo.clip_high=0.28 train.max_steps=10``

Every key is checked: an unknown key names the closest valid one, a wrong type names the field.
Override values are parsed as YAML (``rollout.temperature=0.6``, ``train.report_to=[wandb]``).
The loaded config is validated (:func:`rl.config.validate.validate`) before it is returned.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Callable

import yaml

from rl.config.aliases import alias_hint
from rl.config.schema import CHOICES, Config, ConfigError, all_keys, closest
from rl.config.validate import validate


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; ints are accepted where floats are."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, key)
            except ConfigError as e:
                errors.append(e)
        raise errors[0]
    if tp is Any:
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
        (item,) = typing.get_args(tp) or (Any,)
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__} {value!r}")
        return dict(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):  # YAML reads 1e-6 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if isinstance(tp, type) and isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
        return value
    if tp is str and isinstance(value, dict) and list(value.values()) == [None]:  # {question} read as YAML
        raise ConfigError(f"{key}: YAML read {{{next(iter(value))}}} as a mapping; quote the value, "
                          f"e.g. {key}='{{{next(iter(value))}}} ...' on the command line or \"...\" in a recipe")
    raise ConfigError(f"{key}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")


def _build(cls: type, data: dict[str, Any], prefix: str, hint: Callable[[str, list[str]], str] | None = None) -> Any:
    """``data`` typed into the dataclass ``cls``, sections recursively; an unknown key gets
    ``hint(full_key, sibling_full_keys)`` (default :func:`unknown_key_hint`)."""
    hint = hint or unknown_key_hint
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'recipe'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if key not in hints:
            raise ConfigError(f"unknown key '{full}'" + hint(full, [f"{prefix}{n}" for n in names]))
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value or {}, f"{full}.", hint)
        else:
            kwargs[key] = _coerce(value, tp, full)
            if full in CHOICES and kwargs[key] is not None and kwargs[key] not in CHOICES[full]:
                raise ConfigError(
                    f"{full}: '{kwargs[key]}' is not one of {list(CHOICES[full])}"
                    + closest(str(kwargs[key]), list(CHOICES[full]))
                )
    return cls(**kwargs)


def unknown_key_hint(full: str, siblings: list[str]) -> str:
    """What an unknown key most likely means: TRL's or verl's name for a laconic key
    (:mod:`rl.config.aliases`), the same name in another section, or a close name in this one."""
    leaf = full.rsplit(".", 1)[-1]
    elsewhere = [k for k in all_keys() if k.rsplit(".", 1)[-1] == leaf and k != full]
    if alias_hint(full):
        return alias_hint(full)
    if elsewhere:
        return f"; it is '{elsewhere[0]}'"
    return closest(full, siblings)


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override '{dotted}': '{p}' is not a section")
    node[parts[-1]] = value


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``["algo.clip_high=0.28", "train.report_to=[wandb]"]`` -> nested dict."""
    tree: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like section.key=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else None
        except yaml.YAMLError as e:
            raise ConfigError(f"override '{item}': value is not valid YAML "
                              f"({getattr(e, 'problem', None) or e}); quote it") from None
        _set_dotted(tree, key.strip(), value)
    return tree


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def read_recipe(path: str | Path | None, overrides: list[str] | None = None) -> dict[str, Any]:
    """A recipe's YAML mapping (``{}`` without a path) with ``section.key=value`` overrides merged in;
    a missing file, bad YAML (with its line) or a non-mapping is one :class:`ConfigError` line."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"recipe not found: {path}")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"{path}, line {mark.line + 1}" if mark else str(path)
            raise ConfigError(f"{where}: not valid YAML ({getattr(e, 'problem', None) or e})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a recipe must be a mapping of sections")
    return _merge(data, parse_overrides(overrides or []))


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load a recipe (YAML) and apply ``section.key=value`` overrides."""
    cfg = _build(Config, read_recipe(path, overrides), "")
    validate(cfg)
    return cfg
