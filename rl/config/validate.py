"""Cross-field checks of a recipe: what a field's type alone cannot say.

The choices come from the layers below: the advantage estimators and their options from
:mod:`rl.algo.estimators`, the length schedules from :mod:`rl.algo.schedules`, the curriculum's
options from :mod:`rl.algo.curriculum`, KL-Cov's defaults from :mod:`rl.algo.kl_cov`.
"""

from __future__ import annotations

from typing import Any

from rl.algo.schedules import validate_schedule
from rl.config.schema import AlgoConfig, Config, ConfigError, closest


def sampling_knob_error(top_p, top_k, min_p, repetition_penalty, stop, prefix: str = "rollout.") -> str | None:
    """The first bad sampling knob, as one line (``prefix`` names the setting: ``rollout.`` in a
    recipe, ``--`` on the command line), or None.

    >>> sampling_knob_error(1.0, -1, 0.0, 1.0, [])
    'rollout.top_k must be >= 0 (0: off), got -1'
    >>> sampling_knob_error(0.9, 20, 0.05, 1.1, ["</answer>"]) is None
    True
    """
    name = (lambda k: prefix + (k.replace("_", "-") if prefix == "--" else k))
    if not 0 < top_p <= 1:
        return f"{name('top_p')} must be in (0, 1], got {top_p}"
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        return f"{name('top_k')} must be >= 0 (0: off), got {top_k}"
    if not 0 <= min_p <= 1:
        return f"{name('min_p')} must be in [0, 1] (0: off), got {min_p}"
    if not repetition_penalty > 0:
        return f"{name('repetition_penalty')} must be > 0 (1: off), got {repetition_penalty}"
    if isinstance(stop, str) or not all(isinstance(s, str) and s for s in stop):
        return f"{name('stop')} must be a list of non-empty strings, got {stop!r}"
    return None


