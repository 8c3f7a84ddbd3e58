"""A laconic reward drives one step of TRL's GRPOTrainer on the toy (TRL installed with .[dev])."""

import pytest

trl = pytest.importorskip("trl")


def test_laconic_reward_in_trl_grpo_trainer(untrained_toy, tmp_path):
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rewards.trl import as_trl_reward

    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(untrained_toy)
    model = AutoModelForCausalLM.from_pretrained(untrained_toy)
    data = Dataset.from_list([{"prompt": f"Q:{a}+{b}=", "answer": str(a + b)} for a in range(4) for b in range(2)])
    calls = []
    inner = as_trl_reward({"name": "kimi_length"})

    def kimi(prompts, completions, completion_ids=None, **kw):
        calls.append([len(c) for c in completion_ids])
        return inner(prompts, completions, completion_ids=completion_ids, **kw)

    args = trl.GRPOConfig(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=8, num_generations=4,
                          max_completion_length=12, learning_rate=1e-3, report_to=[], use_cpu=True, logging_steps=1,
                          save_strategy="no", temperature=1.0)
    trainer = trl.GRPOTrainer(model=model, reward_funcs=[kimi], args=args, train_dataset=data, processing_class=tok)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer.train()
    assert calls and all(1 <= n <= 12 for n in calls[0])  # token ids reached the laconic reward
    logs = [h for h in trainer.state.log_history if any(k.startswith("rewards/kimi") for k in h)]
    assert logs, trainer.state.log_history
    changed = any(not torch.equal(before[n], p) for n, p in trainer.model.named_parameters())
    assert changed  # the optimizer step happened


def test_dler_in_trl_grpo_trainer_scores_cut_completions_zero(untrained_toy, tmp_path):
    """The README's example (issue 24, B1): the untrained toy hits max_completion_length on most
    completions; each one that does not end with EOS gets DLER's 0, and their share is TRL's clipped_ratio.
    Before, every completion counted as finished."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rewards.trl import as_trl_reward

    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(untrained_toy)
    model = AutoModelForCausalLM.from_pretrained(untrained_toy)
    data = Dataset.from_list([{"prompt": f"Q:{a}+{b}=", "answer": str(a + b)} for a in range(4) for b in range(2)])
    inner, seen = as_trl_reward("dler", tokenizer=tok), []

    def dler(prompts, completions, completion_ids=None, **kw):
        values = inner(prompts, completions, completion_ids=completion_ids, **kw)
        seen.extend(zip(completion_ids, values))
        return values

    args = trl.GRPOConfig(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=8, num_generations=4,
                          max_completion_length=6, learning_rate=1e-3, report_to=[], use_cpu=True, logging_steps=1,
                          save_strategy="no", temperature=1.0)
    trainer = trl.GRPOTrainer(model=model, reward_funcs=[dler], args=args, train_dataset=data, processing_class=tok)
    trainer.train()
    stops = {tok.eos_token_id, tok.pad_token_id}
    cut = [v for ids, v in seen if ids[-1] not in stops]
    assert cut and all(v == 0.0 for v in cut)
    clipped = [h["completions/clipped_ratio"] for h in trainer.state.log_history if "completions/clipped_ratio" in h]
    assert clipped[0] == pytest.approx(len(cut) / len(seen))  # the adapter and TRL count the same completions
