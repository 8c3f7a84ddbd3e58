"""Reward registry: the names a recipe uses -> reward factories (docs/design.md, "The reward contract").

A recipe lists rewards as data::

    rewards:
      - {name: dler}                                    # a registered name
      - {name: truncation_penalty, weight: 0.5, penalty: 2.0, as: trunc}
      - {name: "my_pkg.my_rewards:brevity", scale: 0.1} # your own code (found from the working directory)
      - {name: "path/to/my_rewards.py:brevity"}         # or a file

``name`` and ``weight`` (default 1.0) are reserved, ``as`` is an optional display name for
logging (default: ``name``); every other key is a keyword argument of the factory.

What a name may point to:

* a **factory**: a :class:`~rewards.base.Reward` subclass or a function returning a ``Reward``
  (or a plain reward function) - called with the keyword arguments;
* a **reward function** ``fn(samples, ctx, **kw) -> list[float]`` - recognised by its two
  leading positional parameters without defaults; wrapped in
  :class:`~rewards.base.FunctionReward` with the keyword arguments bound;
* (import paths only) a ready ``Reward`` instance, used as is (no keyword arguments allowed).

Misspelled names and keyword arguments fail at build time with the closest valid spelling.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import math
import numbers
import os
import pkgutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, TypeVar

from .base import FunctionReward, Reward

__all__ = [
    "REWARDS",
    "RESERVED_KEYS",
    "RewardConfigError",
    "available_rewards",
    "build_reward",
    "register_reward",
]

F = TypeVar("F", bound=Callable[..., Any])

REWARDS: dict[str, Callable[..., Any]] = {}
RESERVED_KEYS = ("name", "weight", "as")

_discovered = False
_discovery_errors: dict[str, str] = {}


class RewardConfigError(ValueError):
    """A reward spec (recipe entry) is invalid: unknown name or parameter, bad weight, import error."""


def register_reward(name: str) -> Callable[[F], F]:
    """Register a reward factory (class or function) under ``name``; returns it unchanged.

    >>> @register_reward("doc_constant")
    ... def constant(samples, ctx, value=1.0):
    ...     return [value] * len(samples)
    >>> REWARDS["doc_constant"] is constant
    True
    >>> _ = REWARDS.pop("doc_constant")
    """
    if not isinstance(name, str) or not name.strip() or ":" in name:
        raise ValueError(f"invalid reward name {name!r}: a non-empty string without ':'")

    def decorator(factory: F) -> F:
        if not callable(factory):
            raise TypeError(f"register_reward({name!r}) needs a class or function, got {factory!r}")
        previous = REWARDS.get(name)
        if previous is not None and _qualname(previous) != _qualname(factory):
            raise ValueError(
                f"reward name '{name}' is already registered by {_qualname(previous)}; "
                f"cannot register {_qualname(factory)} under the same name"
            )
        REWARDS[name] = factory  # same qualified name: a module reload, replace silently
        return factory

    return decorator


def available_rewards() -> list[str]:
    """All registered names, after importing every reward module of this package."""
    _discover()
    return sorted(REWARDS)


def build_reward(spec: Mapping[str, Any] | str) -> tuple[str, Reward, float]:
    """Build one reward from a recipe entry; returns ``(display_name, reward, weight)``.

    >>> name, reward, weight = build_reward({"name": "truncation_penalty", "weight": 0.5, "as": "trunc"})
    >>> name, type(reward).__name__, weight
    ('trunc', 'TruncationPenalty', 0.5)
    """
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, Mapping):
        raise RewardConfigError(
            f"a reward spec must be a mapping like {{'name': 'dler', 'weight': 1.0}}, got {spec!r}"
        )
    name = spec.get("name")
    if not isinstance(name, str) or not name.strip():
        raise RewardConfigError(f"reward spec {dict(spec)!r} needs a 'name' (a registered name or 'package.module:function')")
    name = name.strip()
    weight = _check_weight(name, spec.get("weight", 1.0))
    display = spec.get("as", name)
    if not isinstance(display, str) or not display.strip():
        raise RewardConfigError(f"reward '{name}': 'as' must be a non-empty string, got {display!r}")
    kwargs = {k: v for k, v in spec.items() if k not in RESERVED_KEYS}
    bad_keys = [k for k in kwargs if not isinstance(k, str)]
    if bad_keys:
        raise RewardConfigError(f"reward '{name}': parameter names must be strings, got {bad_keys!r}")
    target = _import_object(name) if ":" in name else _lookup(name)
    reward = _instantiate(target, kwargs, name, display.strip())
    if "as" not in spec and getattr(target, "names_itself", False):  # a wrapper: logged by what it wraps
        display = reward.name
    return display.strip(), reward, weight


# ---------------------------------------------------------------------------------------------
# helpers


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _closest(word: str, candidates: Any) -> str | None:
    candidates = [c for c in candidates if isinstance(c, str)]
    if not candidates:
        return None
    lowered = {c.lower(): c for c in candidates}
    match = difflib.get_close_matches(word.lower(), list(lowered), n=1)  # close names only: a far guess misleads
    return lowered[match[0]] if match else None


def _check_weight(name: str, weight: Any) -> float:
    if isinstance(weight, bool) or not isinstance(weight, numbers.Real) or not math.isfinite(weight):
        raise RewardConfigError(f"reward '{name}': weight must be a finite number, got {weight!r}")
    return float(weight)


def _discover() -> None:
    """Import every public module of this package once, so their ``@register_reward`` run."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    package = importlib.import_module(__package__ or "rewards")
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_"):
            continue
        module = f"{package.__name__}.{info.name}"
        try:
            importlib.import_module(module)
        except Exception as e:  # a broken sibling must not break unrelated rewards
            _discovery_errors[module] = f"{type(e).__name__}: {e}"