def validate(cfg: Config) -> None:
    """Cross-field checks that a type alone cannot express."""
    r, t, a = cfg.rollout, cfg.train, cfg.algo
    positive = {
        "rollout.group_size": r.group_size,
        "rollout.prompts_per_step": r.prompts_per_step,
        "rollout.max_new_tokens": r.max_new_tokens,
        "train.micro_batch_size": t.micro_batch_size,
        "train.micro_batch_tokens": t.micro_batch_tokens or 1,
        "train.logits_chunk_mib": t.logits_chunk_mib or 1,
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
                          + closest(t.lr_scheduler, schedulers))
    if not 0 < cfg.eval.holdout < 1:
        raise ConfigError(f"eval.holdout must be in (0, 1), got {cfg.eval.holdout}")
    if t.ddp_timeout < 1:
        raise ConfigError(f"train.ddp_timeout must be >= 1 second, got {t.ddp_timeout}")
    if t.overwrite and t.resume:
        raise ConfigError("train.overwrite=true and train.resume exclude each other: overwrite deletes the run "
                          "that resume would continue")
    if t.head_fp32 and cfg.model.lora_r > 0 and "lm_head" in cfg.model.lora_target_modules:
        raise ConfigError("train.head_fp32 computes the head as a plain float32 linear layer, which a LoRA-wrapped "
                          "lm_head is not: remove lm_head from model.lora_target_modules or set train.head_fp32=false")
    if r.temperature <= 0:
        raise ConfigError("rollout.temperature must be > 0 (use eval for greedy decoding)")
    bad = sampling_knob_error(r.top_p, r.top_k, r.min_p, r.repetition_penalty, r.stop, prefix="rollout.")
    if bad:
        raise ConfigError(bad)
    from rl.algo.estimators import ADVANTAGES, advantage_option_names

    if a.advantage not in ADVANTAGES:
        raise ConfigError(f"algo.advantage: '{a.advantage}' is not one of {sorted(ADVANTAGES)}"
                          + closest(a.advantage, sorted(ADVANTAGES)))
    for key in a.advantage_options:
        names = advantage_option_names(a.advantage)
        if key not in names:
            raise ConfigError(f"algo.advantage_options: '{a.advantage}' has no option '{key}'"
                              + (closest(key, names) if names else " (it takes none)"))
    from rl.algo.estimators import TOKEN_OPTIONS, check_token_option

    for key in set(a.advantage_options) & set(TOKEN_OPTIONS):
        try:
            check_token_option(key, a.advantage_options[key])
        except ValueError as e:
            raise ConfigError(str(e)) from None
    if a.dynamic_sampling not in (None, "reward", "correctness"):
        raise ConfigError(f"algo.dynamic_sampling: '{a.dynamic_sampling}' is not one of [null, 'reward', "
                          f"'correctness']" + closest(str(a.dynamic_sampling), ["reward", "correctness"]))
    from rl.algo.curriculum import DEFAULTS as CURRICULUM, check_options
    from rl.algo.recompose import DEFAULTS as RECOMPOSE, check_options as check_recompose
    from rl.algo.weighting import DEFAULTS as WEIGHTING, check_options as check_weighting

    for key, names in (("oversample", ("start", "low", "high", "history")),
                       ("outlier_truncation", ("alpha", "min_excess", "success_threshold")),
                       ("kl_cov", ("ratio", "coef")),
                       ("entropy_advantage", ("alpha", "kappa")),
                       ("curriculum", tuple(CURRICULUM)),
                       ("recompose", tuple(RECOMPOSE)),
                       ("reward_weighting", tuple(WEIGHTING))):
        for k in getattr(a, key) or {}:
            if k not in names:
                raise ConfigError(f"algo.{key}: unknown option '{k}'" + closest(k, list(names)))
    for k, v in (a.entropy_advantage or {}).items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
            raise ConfigError(f"algo.entropy_advantage.{k} must be a number > 0, got {v!r}")
    if a.curriculum is not None:
        if a.dynamic_sampling != "correctness":
            raise ConfigError("algo.curriculum adds back all-correct groups, which only algo.dynamic_sampling="
                              f"correctness drops (got {a.dynamic_sampling!r}): set algo.dynamic_sampling=correctness")
        problem = check_options(a.curriculum)
        if problem:
            raise ConfigError(problem)
    validate_kl_cov(a)
    if a.recompose is not None and (problem := check_recompose(a.recompose)):
        raise ConfigError(problem)
    if a.reward_weighting is not None:
        if problem := check_weighting(a.reward_weighting):
            raise ConfigError(problem)
        if len(cfg.rewards) < 2:
            raise ConfigError("algo.reward_weighting weighs several rewards against each other: list at least two")
    if a.oversample is not None and not a.dynamic_sampling:
        raise ConfigError("algo.oversample sizes the first dynamic-sampling round: set algo.dynamic_sampling too")
    if a.tis_cap is not None and a.tis_cap <= 0:
        raise ConfigError(f"algo.tis_cap must be > 0 (or null to disable), got {a.tis_cap}")
    if a.tis_mode != "token_truncate" and a.tis_cap is None:
        raise ConfigError(f"algo.tis_mode={a.tis_mode} bounds the importance ratio by algo.tis_cap, which is not set "
                          "(TRL's vllm_importance_sampling_clip_max defaults to 3.0): set algo.tis_cap")
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
    if r.compress is not None:
        validate_compress(cfg)
    if r.partial:
        validate_partial(cfg)
    if r.async_mode is not None:
        validate_async(cfg)
    if r.offpolicy_tis_cap <= 0:
        raise ConfigError(f"rollout.offpolicy_tis_cap must be > 0, got {r.offpolicy_tis_cap}")
    if t.reference_samples < 0:
        raise ConfigError(f"train.reference_samples must be >= 0 (0: off), got {t.reference_samples}")
    if t.reference_from and not t.reference_samples:
        raise ConfigError("train.reference_from reuses a reference pass: set train.reference_samples (its K) too")
    if not t.reference_samples and any(spec.get("name") == "adaptthink" for spec in cfg.rewards):
        raise ConfigError("train.reference_samples: the adaptthink reward needs the initial model's accuracy "
                          "per prompt; set K > 0 (the paper: 16)")
    if any(spec.get("name") == "hypervolume_weight" for spec in cfg.rewards):
        validate_hypervolume(cfg)
    if a.advantage == "grpo" and r.group_size == 1:
        raise ConfigError("algo.advantage=grpo needs rollout.group_size >= 2")
    lb = cfg.data.length_budget
    if lb is not None and (len(lb) != 2 or not 1 <= lb[0] <= lb[1]):
        raise ConfigError(f"data.length_budget must be [low, high] with 1 <= low <= high, got {lb}")
    er = cfg.data.effort_range
    if er is not None and (len(er) != 2 or not 0 < er[0] <= er[1]):
        raise ConfigError(f"data.effort_range must be [low, high] with 0 < low <= high, got {er}")
    validate_modes(cfg.data)
    validate_eval_modes(cfg.eval.modes, cfg.data)
    if not cfg.rewards:
        raise ConfigError("rewards: at least one reward is needed")
    for i, spec in enumerate(cfg.rewards):
        if "name" not in spec:
            raise ConfigError(f"rewards[{i}]: every reward needs a 'name' ({spec!r})")
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS

    trackers = sorted(LOGGER_TYPE_TO_CLASS)  # every tracker accelerate logs to
    for rep in t.report_to:
        if rep not in trackers:
            raise ConfigError(f"train.report_to: unknown '{rep}' (accelerate's trackers: {', '.join(trackers)})"
                              + closest(rep, trackers))
    validate_keep_best(t.keep_best, cfg.eval.every)


