"""Recipe configuration: typed dataclasses, loaded from YAML, overridden from the command line.

``laconic train recipes/quickstart.yaml algo.clip_high=0.28 train.max_steps=10``

Every key is checked: an unknown key names the closest valid one, a wrong type names the field.
Override values are parsed as YAML (``rollout.temperature=0.6``, ``train.report_to=[wandb]``).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .schedules import LengthSchedule, validate_schedule


class ConfigError(ValueError):
    """A recipe or override is invalid; the message names the key."""


@dataclass
class ModelConfig:
    name_or_path: str = "builtin:toy"  # hub id, local directory, or builtin:toy (built if missing)
    dtype: str = "float32"  # float32 | bfloat16 | float16
    trust_remote_code: bool = False
    gradient_checkpointing: bool = False
    lora_r: int = 0  # > 0 enables LoRA (peft)
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"]
    )
    toy_sft_steps: int = 500  # builtin:toy / toy-tagged / toy-budget, when one has to be built


@dataclass
class DataConfig:
    name: str = "builtin:arithmetic"  # hub dataset, local .jsonl/.json/.parquet, or builtin:<task>
    subset: str | None = None  # hub configuration name (e.g. "main" for gsm8k)
    split: str = "train"
    question_column: str = "question"
    answer_column: str = "answer"
    id_column: str | None = None  # stable prompt ids; default: hash of the question
    answer_format: str = "auto"  # auto | gsm8k (#### 42) | boxed (\boxed{..}) | raw
    prompt_template: str = "{question}"
    system_prompt: str | None = None
    chat_template: str = "auto"  # auto (when the tokenizer has one) | on | off
    num_examples: int | None = None  # builtin tasks: how many to generate; others: truncate
    task_kwargs: dict[str, Any] = field(default_factory=dict)  # builtin task options
    delimiter: str | None = "</think>"  # think/answer split; answers are read after it
    length_budget: list[int] | None = None  # L1: [low, high], a budget N ~ U{low..high} per prompt draw
    budget_mode: str = "exact"  # L1: "Think for N tokens." (exact) | "Think for maximum N tokens." (max)
    effort_range: list[float] | None = None  # e1: [low, high], an effort r ~ U[low, high] per prompt draw
    bad_rows: str = "error"  # rows without a usable question or gold answer: error (refuse) | skip (warn, drop)


@dataclass
class RolloutConfig:
    engine: str = "transformers"
    group_size: int = 8  # G completions per prompt
    prompts_per_step: int = 16  # global, across processes
    max_new_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    generation_batch_size: int = 256  # sequences per generate() call
    drop_finished: bool = True  # transformers engine: finished completions leave the batch (false: model.generate)
    length_schedule: LengthSchedule = field(default_factory=LengthSchedule)  # limit by step (rl/schedules.py)
    # vllm / vllm-server engines (rl/vllm_engine.py, rl/vllm_client.py)
    vllm_dtype: str = "auto"  # vLLM's weights: auto (= model.dtype) | float32 | bfloat16 | float16
    vllm_kv_cache_gb: float | None = None  # KV cache size; null: 1 GiB on CPU, vllm_gpu_memory_utilization on GPU
    vllm_gpu_memory_utilization: float | None = None  # GPU share for vLLM (colocated); null: sized by rl/plan.py
    vllm_max_num_batched_tokens: int = 8192  # GPU: tokens per vLLM forward (prefill chunks); sizes its activation peak
    vllm_max_model_len: int | None = None  # null: the model's max positions
    vllm_enforce_eager: bool = True  # false: torch.compile + CUDA graphs (slow start, faster decode)
    vllm_sleep_mode: bool = True  # GPU only: free vLLM's memory during the update
    # vllm-server: running `laconic serve` / `vllm serve` processes (rl/vllm_client.py); API key: $VLLM_API_KEY
    vllm_server_urls: list[str] = field(default_factory=lambda: ["http://127.0.0.1:8000"])  # groups spread over them
    vllm_server_timeout: float = 600.0  # seconds per request to a server
    vllm_server_retries: int = 2  # extra attempts when a server cannot be reached
    vllm_server_weight_sync: str = "auto"  # auto (nccl with CUDA, else disk) | nccl | disk
    vllm_server_weight_dir: str | None = None  # disk sync: where the servers read the weights (null: /dev/shm)
    # AdaptThink (arXiv 2505.13417): a share of each group opens with a given prefix, e.g.
    # [{text: "</think>", fraction: 0.5, max_new_tokens: 4096}, {text: "Alright", fraction: 0.5}]
    # (rl/sampling.py); a prefix's optional max_new_tokens caps its share below the step's limit
    forced_prefixes: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class AlgoConfig:
    advantage: str = "grpo"  # rl/advantages.py: grpo | batch_std | none | identity | rloo | reinforce_pp_baseline | drpo
    advantage_options: dict[str, Any] = field(default_factory=dict)  # e.g. drpo: {temperature: 0.1}
    adv_eps: float = 1e-6
    dynamic_sampling: str | None = None  # drop zero-std groups and refill: reward | correctness (DAPO)
    max_sampling_rounds: int = 10  # dynamic sampling: generation rounds per step before giving up
    oversample: dict[str, Any] | None = None  # DOT's predictive oversampling: {start: 1.5, low: 1.2, high: 5, history: 20}
    outlier_truncation: dict[str, Any] | None = None  # DOT: {alpha: 3, min_excess: 32, success_threshold: 1.0}
    policy_loss: str = "clip"  # clip (PPO/DAPO clipped surrogate) | kl_cov (KL-Cov, arXiv 2505.22617; rl/kl_cov.py)
    kl_cov: dict[str, Any] | None = None  # policy_loss=kl_cov: {ratio: 2e-4, coef: 1.0} (verl's defaults; DOT: 0.002, 1.0)
    curriculum: dict[str, Any] | None = None  # DECS (rl/curriculum.py), with dynamic_sampling: correctness
    clip_low: float = 0.2
    clip_high: float = 0.28
    loss_agg: str = "token-mean"  # token-mean | seq-mean-token-mean | seq-mean-token-sum-norm
    ratio_level: str = "token"  # token (PPO) | sequence (GSPO with seq-mean-token-mean, LUSPO with token-mean)
    seq_clip_low: float = 3e-4  # ratio_level=sequence: GSPO's clip range of the sequence ratio
    seq_clip_high: float = 4e-4
    kl_coef: float = 0.0  # k3 KL to the frozen reference model
    entropy_coef: float = 0.0  # bonus on policy entropy (0: logged only)
    updates_per_rollout: int = 1  # optimizer steps per rollout batch (> 1: PPO-style minibatches)
    tis_cap: float | None = None  # truncated importance sampling: min(exp(logp_old - logp_sampler), cap)


@dataclass
class TrainConfig:
    output_dir: str = "runs/run"
    max_steps: int = 60
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    lr_scheduler: str = "constant"  # any transformers.get_scheduler name
    warmup_steps: int = 0
    micro_batch_size: int = 64  # sequences per forward/backward (gradient accumulation)
    micro_batch_tokens: int | None = None  # also cap padded tokens per forward/backward (null: no cap)
    max_grad_norm: float = 1.0
    seed: int = 0
    save_every: int = 0  # checkpoint every N steps (0: only at the end)
    keep_checkpoints: int = 2
    resume: str | None = None  # "latest" or a checkpoint directory (rl/rundir.py)
    overwrite: bool = False  # true: delete a previous run in output_dir and start over (else it is refused)
    report_to: list[str] = field(default_factory=list)  # wandb, tensorboard
    run_name: str | None = None
    log_completions: int = 0  # every N steps, each process appends its samples to completions/rank<r>.jsonl
    torch_threads: int | None = None
    monitor_prompts: int = 0  # LASER-D: size of the monitor set (training prompts, G samples each)
    monitor_every: int = 20  # re-evaluate the monitor set every N steps (and before step 1)
    reference_samples: int = 0  # K > 0: the initial policy's accuracy per prompt from K samples (rl/reference_pass.py)
    reference_from: str | None = None  # reuse another run's reference pass (its dir or reference_accuracy.json)


@dataclass
class EvalConfig:
    name: str | None = None  # default: the training dataset's source
    subset: str | None = None
    split: str = "test"
    # how to read the eval set; null: the data section's (so GSM8K training can evaluate on MATH-500)
    question_column: str | None = None
    answer_column: str | None = None
    answer_format: str | None = None  # auto | gsm8k | boxed | raw
    prompt_template: str | None = None
    num_examples: int | None = 350
    max_new_tokens: int = 200
    temperature: float = 1.0
    top_p: float = 1.0
    samples: int = 1
    before: bool = True
    after: bool = True
    every: int = 0  # also evaluate every N training steps (0: off)
    length_budget: int | None = None  # L1 recipes: the budget stated in every eval prompt
    seed: int = 1234


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    rewards: list[dict[str, Any]] = field(default_factory=lambda: [{"name": "dler"}])

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


CHOICES = {
    "model.dtype": ("float32", "bfloat16", "float16"),
    "data.answer_format": ("auto", "gsm8k", "boxed", "raw"),
    "data.chat_template": ("auto", "on", "off"),
    "data.budget_mode": ("exact", "max"),
    "data.bad_rows": ("error", "skip"),
    "eval.answer_format": ("auto", "gsm8k", "boxed", "raw"),
    "rollout.engine": ("transformers", "vllm", "vllm-server", "auto"),  # rl/rollout.py ENGINES; auto: vllm if installed
    "rollout.vllm_dtype": ("auto", "float32", "bfloat16", "float16"),
    "rollout.vllm_server_weight_sync": ("auto", "nccl", "disk"),  # rl/vllm_client.py SYNC_MODES
    "algo.loss_agg": ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"),
    "algo.ratio_level": ("token", "sequence"),
    "algo.policy_loss": ("clip", "kl_cov"),
}


EVAL_DATA_FIELDS = ("question_column", "answer_column", "answer_format", "prompt_template")


def eval_data_config(cfg: Config) -> DataConfig:
    """The data section as the eval set reads it: ``eval.question_column`` / ``answer_column`` /
    ``answer_format`` / ``prompt_template`` where set, the data section's values elsewhere."""
    own = {k: getattr(cfg.eval, k) for k in EVAL_DATA_FIELDS if getattr(cfg.eval, k) is not None}
    return dataclasses.replace(cfg.data, **own)


