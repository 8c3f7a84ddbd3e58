"""Baseline recipes: a YAML file (plus ``key=value`` overrides) typed into :class:`BaselineConfig`
and validated whole before any model is loaded.

The ``model``, ``data`` and ``eval`` sections are ``laconic train``'s (:mod:`rl.config.schema`), so a
baseline run is evaluated like an RL run and shares its "before" point on ``laconic compare``'s plot.
``data`` says how the eval prompts are written (it should match what ``laconic sample`` sampled
with: its ``sample.json``); the training rows come from ``train_file``. ``trl`` holds fields of the
method's TRL config (``trl.SFTConfig``, ``trl.DPOConfig``, ``trl.experimental.cpo.CPOConfig``),
checked against that dataclass: an unknown key names the closest one.

What laconic sets, unless the recipe says otherwise (TRL's defaults in brackets):

- ``max_length`` [1024]: the longest training row (prompt + completion + EOS), so no reasoning
  trace is cut; ``null`` (SFT, DPO) means no truncation. CPO turns null into 512, so ``simpo``
  refuses it.
- ``bf16`` [true]: true only on a CUDA device that supports it (CPU autocast would slow the toy).
- ``save_strategy`` ["steps"]: "no"; laconic writes ``final/`` itself. ``report_to``: "none".
- SFT ``completion_only_loss`` [None = completion-only for prompt/completion rows]: true.
- SimPO: ``loss_type: simpo`` and ``cpo_alpha: 0.0`` (pure SimPO; ``cpo_alpha > 0`` adds CPO's NLL
  term on the chosen completion: CPO-SimPO).

Set in laconic's sections, not in ``trl``: ``output_dir`` (top level), ``trust_remote_code``,
``gradient_checkpointing`` and ``model_init_kwargs`` (``model``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from rl.config import Config, ConfigError, DataConfig, EvalConfig, ModelConfig
from rl.config.load import _build, _coerce, read_recipe
from rl.config.schema import closest
from rl.config.validate import validate

METHODS = ("sft", "dpo", "simpo")
COLUMNS = {"sft": ("prompt", "completion"), "dpo": ("prompt", "chosen", "rejected"),
           "simpo": ("prompt", "chosen", "rejected")}
OWNED = {"output_dir": "output_dir", "trust_remote_code": "model.trust_remote_code",
         "gradient_checkpointing": "model.gradient_checkpointing", "model_init_kwargs": "model.dtype"}


@dataclass
class BaselineConfig:
    # sft: trl.SFTTrainer on shortest-correct rows | dpo: trl.DPOTrainer on pairs |
    # simpo: trl.experimental.cpo.CPOTrainer with loss_type simpo on pairs (no reference model)
    method: str = "sft"
    train_file: str = ""  # laconic sample's sft.jsonl (sft) or pairs_<rule>.jsonl (dpo, simpo)
    output_dir: str = "runs/baseline"
    overwrite: bool = False  # true: delete a previous run in output_dir and start over (else it is refused)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)  # the eval prompts' format (as sampled: sample.json)
    eval: EvalConfig = field(default_factory=EvalConfig)  # before/after, as laconic train's (eval.every: unsupported)
    trl: dict[str, Any] = field(default_factory=dict)  # fields of SFTConfig / DPOConfig / CPOConfig

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def as_train_config(self) -> Config:
        """The laconic ``Config`` with this recipe's model, data and eval sections (rest default)."""
        return Config(model=self.model, data=self.data, eval=self.eval)


def trl_config_class(method: str) -> type:
    if method == "sft":
        from trl import SFTConfig

        return SFTConfig
    if method == "dpo":
        from trl import DPOConfig

        return DPOConfig
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from trl.experimental.cpo import CPOConfig

    return CPOConfig


def _basic(tp: Any) -> bool:
    """An annotation :func:`rl.config.load._coerce` checks fully: plain scalars, lists, dicts, optionals."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return all(_basic(a) for a in typing.get_args(tp))
    return tp in (int, float, bool, str, type(None)) or origin in (list, dict)


def _hint(full: str, siblings: list[str]) -> str:
    """A TRL field written outside ``trl``, else a close name among the section's keys."""
    key = full.rsplit(".", 1)[-1]
    if key not in OWNED and any(key in {f.name for f in dataclasses.fields(trl_config_class(m))} for m in METHODS):
        return f"; it is 'trl.{key}' (a field of the TRL config)"
    return closest(full, siblings)


