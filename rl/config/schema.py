"""The recipe schema: one dataclass per section, every field with its default and a comment.

:mod:`rl.config.load` reads a YAML recipe and command-line overrides into these, and
:mod:`rl.config.validate` checks what a type alone cannot express.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from typing import Any

from rl.algo.schedules import LengthSchedule


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
    save_adapter: bool = False  # LoRA: final/ also holds the adapter alone (final/adapter/, peft's format)
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
    # passed to apply_chat_template in training and evaluation, e.g. {enable_thinking: false} (Qwen3)
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)
    num_examples: int | None = None  # builtin tasks: how many to generate; others: truncate
    task_kwargs: dict[str, Any] = field(default_factory=dict)  # builtin task options
    delimiter: str | None = "</think>"  # think/answer split; answers are read after it
    length_budget: list[int] | None = None  # L1: [low, high], a budget N ~ U{low..high} per prompt draw
    budget_mode: str = "exact"  # L1: "Think for N tokens." (exact) | "Think for maximum N tokens." (max)
    effort_range: list[float] | None = None  # e1: [low, high], an effort r ~ U[low, high] per prompt draw
    # ThinkDial (arXiv 2508.18773; rl/data.py, rewards/thinkdial.py): reasoning modes, e.g. [high, medium, low], stated
    # by the system prompt (or where data.prompt_template says {mode}); meta["mode"] for the rewards; a mode column wins
    modes: list[str] | None = None
    mode_weights: list[float] | None = None  # draw probabilities, one per mode (null: uniform)
    mode_mix: str = "draw"  # draw: one mode per prompt per step | all: every prompt once per mode (ids <id>@<mode>)
    mode_prompts: dict[str, str] = field(default_factory=dict)  # mode -> its text (default: rewards/thinkdial.py's)
    bad_rows: str = "error"  # rows without a usable question or gold answer: error (refuse) | skip (warn, drop)


@dataclass
class RolloutConfig:
    engine: str = "transformers"
    group_size: int = 8  # G completions per prompt
    prompts_per_step: int = 16  # global, across processes
    max_new_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    # also in every engine, vLLM's order (rl/engines/transformers.py sample_next); evaluation uses them too
    top_k: int = 0  # 0: off
    min_p: float = 0.0  # keep tokens with p >= min_p * p_max (0: off)
    repetition_penalty: float = 1.0  # seen tokens (prompt and completion): logit / penalty if > 0, x penalty if < 0
    stop: list[str] = field(default_factory=list)  # stop strings: the completion ends with the token completing one
    generation_batch_size: int = 256  # sequences per generate() call
    drop_finished: bool = True  # transformers engine: finished completions leave the batch (false: model.generate)
    length_schedule: LengthSchedule = field(default_factory=LengthSchedule)  # limit by step (rl/algo/schedules.py)
    # vllm / vllm-server engines (rl/engines/vllm_colocated.py, rl/engines/vllm_server.py)
    vllm_dtype: str = "auto"  # vLLM's weights: auto (= model.dtype) | float32 | bfloat16 | float16
    vllm_kv_cache_gb: float | None = None  # KV cache size; null: 1 GiB on CPU, vllm_gpu_memory_utilization on GPU
    vllm_gpu_memory_utilization: float | None = None  # GPU share for vLLM (colocated); null: sized by rl/run/plan.py
    vllm_max_num_batched_tokens: int = 8192  # GPU: tokens per vLLM forward (prefill chunks); sizes its activation peak
    vllm_max_model_len: int | None = None  # null: the model's max positions
    vllm_enforce_eager: bool | None = None  # null: true on CPU, false on GPU (CUDA graphs: slower start, faster decode)
    vllm_sleep_mode: bool = True  # GPU only: free vLLM's memory during the update
    # vllm-server: running `laconic serve` / `vllm serve` processes (rl/engines/vllm_server.py); API key: $VLLM_API_KEY
    vllm_server_urls: list[str] = field(default_factory=lambda: ["http://127.0.0.1:8000"])  # groups spread over them
    vllm_server_timeout: float = 600.0  # s per control request / /health probe; completions: connect+send only
    vllm_server_retries: int = 2  # extra attempts when a server cannot be reached
    vllm_server_weight_sync: str = "auto"  # auto (nccl with CUDA, else disk) | nccl | disk
    vllm_server_weight_dir: str | None = None  # disk sync: where the servers read the weights (null: /dev/shm)
    # AdaptThink (arXiv 2505.13417): a share of each group opens with a given prefix, e.g.
    # [{text: "</think>", fraction: 0.5, max_new_tokens: 4096}, {text: "Alright", fraction: 0.5}]
    # (rl/train/sampling.py); a prefix's optional max_new_tokens caps its share below the step's limit
    forced_prefixes: list[dict[str, Any]] = field(default_factory=list)
    # Partial rollouts (APRIL, arXiv 2509.18521; slime --partial-rollout; rl/train/partial.py): keep
    # partial_overprovision x the step's groups in flight, stop once the step's groups are complete, continue
    # the unfinished ones next step (dropped past partial_max_age steps)
    partial: bool = False
    partial_overprovision: float = 2.0
    partial_max_age: int = 2
    # one_step_off (vllm-server only; rl/train/prefetch.py): step t+1's batch is generated during step t's update,
    # from the weights before it (verl one_step_off_policy); null: synchronous
    async_mode: str | None = None
    # Tokens written by older weights (partial's continued completions, one_step_off's batches) in the update:
    # train (slime's default: like the others) | mask | behavior (ratio vs the sampler's log-prob) |
    # tis (x min(exp(old - behavior), offpolicy_tis_cap)); rl/train/record.py record_masks
    offpolicy: str = "train"
    offpolicy_tis_cap: float = 2.0
    # TRAAC's compress-and-continue stage (arXiv 2510.01581; rl/train/compress.py): correct traces lose their
    # least-attended thinking steps and the policy writes a new answer after them; each group is re-drawn from
    # originals and compressed versions. {open_tag: "<think>", close_tag: "</think>", summary: "Time is up. ...",
    # split: words | release, keywords: null (TRAAC's), attention_model: initial | policy,
    # rho: {easy: 0.6, medium: 0.4, hard: 0.2}, max_evict: 0.8, uniformity: 0.8}
    compress: dict[str, Any] | None = None


@dataclass
class AlgoConfig:
    advantage: str = "grpo"  # rl/algo/estimators.py: grpo | batch_std | none | identity | rloo | reinforce_pp_baseline | drpo
    advantage_options: dict[str, Any] = field(default_factory=dict)  # e.g. drpo: {temperature: 0.1}
    adv_eps: float = 1e-6
    dynamic_sampling: str | None = None  # drop zero-std groups and refill: reward | correctness (DAPO)
    max_sampling_rounds: int = 10  # dynamic sampling: generation rounds per step before giving up
    oversample: dict[str, Any] | None = None  # DOT's predictive oversampling: {start: 1.5, low: 1.2, high: 5, history: 20}
    outlier_truncation: dict[str, Any] | None = None  # DOT: {alpha: 3, min_excess: 32, success_threshold: 1.0}
    policy_loss: str = "clip"  # clip (PPO/DAPO clipped surrogate) | kl_cov (KL-Cov, arXiv 2505.22617; rl/algo/kl_cov.py)
    kl_cov: dict[str, Any] | None = None  # policy_loss=kl_cov: {ratio: 2e-4, coef: 1.0} (verl's defaults; DOT: 0.002, 1.0)
    curriculum: dict[str, Any] | None = None  # DECS (rl/algo/curriculum.py), with dynamic_sampling: correctness
    clip_low: float = 0.2
    clip_high: float = 0.28
    loss_agg: str = "token-mean"  # token-mean | seq-mean-token-mean | seq-mean-token-sum-norm
    ratio_level: str = "token"  # token (PPO) | sequence (GSPO with seq-mean-token-mean, LUSPO with token-mean)
    seq_clip_low: float = 3e-4  # ratio_level=sequence: GSPO's clip range of the sequence ratio
    seq_clip_high: float = 4e-4
    kl_coef: float = 0.0  # k3 KL to the frozen reference model
    entropy_coef: float = 0.0  # bonus on policy entropy (0: logged only)
    # entropy-shaped advantages A + min(alpha H_t, |A|/kappa) (arXiv 2506.14758; CEEH: {alpha: 0.4, kappa: 2}),
    # on the samples a reward's entropy_mask selects (all without one); rl/algo/loss.py
    entropy_advantage: dict[str, Any] | None = None
    updates_per_rollout: int = 1  # optimizer steps per rollout batch (> 1: PPO-style minibatches)
    tis_cap: float | None = None  # truncated importance sampling: min(exp(logp_old - logp_sampler), cap)
    # what tis_cap bounds (rl/algo/loss.py tis_weights; TRL vllm_importance_sampling_mode): the token ratio or the
    # sequence's (the product over its trained tokens), truncated at the cap or masked (weight 0) above it
    tis_mode: str = "token_truncate"  # token_truncate | token_mask | sequence_truncate | sequence_mask
    # truncated completions (hit the limit) carry no gradient; still scored and in the advantages' statistics
    # (TRL mask_truncated_completions, NeMo overlong_filtering); refused with rewards that score truncation
    mask_truncated: bool = False
    # sum_then_normalize: the weighted sum of the rewards goes to algo.advantage; normalize_then_sum (GDPO,
    # TRL multi_objective_aggregation): each reward normalised first (per algo.reward_norm: group | batch)
    reward_aggregation: str = "sum_then_normalize"
    reward_norm: str = "group"
    # RoRecomp (arXiv 2509.25958; rl/algo/recompose.py): train the short-correct and long-wrong share alpha of each
    # group now, buffer the rest, and take an extra optimizer step on the oldest `batch` buffered samples (with
    # probability prob; older than max_age steps: dropped): {alpha: 0.5, batch: 64, prob: 1.0, max_age: 8}
    recompose: dict[str, Any] | None = None
    # dynamic reward weighting, gradient variant (arXiv 2509.11452; rl/train/weighting.py): each step, one backward
    # pass per reward sets the weights w <- softmax(log w + lr (G G^T) 1 / regularization) before the update:
    # {method: gradient, regularization: 1.0e-4, layers: [10, 25] (decoder layers whose gradients count; null: all)}
    reward_weighting: dict[str, Any] | None = None


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
    # one row per micro-batch, the sequences end to end with no padding and attention within each
    # (rl/train/update.py make_packed_batch); micro_batch_tokens then caps real tokens, and micro-batches and
    # processes get their rollouts dealt by tokens (TRL padding_free, verl use_remove_padding + use_dynamic_bsz)
    packing: bool = False
    # MiB of one float32 [tokens, vocab] buffer of the chunked head (rl/algo/logprobs.py), which sets the
    # tokens a head call takes (64 MiB: 110 at a 152k vocabulary; 1 GiB: 1,766); null: 64 on CPU, 1024 on GPU
    logits_chunk_mib: int | None = None
    # the chunked head's matmul in float32, not the autocast's bf16 (rl/algo/logprobs.py fp32_head; TRL
    # cast_lm_head_to_fp32, ScaleRL arXiv 2510.13786): log-probs of the policy, old policy and KL reference;
    # a model in bf16 then holds a float32 copy of the head's weight per chunk (V x H x 4 bytes, 0.93 GB at 1.5B)
    head_fp32: bool = False
    max_grad_norm: float = 1.0
    seed: int = 0
    save_every: int = 0  # checkpoint every N steps (0: only at the end)
    keep_checkpoints: int = 2
    # the best step by a metrics.jsonl key: its checkpoint is never pruned while best (rl/run/checkpoint.py);
    # {metric: eval/accuracy, mode: max, tie_break: eval/mean_tokens, tie_mode: min, final: last | best}
    keep_best: dict[str, Any] | None = None
    resume: str | None = None  # "latest" or a checkpoint directory (rl/run/rundir.py)
    overwrite: bool = False  # true: delete a previous run in output_dir and start over (else it is refused)
    # a resume whose max_steps / warmup_steps / lr_scheduler differ from the run's (config.json): "extend"
    # the schedule to the new horizon (its lr from there on), or "keep" the run's (a finished cosine stays 0)
    resume_schedule: str | None = None
    report_to: list[str] = field(default_factory=list)  # wandb, tensorboard
    verbose: bool = False  # true: vLLM's INFO lines and accelerate's tied-weight note on every save
    run_name: str | None = None
    log_completions: int = 0  # every N steps, each process appends its samples to completions/rank<r>.jsonl
    torch_threads: int | None = None
    ddp_timeout: int = 1800  # seconds a process waits in a collective before the run fails (HF/TRL's default)
    monitor_prompts: int = 0  # LASER-D: size of the monitor set (training prompts, G samples each)
    monitor_every: int = 20  # re-evaluate the monitor set every N steps (and before step 1)
    reference_samples: int = 0  # K > 0: the initial policy's accuracy per prompt from K samples (rl/train/reference_pass.py)
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
    # a local training file (or saved Dataset) with no eval data of its own (eval.name unset, no 'test'
    # split): this seeded share of its rows is held out of training and evaluated on (rl/data.py)
    holdout: float = 0.1
    # ThinkDial: evaluate the eval set once per listed mode (of rewards/thinkdial.py's, stated like data.modes);
    # "accuracy" etc. are the first mode's, "modes" has each mode's, and summary.json the ACT (rl/eval/metrics.py act)
    # of "after" against "before"'s high mode, the peak. null: data.modes' first mode only
    modes: list[str] | None = None


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
    "data.mode_mix": ("draw", "all"),
    "eval.answer_format": ("auto", "gsm8k", "boxed", "raw"),
    "rollout.engine": ("transformers", "vllm", "vllm-server", "auto"),  # rl/engines/base.py ENGINES; auto: vllm if installed
    "rollout.vllm_dtype": ("auto", "float32", "bfloat16", "float16"),
    "rollout.vllm_server_weight_sync": ("auto", "nccl", "disk"),  # rl/engines/vllm_server.py SYNC_MODES
    "algo.loss_agg": ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"),
    "algo.ratio_level": ("token", "sequence"),
    "rollout.offpolicy": ("train", "mask", "behavior", "tis"),  # rl/train/record.py record_masks
    "algo.tis_mode": ("token_truncate", "token_mask", "sequence_truncate", "sequence_mask"),  # rl/algo/loss.py TIS_MODES
    "algo.policy_loss": ("clip", "kl_cov"),
    "algo.reward_aggregation": ("sum_then_normalize", "normalize_then_sum"),
    "algo.reward_norm": ("group", "batch"),
    "train.resume_schedule": ("extend", "keep"),
}


EVAL_DATA_FIELDS = ("question_column", "answer_column", "answer_format", "prompt_template")


def eval_data_config(cfg: Config) -> DataConfig:
    """The data section as the eval set reads it: ``eval.question_column`` / ``answer_column`` /
    ``answer_format`` / ``prompt_template`` where set, the data section's values elsewhere."""
    own = {k: getattr(cfg.eval, k) for k in EVAL_DATA_FIELDS if getattr(cfg.eval, k) is not None}
    return dataclasses.replace(cfg.data, **own)


def closest(key: str, options: list[str]) -> str:
    """"; did you mean X?" for an option close to ``key`` (compared by their last dotted part, with
    difflib's default cutoff of 0.6), for error messages; "" when none is close: a guess at any
    distance misleads (``algo.epsilon`` is not ``algo.adv_eps``).

    >>> closest("algo.clip_hgh", ["algo.clip_high", "algo.clip_low"]), closest("algo.epsilon", ["algo.adv_eps"])
    ("; did you mean 'algo.clip_high'?", '')
    """
    by_leaf = {o.rsplit(".", 1)[-1]: o for o in options}
    match = difflib.get_close_matches(key.rsplit(".", 1)[-1], list(by_leaf), n=1)
    return f"; did you mean '{by_leaf[match[0]]}'?" if match else ""


def all_keys(cls: type | None = None, prefix: str = "") -> list[str]:
    """Every dotted key of the config (``rollout.group_size``, ...), sections recursed into."""
    import typing

    cls = cls or Config
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            out += all_keys(hints[f.name], f"{prefix}{f.name}.")
        else:
            out.append(prefix + f.name)
    return out