def _lookup(name: str) -> Callable[..., Any]:
    if name not in REWARDS:
        _discover()
    if name in REWARDS:
        return REWARDS[name]
    closest = _closest(name, REWARDS)
    hint = f"; did you mean '{closest}'?" if closest else ""
    msg = (
        f"unknown reward '{name}'{hint} Known rewards: {', '.join(sorted(REWARDS)) or '(none)'}. "
        "Your own reward is referenced as 'package.module:function'."
    )
    if _discovery_errors:
        msg += " (Modules that failed to import: " + "; ".join(
            f"{m}: {err}" for m, err in sorted(_discovery_errors.items())
        ) + ")"
    raise RewardConfigError(msg)


def _import_object(path: str) -> Any:
    """``package.module:attr`` (the working directory on the import path, as ``python -m`` puts it)
    or ``path/to/file.py:attr`` (a file loaded as its own module, as verl's
    ``custom_reward_function.path``)."""
    module_name, _, attr_path = path.rpartition(":")
    module_name, attr_path = module_name.strip(), attr_path.strip()
    if not module_name or not attr_path:
        raise RewardConfigError(f"reward '{path}': an import path must look like 'package.module:function' "
                                "or 'path/to/file.py:function'")
    obj: Any = _import_file(path, module_name) if _is_file_path(module_name) else _import_module(path, module_name)
    for part in attr_path.split("."):
        if not hasattr(obj, part):
            closest = _closest(part, [n for n in dir(obj) if not n.startswith("_")])
            hint = f"; did you mean '{closest}'?" if closest else ""
            raise RewardConfigError(f"reward '{path}': '{module_name}' has no attribute '{attr_path}'{hint}")
        obj = getattr(obj, part)
    return obj


def _is_file_path(module_name: str) -> bool:
    return module_name.endswith(".py") or "/" in module_name or os.sep in module_name


def _import_file(path: str, file_name: str) -> Any:
    import hashlib
    import importlib.util
    import sys

    file = Path(file_name).expanduser().resolve()
    if not file.is_file():
        raise RewardConfigError(f"reward '{path}': no such file {file}")
    name = f"laconic_user_reward_{file.stem}_{hashlib.sha1(str(file).encode()).hexdigest()[:8]}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, file)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        sys.modules[name] = module  # pickling and dataclasses look the module up by name
        try:
            spec.loader.exec_module(module)  # type: ignore[union-attr]
        except Exception as e:
            del sys.modules[name]
            raise RewardConfigError(f"reward '{path}': importing {file} failed: {type(e).__name__}: {e}") from e
    return sys.modules[name]


#: laconic's own top-level packages: a user module of the same name cannot be imported by that name
OWN_PACKAGES = ("rewards", "rl")