def validate_compress(cfg: Config) -> None:
    """TRAAC's compress-and-continue stage (rl/train/compress.py): its options, and what it cannot run with."""
    from rl.algo.traac import DEFAULTS, check_options

    r = cfg.rollout
    for k in r.compress:
        if k not in DEFAULTS:
            raise ConfigError(f"rollout.compress: unknown option '{k}'" + closest(k, list(DEFAULTS)))
    if problem := check_options(r.compress):
        raise ConfigError(problem)
    for on, why in ((r.partial, "rollout.partial"), (r.async_mode, "rollout.async_mode"),
                    (r.forced_prefixes, "rollout.forced_prefixes")):
        if on:
            raise ConfigError(f"rollout.compress continues completions within the step; {why} is not supported with it")
    if cfg.algo.tis_cap is not None or r.offpolicy == "tis" or cfg.algo.recompose is not None:
        raise ConfigError("rollout.compress: a compressed completion's prefix has no sampler log-probs, so "
                          "truncated importance sampling (algo.tis_cap, rollout.offpolicy=tis) and RoRecomp's "
                          "buffer (algo.recompose) cannot weigh it")


def validate_hypervolume(cfg: Config) -> None:
    """The hypervolume meta-reward (rewards/dynamic_weighting.py) acts only without a std in the advantage,
    and needs a monitor point after every update."""
    from rewards.dynamic_weighting import check_estimator

    try:
        check_estimator(cfg.algo.advantage)
    except ValueError as e:
        raise ConfigError(f"rewards: hypervolume_weight: {e}") from None
    if cfg.train.monitor_prompts < 1 or cfg.train.monitor_every != 1:
        raise ConfigError("rewards: hypervolume_weight takes a validation point after every update: set "
                          f"train.monitor_prompts > 0 and train.monitor_every=1 (got {cfg.train.monitor_prompts}, "
                          f"{cfg.train.monitor_every})")


# train.keep_best (rl/run/checkpoint.py: Best): its options and defaults; metric has none, and tie_break's
# depends on the metric (keep_best_options)
KEEP_BEST_DEFAULTS: dict[str, Any] = {"metric": None, "mode": "max", "tie_break": None, "tie_mode": "min",
                                      "final": "last"}
# the scalar keys the evaluation during training logs to metrics.jsonl (rl/eval/evaluate.py: evaluate, its
# dict-valued pass@k / maj@k / by_difficulty are not logged); tests/run/test_best_checkpoint.py holds a run to it
EVAL_METRICS = ("eval/n", "eval/accuracy", "eval/mean_tokens", "eval/truncation_rate", "eval/pass@1",
                "eval/median_tokens", "eval/p90_tokens", "eval/accuracy_per_1k_tokens", "eval/degeneration_rate",
                "eval/mean_length_std")


