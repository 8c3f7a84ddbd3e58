"""What laconic calls the settings of TRL's ``GRPOConfig`` and of verl's PPO trainer config.

An unknown key whose last part is one of these names gets the answer instead of a guess:
``rollout.num_generations`` -> "laconic calls TRL's num_generations 'rollout.group_size'". The same
table is docs/coming_from_trl_verl.md (tests/config/test_aliases.py keeps the two in step).

Each entry: foreign name -> (laconic's key, or what to do instead, where there is no key; who uses
the name). TRL names are ``trl.GRPOConfig`` fields (TRL 0.2x); verl names are the last part of the
dotted keys of ``verl/trainer/config/ppo_trainer.yaml`` (``actor_rollout_ref.rollout.n`` -> ``n``).
"""

from __future__ import annotations

ALIASES: dict[str, tuple[str, str]] = {
    # TRL GRPOConfig
    "num_generations": ("rollout.group_size", "TRL"),
    "beta": ("algo.kl_coef", "TRL"),
    "epsilon": ("algo.clip_low (and algo.clip_high, which epsilon_high sets in TRL)", "TRL"),
    "epsilon_high": ("algo.clip_high", "TRL"),
    "max_completion_length": ("rollout.max_new_tokens", "TRL"),
    "per_device_train_batch_size": ("train.micro_batch_size", "TRL"),
    "num_iterations": ("algo.updates_per_rollout", "TRL"),
    "loss_type": ("algo.loss_agg", "TRL"),
    "scale_rewards": ("algo.advantage (grpo: scaled by the group's std; none: not scaled; batch_std)", "TRL"),
    "importance_sampling_level": ("algo.ratio_level", "TRL"),
    "vllm_importance_sampling_cap": ("algo.tis_cap", "TRL"),
    "vllm_importance_sampling_clip_max": ("algo.tis_cap", "TRL"),
    "vllm_importance_sampling_clip_min": ("nothing: algo.tis_cap bounds the importance ratio from above only", "TRL"),
    "vllm_importance_sampling_mode": ("algo.tis_mode", "TRL"),
    "use_vllm": ("rollout.engine (vllm, vllm-server or transformers)", "TRL"),
    "vllm_mode": ("rollout.engine (colocate: vllm; server: vllm-server)", "TRL"),
    "vllm_server_base_url": ("rollout.vllm_server_urls", "TRL"),
    "num_train_epochs": ("train.max_steps", "TRL"),
    "save_steps": ("train.save_every", "TRL"),
    "save_total_limit": ("train.keep_checkpoints", "TRL"),
    "lr_scheduler_type": ("train.lr_scheduler", "TRL"),
    "resume_from_checkpoint": ("train.resume", "TRL"),
    "bf16": ("accelerate's mixed precision: accelerate launch --mixed_precision bf16 "
             "(recipes/accelerate/*.yaml set it)", "TRL"),
    "fp16": ("accelerate's mixed precision: accelerate launch --mixed_precision fp16", "TRL"),
    "gradient_accumulation_steps": ("nothing: a step's rollouts are accumulated over micro-batches of "
                                    "train.micro_batch_size into algo.updates_per_rollout optimizer steps", "TRL"),
    "reward_weights": ("the weight of each entry of rewards: [{name: ..., weight: ...}]", "TRL"),
    "mask_truncated_completions": ("algo.mask_truncated", "TRL"),
    "multi_objective_aggregation": ("algo.reward_aggregation", "TRL"),
    "metric_for_best_model": ("train.keep_best: {metric: ...}", "TRL"),
    "load_best_model_at_end": ("train.keep_best: {metric: ..., final: best}", "TRL"),
    "cast_lm_head_to_fp32": ("train.head_fp32", "TRL"),
    "padding_free": ("train.packing", "TRL"),
    # verl ppo_trainer.yaml
    "n": ("rollout.group_size", "verl"),
    "kl_loss_coef": ("algo.kl_coef", "verl"),
    "use_kl_loss": ("algo.kl_coef (> 0 turns the KL loss on)", "verl"),
    "clip_ratio": ("algo.clip_low and algo.clip_high", "verl"),
    "clip_ratio_low": ("algo.clip_low", "verl"),
    "clip_ratio_high": ("algo.clip_high", "verl"),
    "loss_agg_mode": ("algo.loss_agg", "verl"),
    "adv_estimator": ("algo.advantage", "verl"),
    "norm_adv_by_std_in_grpo": ("algo.advantage (grpo: scaled by the group's std; none: not scaled)", "verl"),
    "response_length": ("rollout.max_new_tokens", "verl"),
    "max_response_length": ("rollout.max_new_tokens", "verl"),
    "ppo_epochs": ("algo.updates_per_rollout", "verl"),
    "train_batch_size": ("rollout.prompts_per_step", "verl"),
    "ppo_micro_batch_size_per_gpu": ("train.micro_batch_size", "verl"),
    "ppo_max_token_len_per_gpu": ("train.micro_batch_tokens", "verl"),
    "use_remove_padding": ("train.packing", "verl"),
    "use_dynamic_bsz": ("train.packing (micro-batches cut and balanced by real tokens, at most "
                        "train.micro_batch_tokens each)", "verl"),
    "balance_batch": ("train.packing (each optimizer step's rollouts dealt to the processes by tokens)", "verl"),
    "total_training_steps": ("train.max_steps", "verl"),
    "entropy_coeff": ("algo.entropy_coef", "verl"),
    "gpu_memory_utilization": ("rollout.vllm_gpu_memory_utilization", "verl"),
    "lr": ("train.learning_rate", "verl"),
    "filter_groups": ("algo.dynamic_sampling", "verl"),
    "max_num_gen_batches": ("algo.max_sampling_rounds", "verl"),
    "enforce_eager": ("rollout.vllm_enforce_eager", "verl"),
    "max_num_batched_tokens": ("rollout.vllm_max_num_batched_tokens", "verl"),
    "enable_gradient_checkpointing": ("model.gradient_checkpointing", "verl"),
    "lora_rank": ("model.lora_r", "verl"),
    "save_freq": ("train.save_every", "verl"),
    "test_freq": ("eval.every", "verl"),
    "rollout_is_threshold": ("algo.tis_cap", "verl"),
    "rollout_is": ("algo.tis_mode (token: token_truncate; sequence: sequence_truncate), bounded by algo.tis_cap",
                   "verl"),
    "rollout_rs": ("algo.tis_mode (token_mask or sequence_mask: weight 0 above algo.tis_cap; verl's "
                   "divergence filters and lower bounds have no counterpart)", "verl"),
    "rollout_rs_threshold": ("algo.tis_cap (an upper bound, with algo.tis_mode token_mask or sequence_mask)", "verl"),
    "rollout_is_level": ("algo.tis_mode (token: token_*; sequence: sequence_*; no geometric level)", "verl"),
    "partial_rollout": ("rollout.partial (APRIL; slime's --partial-rollout)", "verl"),
    "staleness_threshold": ("rollout.async_mode (one_step_off: every batch exactly one step stale)", "verl"),
    "max_staleness": ("rollout.async_mode (one_step_off: a staleness of 1)", "TRL"),
    "rollout_is_mode": ("algo.tis_mode (truncate: token_truncate or sequence_truncate; mask: token_mask or "
                        "sequence_mask)", "verl"),
}


def alias_hint(key: str) -> str:
    """": laconic calls TRL's X 'Y'" for an unknown key whose last part is a TRL or verl name, else "".

    >>> alias_hint("rollout.num_generations"), alias_hint("algo.n"), alias_hint("algo.clip_hgh")
    ("; laconic calls TRL's num_generations 'rollout.group_size'", "; laconic calls verl's n 'rollout.group_size'", '')
    """
    leaf = key.rsplit(".", 1)[-1]
    if leaf not in ALIASES:
        return ""
    target, source = ALIASES[leaf]
    if target.split(" ")[0].count(".") == 1 and " " not in target:
        return f"; laconic calls {source}'s {leaf} '{target}'"
    return f"; for {source}'s {leaf}, laconic has {target}"