def check_trl(method: str, values: dict[str, Any]) -> dict[str, Any]:
    """The ``trl`` section checked against the method's TRL config: known fields, laconic's own
    refused, scalar types coerced (``1e-6`` read by YAML as a string is a float)."""
    cls = trl_config_class(method)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    out = {}
    for key, value in values.items():
        if key in OWNED:
            raise ConfigError(f"trl.{key}: set by laconic from '{OWNED[key]}'")
        if key not in fields:
            raise ConfigError(f"unknown key 'trl.{key}' (not a field of {cls.__name__})"
                              + closest(f"trl.{key}", [f"trl.{k}" for k in fields]))
        tp = hints.get(key, Any)
        out[key] = _coerce(value, tp, f"trl.{key}") if _basic(tp) else value
    if method == "simpo":
        if out.get("loss_type", "simpo") != "simpo":
            raise ConfigError(f"trl.loss_type={out['loss_type']}: method simpo is CPOTrainer's loss_type simpo")
        if "max_length" in out and out["max_length"] is None:
            raise ConfigError("trl.max_length=null: CPOTrainer then truncates at 512 tokens; give a number, or leave "
                              "it unset for the longest training row")
    return out


def trl_args(cfg: BaselineConfig, output_dir: str | Path, max_length: int | None):
    """The method's TRL config: laconic's settings (module docstring), then the recipe's ``trl``."""
    import torch

    cls = trl_config_class(cfg.method)
    cuda = torch.cuda.is_available()
    base: dict[str, Any] = {"max_length": max_length, "save_strategy": "no", "report_to": "none",
                            "bf16": bool(cuda and torch.cuda.is_bf16_supported()), "dataloader_pin_memory": cuda}
    if cfg.method == "sft":
        base["completion_only_loss"] = True
    if cfg.method == "simpo":
        base.update(loss_type="simpo", cpo_alpha=0.0)
    kwargs = {**base, **cfg.trl, "output_dir": str(output_dir), "trust_remote_code": cfg.model.trust_remote_code,
              "gradient_checkpointing": cfg.model.gradient_checkpointing}
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ConfigError(f"trl: {cls.__name__} refuses these settings: {first}") from None


def first_row(path: Path) -> dict[str, Any]:
    with open(path) as f:
        for line in f:
            if line.strip():
                return json.loads(line)
    raise ConfigError(f"{path}: the file has no rows")


def check_train_file(cfg: BaselineConfig) -> None:
    from rl.data import check_jsonl

    if not cfg.train_file:
        raise ConfigError("train_file: give laconic sample's sft.jsonl (method sft) or pairs_<rule>.jsonl (dpo, simpo)")
    path = Path(cfg.train_file)
    if not path.is_file():
        raise ConfigError(f"train_file={path}: no such file (write it with laconic sample)")
    if path.suffix not in (".jsonl", ".json"):
        raise ConfigError(f"train_file={path}: expected a .jsonl file (laconic sample's)")
    check_jsonl(path)
    row = first_row(path)
    missing = [c for c in COLUMNS[cfg.method] if c not in row]
    if missing:
        other = "pairs_<rule>.jsonl" if cfg.method != "sft" else "sft.jsonl"
        raise ConfigError(f"train_file={path}: method {cfg.method} needs columns {list(COLUMNS[cfg.method])}, the "
                          f"file has {sorted(row)} (give laconic sample's {other})")


def validate_baseline(cfg: BaselineConfig) -> None:
    if cfg.method not in METHODS:
        raise ConfigError(f"method: '{cfg.method}' is not one of {list(METHODS)}" + closest(cfg.method, list(METHODS)))
    if cfg.eval.every:
        raise ConfigError("eval.every: laconic baseline evaluates before and after training only (eval.before, "
                          "eval.after); set eval.every=0")
    validate(cfg.as_train_config())
    check_train_file(cfg)
    cfg.trl = check_trl(cfg.method, cfg.trl)
    trl_args(cfg, "/nonexistent-laconic-check", cfg.trl.get("max_length", 1024))  # TRL's own checks, now


def load_baseline(path: str | Path, overrides: list[str] | None = None) -> BaselineConfig:
    """A baseline recipe with ``key=value`` / ``section.key=value`` overrides, validated."""
    data = read_recipe(path, overrides)
    trl = data.pop("trl", None) or {}
    if not isinstance(trl, dict):
        raise ConfigError(f"trl: expected a mapping, got {trl!r}")
    cfg = _build(BaselineConfig, data, "", _hint)
    cfg.trl = trl
    validate_baseline(cfg)
    return cfg