# ----------------------------------------------------------------------------- typing helpers
def _closest(key: str, options: list[str]) -> str:
    match = difflib.get_close_matches(key, options, n=1, cutoff=0.0)
    return f"; did you mean '{match[0]}'?" if match else ""


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


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'recipe'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if key not in hints:
            raise ConfigError(
                f"unknown key '{full}'" + _closest(full, [f"{prefix}{n}" for n in names])
            )
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value or {}, f"{full}.")
        else:
            kwargs[key] = _coerce(value, tp, full)
            if full in CHOICES and kwargs[key] is not None and kwargs[key] not in CHOICES[full]:
                raise ConfigError(
                    f"{full}: '{kwargs[key]}' is not one of {list(CHOICES[full])}"
                    + _closest(str(kwargs[key]), list(CHOICES[full]))
                )
    return cls(**kwargs)


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


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load a recipe (YAML) and apply ``section.key=value`` overrides."""
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
    data = _merge(data, parse_overrides(overrides or []))
    cfg = _build(Config, data, "")
    validate(cfg)
    return cfg


def validate(cfg: Config) -> None:
    """Cross-field checks that a type alone cannot express."""
    r, t, a = cfg.rollout, cfg.train, cfg.algo
    positive = {
        "rollout.group_size": r.group_size,
        "rollout.prompts_per_step": r.prompts_per_step,
        "rollout.max_new_tokens": r.max_new_tokens,
        "train.micro_batch_size": t.micro_batch_size,
        "train.micro_batch_tokens": t.micro_batch_tokens or 1,
        "algo.updates_per_rollout": a.updates_per_rollout,
        "train.max_steps": t.max_steps,
    }
    for key, v in positive.items():
        if v < 1:
            raise ConfigError(f"{key} must be >= 1, got {v}")
    if not 0 <= a.clip_low < 1 or a.clip_high < 0:
        raise ConfigError("algo.clip_low must be in [0, 1) and algo.clip_high >= 0")
    if not 0 <= a.seq_clip_low < 1 or a.seq_clip_high < 0:
        raise ConfigError("algo.seq_clip_low must be in [0, 1) and algo.seq_clip_high >= 0")
    if not t.learning_rate > 0:
        raise ConfigError(f"train.learning_rate must be > 0, got {t.learning_rate}")
    from transformers import SchedulerType

    schedulers = [s.value for s in SchedulerType]
    if t.lr_scheduler not in schedulers:
        raise ConfigError(f"train.lr_scheduler: '{t.lr_scheduler}' is not one of {schedulers}"
                          + _closest(t.lr_scheduler, schedulers))
    if t.overwrite and t.resume:
        raise ConfigError("train.overwrite=true and train.resume exclude each other: overwrite deletes the run "
                          "that resume would continue")
    if r.temperature <= 0:
        raise ConfigError("rollout.temperature must be > 0 (use eval for greedy decoding)")
    from .advantages import ADVANTAGES, advantage_option_names

    if a.advantage not in ADVANTAGES:
        raise ConfigError(f"algo.advantage: '{a.advantage}' is not one of {sorted(ADVANTAGES)}"
                          + _closest(a.advantage, sorted(ADVANTAGES)))
    for key in a.advantage_options:
        names = advantage_option_names(a.advantage)
        if key not in names:
            raise ConfigError(f"algo.advantage_options: '{a.advantage}' has no option '{key}'"
                              + (_closest(key, names) if names else " (it takes none)"))
    if a.dynamic_sampling not in (None, "reward", "correctness"):
        raise ConfigError(f"algo.dynamic_sampling: '{a.dynamic_sampling}' is not one of [null, 'reward', "
                          f"'correctness']" + _closest(str(a.dynamic_sampling), ["reward", "correctness"]))
    from .curriculum import DEFAULTS as CURRICULUM, check_options

    for key, names in (("oversample", ("start", "low", "high", "history")),
                       ("outlier_truncation", ("alpha", "min_excess", "success_threshold")),
                       ("kl_cov", ("ratio", "coef")),
                       ("curriculum", tuple(CURRICULUM))):
        for k in getattr(a, key) or {}:
            if k not in names:
                raise ConfigError(f"algo.{key}: unknown option '{k}'" + _closest(k, list(names)))
    if a.curriculum is not None:
        if a.dynamic_sampling != "correctness":
            raise ConfigError("algo.curriculum adds back all-correct groups, which only algo.dynamic_sampling="
                              f"correctness drops (got {a.dynamic_sampling!r}): set algo.dynamic_sampling=correctness")
        problem = check_options(a.curriculum)
        if problem:
            raise ConfigError(problem)
    validate_kl_cov(a)
    if a.oversample is not None and not a.dynamic_sampling:
        raise ConfigError("algo.oversample sizes the first dynamic-sampling round: set algo.dynamic_sampling too")
    if a.tis_cap is not None and a.tis_cap <= 0:
        raise ConfigError(f"algo.tis_cap must be > 0 (or null to disable), got {a.tis_cap}")
    if r.vllm_kv_cache_gb is not None and r.vllm_kv_cache_gb <= 0:
        raise ConfigError(f"rollout.vllm_kv_cache_gb must be > 0 (or null), got {r.vllm_kv_cache_gb}")
    if r.vllm_gpu_memory_utilization is not None and not 0 < r.vllm_gpu_memory_utilization <= 1:
        raise ConfigError(f"rollout.vllm_gpu_memory_utilization must be in (0, 1], got {r.vllm_gpu_memory_utilization}")
    if r.engine == "vllm-server":
        bad = [u for u in r.vllm_server_urls if not u.startswith(("http://", "https://"))]
        if not r.vllm_server_urls or bad:
            raise ConfigError(f"rollout.vllm_server_urls must be a non-empty list of http(s):// URLs, got {r.vllm_server_urls}")
    if r.vllm_server_timeout <= 0 or r.vllm_server_retries < 0:
        raise ConfigError("rollout.vllm_server_timeout must be > 0 and rollout.vllm_server_retries >= 0")
    if a.max_sampling_rounds < 1:
        raise ConfigError(f"algo.max_sampling_rounds must be >= 1, got {a.max_sampling_rounds}")
    try:
        validate_schedule(r.length_schedule, r.max_new_tokens)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    validate_prefixes(r.forced_prefixes, r.group_size)
    if t.reference_samples < 0:
        raise ConfigError(f"train.reference_samples must be >= 0 (0: off), got {t.reference_samples}")
    if t.reference_from and not t.reference_samples:
        raise ConfigError("train.reference_from reuses a reference pass: set train.reference_samples (its K) too")
    if not t.reference_samples and any(spec.get("name") == "adaptthink" for spec in cfg.rewards):
        raise ConfigError("train.reference_samples: the adaptthink reward needs the initial model's accuracy "
                          "per prompt; set K > 0 (the paper: 16)")
    if a.advantage == "grpo" and r.group_size == 1:
        raise ConfigError("algo.advantage=grpo needs rollout.group_size >= 2")
    lb = cfg.data.length_budget
    if lb is not None and (len(lb) != 2 or not 1 <= lb[0] <= lb[1]):
        raise ConfigError(f"data.length_budget must be [low, high] with 1 <= low <= high, got {lb}")
    er = cfg.data.effort_range
    if er is not None and (len(er) != 2 or not 0 < er[0] <= er[1]):
        raise ConfigError(f"data.effort_range must be [low, high] with 0 < low <= high, got {er}")
    if not cfg.rewards:
        raise ConfigError("rewards: at least one reward is needed")
    for i, spec in enumerate(cfg.rewards):
        if "name" not in spec:
            raise ConfigError(f"rewards[{i}]: every reward needs a 'name' ({spec!r})")
    for rep in t.report_to:
        if rep not in ("wandb", "tensorboard"):
            raise ConfigError(
                f"train.report_to: unknown '{rep}'" + _closest(rep, ["wandb", "tensorboard"])
            )


def kl_cov_options(a: AlgoConfig) -> tuple[float, float]:
    """``(ratio, coef)`` of ``algo.kl_cov``, verl's defaults (2e-4, 1.0) for missing keys."""
    from .kl_cov import DEFAULT_COEF, DEFAULT_RATIO

    opts = a.kl_cov or {}
    return opts.get("ratio", DEFAULT_RATIO), opts.get("coef", DEFAULT_COEF)