def keep_best_options(spec: dict[str, Any]) -> dict[str, Any]:
    """``train.keep_best`` with its defaults: ``mode: max``, ``final: last``, and ties broken toward fewer
    tokens: without a ``tie_break`` key, ``eval/mean_tokens`` for an eval/* metric and ``tokens/mean`` for a
    training one (none when that is the metric itself), ``tie_mode: min``; ``tie_break: null`` keeps the
    earliest of equal steps."""
    out = {**KEEP_BEST_DEFAULTS, **spec}
    if "tie_break" not in spec:
        tokens = "eval/mean_tokens" if str(out["metric"]).startswith("eval/") else "tokens/mean"
        out["tie_break"] = tokens if tokens != out["metric"] else None
    return out


def validate_keep_best(spec: dict[str, Any] | None, eval_every: int) -> None:
    """Known option names, a metric, max/min modes, last/best final, and eval/* keys that the evaluation
    during training logs and that ``eval.every`` > 0 measures."""
    if spec is None:
        return
    names = list(KEEP_BEST_DEFAULTS)
    for k in spec:
        if k not in names:
            raise ConfigError(f"train.keep_best: unknown option '{k}' (options: {', '.join(names)})"
                              + closest(k, names))
    o = keep_best_options(spec)
    if not isinstance(o["metric"], str) or not o["metric"]:
        raise ConfigError("train.keep_best.metric must be given: a key of metrics.jsonl, e.g. "
                          "train.keep_best={metric: eval/accuracy} (with eval.every > 0) or {metric: accuracy}")
    if o["tie_break"] is not None and (not isinstance(o["tie_break"], str) or not o["tie_break"]):
        raise ConfigError(f"train.keep_best.tie_break must be a key of metrics.jsonl or null, got {o['tie_break']!r}")
    for key, choices in (("mode", ("max", "min")), ("tie_mode", ("max", "min")), ("final", ("last", "best"))):
        if o[key] not in choices:
            raise ConfigError(f"train.keep_best.{key}: {o[key]!r} is not one of {list(choices)}"
                              + closest(str(o[key]), list(choices)))
    for key in ("metric", "tie_break"):
        name = o[key]
        if name is None or not name.startswith("eval/"):
            continue
        if name not in EVAL_METRICS:
            raise ConfigError(f"train.keep_best.{key}: '{name}' is not logged by the evaluation during training "
                              f"({', '.join(EVAL_METRICS)})" + closest(name, list(EVAL_METRICS)))
        if not eval_every:
            raise ConfigError(f"train.keep_best.{key}={name} would never be measured: eval.every=0 turns the "
                              "evaluation during training off; set eval.every=N to evaluate every N steps")


def kl_cov_options(a: AlgoConfig) -> tuple[float, float]:
    """``(ratio, coef)`` of ``algo.kl_cov``, verl's defaults (2e-4, 1.0) for missing keys."""
    from rl.algo.kl_cov import DEFAULT_COEF, DEFAULT_RATIO

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


def validate_partial(cfg: Config) -> None:
    """``rollout.partial`` (rl/train/partial.py): its settings, and the combinations it refuses."""
    r, a = cfg.rollout, cfg.algo
    if r.partial_overprovision < 1:
        raise ConfigError(f"rollout.partial_overprovision must be >= 1 (groups in flight per group trained), "
                          f"got {r.partial_overprovision}")
    if r.partial_max_age < 1:
        raise ConfigError(f"rollout.partial_max_age must be >= 1 step (0 would drop every partial), got {r.partial_max_age}")
    if a.dynamic_sampling:
        raise ConfigError("rollout.partial and algo.dynamic_sampling each decide which groups a step trains on "
                          "(the first complete ones vs the ones with signal): use one of them")
    if r.forced_prefixes:
        raise ConfigError("rollout.partial with rollout.forced_prefixes is not supported: a forced share is "
                          "generated from its own prompt, which a continued completion would have to keep")