def _import_module(path: str, module_name: str) -> Any:
    import sys

    cwd = os.getcwd()
    if "" not in sys.path and cwd not in sys.path:
        sys.path.append(cwd)  # after laconic's own packages, so a user module never shadows them
    top = module_name.split(".")[0]
    if top in OWN_PACKAGES:
        theirs = [p for p in (Path(cwd) / f"{top}.py", Path(cwd) / top) if p.exists()]
        ours = Path(__file__).resolve().parent.parent / top
        if theirs and theirs[0].resolve() != ours:
            raise RewardConfigError(
                f"reward '{path}': your {theirs[0]} has the name of laconic's package {ours}, which is the one "
                f"imported; rename your module, or name the file: '{theirs[0].name}"
                f"{'/__init__.py' if theirs[0].is_dir() else ''}:{path.partition(':')[2]}'")
    try:
        return importlib.import_module(module_name)
    except Exception as e:
        raise RewardConfigError(
            f"reward '{path}': cannot import module '{module_name}' (from {cwd} or the installed packages): "
            f"{type(e).__name__}: {e}"
        ) from e


def _signature(obj: Any) -> inspect.Signature | None:
    try:
        return inspect.signature(obj)
    except (TypeError, ValueError):  # some builtins / C callables
        return None


def _is_reward_function(obj: Any) -> bool:
    """A plain ``fn(samples, ctx, **kw)``: two leading positional parameters without defaults."""
    if inspect.isclass(obj) or not callable(obj):
        return False
    sig = _signature(obj)
    if sig is None:
        return False
    positional = [
        p for p in sig.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    return len(positional) >= 2


def _inherited_params(cls: type, params: list[inspect.Parameter]) -> list[inspect.Parameter]:
    """Parameters a class accepts through ``**kwargs`` passed on to the next ``__init__`` in its MRO."""
    if not any(p.kind is p.VAR_KEYWORD for p in params):
        return []
    for base in cls.__mro__[1:]:
        if "__init__" in vars(base) and base is not object:
            inherited = list(inspect.signature(base.__init__).parameters.values())[1:]
            own = [p for p in inherited if p.kind is not p.VAR_KEYWORD]
            return own + _inherited_params(base, inherited)
    return list(params[-1:])  # reached object: keep the **kwargs (accept anything)


def _check_kwargs(obj: Any, kwargs: Mapping[str, Any], name: str, skip: int) -> None:
    """Unknown keys -> error naming the key and the closest parameter; missing required ones too."""
    sig = _signature(obj)
    if sig is None:
        return
    params = list(sig.parameters.values())[skip:]
    if inspect.isclass(obj):  # a subclass's **kwargs forwarded to its parents' __init__
        params = [p for p in params if p.kind is not p.VAR_KEYWORD] + _inherited_params(obj, params)
    if any(p.kind is p.VAR_KEYWORD for p in params):
        accepted: set[str] | None = None
    else:
        accepted = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    if accepted is not None:
        for key in kwargs:
            if key not in accepted:
                closest = _closest(key, sorted(accepted) + list(RESERVED_KEYS))
                hint = f"; did you mean '{closest}'?" if closest else ""
                valid = ", ".join(sorted(accepted)) or "(none)"
                raise RewardConfigError(
                    f"reward '{name}' got an unknown parameter '{key}'{hint} Valid parameters: {valid}"
                )
    missing = [
        p.name for p in params
        if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.name not in kwargs
    ]
    if missing:
        raise RewardConfigError(f"reward '{name}' is missing required parameter(s): {', '.join(missing)}")


def _instantiate(obj: Any, kwargs: dict[str, Any], name: str, display: str) -> Reward:
    if isinstance(obj, Reward):
        if kwargs:
            raise RewardConfigError(
                f"reward '{name}' is a ready Reward instance; it takes no parameters, got {sorted(kwargs)}"
            )
        return obj
    if not callable(obj):
        raise RewardConfigError(f"reward '{name}' is {type(obj).__name__}, not a reward class or function")
    if _is_reward_function(obj):
        _check_kwargs(obj, kwargs, name, skip=2)
        return FunctionReward(obj, name=display, **kwargs)
    _check_kwargs(obj, kwargs, name, skip=0)
    try:
        out = obj(**kwargs)
    except Exception as e:
        raise RewardConfigError(f"building reward '{name}' failed: {type(e).__name__}: {e}") from e
    if isinstance(out, Reward):
        return out
    if callable(out):
        return FunctionReward(out, name=display)
    raise RewardConfigError(
        f"reward factory '{name}' returned {type(out).__name__}; expected a Reward or a function (samples, ctx)"
    )