def validate_kl_cov(a: AlgoConfig) -> None:
    """``algo.kl_cov`` only with ``policy_loss: kl_cov`` (token ratios), ratio in (0, 1], coef >= 0."""
    if a.kl_cov is not None and a.policy_loss != "kl_cov":
        raise ConfigError(f"algo.kl_cov is set but algo.policy_loss is '{a.policy_loss}': set algo.policy_loss=kl_cov")
    if a.policy_loss != "kl_cov":
        return
    if a.ratio_level != "token":
        raise ConfigError("algo.policy_loss=kl_cov is a token-level loss: it needs algo.ratio_level=token")
    ratio, coef = kl_cov_options(a)
    for key, v in (("ratio", ratio), ("coef", coef)):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ConfigError(f"algo.kl_cov.{key} must be a number, got {v!r}")
    if not 0 < ratio <= 1:
        raise ConfigError(f"algo.kl_cov.ratio must be in (0, 1] (the share of tokens penalised), got {ratio}")
    if coef < 0:
        raise ConfigError(f"algo.kl_cov.coef must be >= 0, got {coef}")


def validate_prefixes(prefixes: list[dict[str, Any]], group_size: int) -> None:
    """``rollout.forced_prefixes``: each ``{text, fraction}`` (optionally ``max_new_tokens``, that
    share's own cap) with a non-empty text, fractions in (0, 1] summing to <= 1, and
    ``group_size * fraction`` a whole number of completions."""
    total = 0.0
    for i, p in enumerate(prefixes):
        key = f"rollout.forced_prefixes[{i}]"
        if not isinstance(p, dict) or not {"text", "fraction"} <= set(p) <= {"text", "fraction", "max_new_tokens"}:
            raise ConfigError(f"{key}: expected {{text: ..., fraction: ...[, max_new_tokens: ...]}}, got {p!r}")
        cap = p.get("max_new_tokens")
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise ConfigError(f"{key}.max_new_tokens must be an integer >= 1, got {cap!r}")
        if not isinstance(p["text"], str) or not p["text"]:
            raise ConfigError(f"{key}.text must be a non-empty string, got {p['text']!r}")
        f = p["fraction"]
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f <= 1:
            raise ConfigError(f"{key}.fraction must be in (0, 1], got {f!r}")
        if abs(group_size * f - round(group_size * f)) > 1e-9:
            raise ConfigError(f"{key}.fraction: rollout.group_size * fraction = {group_size * f:g} "
                              "must be a whole number of completions")
        total += f
    if total > 1 + 1e-9:
        raise ConfigError(f"rollout.forced_prefixes: the fractions sum to {total:g} > 1")