def validate_async(cfg: Config) -> None:
    """``rollout.async_mode`` (rl/train/prefetch.py): one_step_off, in server mode, alone."""
    r, a = cfg.rollout, cfg.algo
    if r.async_mode != "one_step_off":
        raise ConfigError(f"rollout.async_mode: '{r.async_mode}' is not one of [null, 'one_step_off']"
                          + closest(str(r.async_mode), ["one_step_off"]))
    if r.engine != "vllm-server":
        raise ConfigError(f"rollout.async_mode=one_step_off generates on vLLM servers while the trainer updates; "
                          f"rollout.engine={r.engine} shares the trainer's device: use rollout.engine=vllm-server")
    if r.partial or a.dynamic_sampling or r.forced_prefixes:
        what = "rollout.partial" if r.partial else "algo.dynamic_sampling" if a.dynamic_sampling else "rollout.forced_prefixes"
        raise ConfigError(f"rollout.async_mode=one_step_off generates one fixed batch ahead; {what} decides a "
                          "step's batch while it is generated: use one of them")


def validate_modes(d) -> None:
    """ThinkDial's ``data.modes`` (rl/data.py): known, distinct mode names; ``mode_weights`` one number >= 0
    per mode, not all 0, for ``mode_mix=draw``; ``mode_prompts`` keyed by modes; the other mode
    fields only with ``data.modes``; ``data.system_prompt`` only where the mode does not take its place."""
    from rewards.thinkdial import MODES

    if d.modes is None:
        for key, unset in (("mode_weights", d.mode_weights is None), ("mode_prompts", not d.mode_prompts),
                           ("mode_mix", d.mode_mix == "draw")):
            if not unset:
                raise ConfigError(f"data.{key} is set but data.modes is not: list the modes, e.g. data.modes=[high, medium, low]")
        return
    check_mode_list("data.modes", d.modes)
    w = d.mode_weights
    if w is not None:
        if d.mode_mix == "all":
            raise ConfigError("data.mode_weights weighs the draw of data.mode_mix=draw; mode_mix=all trains every mode")
        if len(w) != len(d.modes) or any(x < 0 for x in w) or not sum(w) > 0:
            raise ConfigError(f"data.mode_weights must be one number >= 0 per mode of data.modes {d.modes}, "
                              f"not all 0, got {w}")
    for m, text in d.mode_prompts.items():
        if m not in MODES:
            raise ConfigError(f"data.mode_prompts: '{m}' is not a ThinkDial mode ({', '.join(MODES)})"
                              + closest(str(m), list(MODES)))
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"data.mode_prompts.{m} must be a non-empty string, got {text!r}")
    if d.system_prompt and "{mode}" not in d.prompt_template:
        raise ConfigError("data.system_prompt and data.modes: the mode's text is the system prompt; put your text in "
                          "data.mode_prompts, or place {mode} in data.prompt_template")


def validate_eval_modes(modes, d) -> None:
    """``eval.modes``: known, distinct ThinkDial modes, stated as ``data.modes`` states them (so it needs
    ``data.modes``)."""
    if modes is None:
        return
    if d.modes is None:
        raise ConfigError("eval.modes states each mode as data.modes does: set data.modes too (e.g. data.modes=[high])")
    check_mode_list("eval.modes", modes)


def check_mode_list(key: str, modes: list) -> None:
    """A non-empty list of distinct ThinkDial modes (rewards/thinkdial.py MODES)."""
    from rewards.thinkdial import MODES

    if not modes:
        raise ConfigError(f"{key} must list at least one mode ({', '.join(MODES)}), or be null")
    for m in modes:
        if m not in MODES:
            raise ConfigError(f"{key}: '{m}' is not a ThinkDial mode ({', '.join(MODES)})" + closest(str(m), list(MODES)))
    if len(set(modes)) != len(modes):
        raise ConfigError(f"{key} lists a mode twice: {modes}")
