"""Every toy recipe trains for 2 steps (on the untrained toy, at a tiny scale: plumbing, not results)."""

from pathlib import Path

import pytest

from rl.config import load_config
from rl.run.tracking import read_metrics

from tests.conftest import ROOT

TOY_RECIPES = sorted((ROOT / "recipes" / "toy").glob("*.yaml")) + sorted((ROOT / "recipes" / "toy_think").glob("*.yaml"))


def test_there_are_toy_recipes():
    assert len(TOY_RECIPES) >= 10


@pytest.mark.parametrize("recipe", TOY_RECIPES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_toy_recipe_runs_two_steps(recipe: Path, untrained_toy, tmp_path):
    import torch

    from rl.train.loop import train

    torch.set_num_threads(1)
    cfg = load_config(recipe, [
        f"model.name_or_path={untrained_toy}", f"train.output_dir={tmp_path}", "train.max_steps=2",
        "data.num_examples=64", "rollout.prompts_per_step=4", "rollout.group_size=4", "rollout.max_new_tokens=24",
        "train.save_every=0", "train.log_completions=0", "eval.before=false", "eval.after=false",
    ])
    train(cfg)
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2]
    for spec in cfg.rewards:
        assert f"reward/{spec.get('as', spec['name'])}" in rows[0]


def test_laser_d_targets_come_from_the_monitor_set(untrained_toy, tmp_path):
    import json

    import torch

    from rl.train.loop import train

    torch.set_num_threads(1)
    cfg = load_config(ROOT / "recipes" / "toy" / "laser_d.yaml", [
        f"model.name_or_path={untrained_toy}", f"train.output_dir={tmp_path}", "train.max_steps=2",
        "data.num_examples=64", "rollout.prompts_per_step=4", "rollout.group_size=4", "rollout.max_new_tokens=24",
        "train.monitor_prompts=8", "train.monitor_every=1", "eval.before=false", "eval.after=false",
    ])
    train(cfg)
    state = json.loads((tmp_path / "checkpoint-000002" / "trainer_state.json").read_text())["rewards"]["laser_d"]
    assert state["external"] == 1  # targets were set from monitor rollouts, not from the batch
    assert state["targets"] and all(16 <= v <= 160 or v <= 24 for v in state["targets"].values())
