"""Custom rewards by import path (issue 24, B3). Before: the README's ``my_pkg.rewards:brevity`` failed
with ``ModuleNotFoundError`` under the ``laconic`` command unless ``PYTHONPATH=.`` was set, and a user
module named ``rewards.py`` on the path broke laconic with "'rewards' is not a package"."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rewards import build_reward
from rewards.registry import RewardConfigError

from tests.conftest import ROOT

LACONIC = Path(sys.executable).parent / "laconic"  # the console script: its sys.path has no working directory


def readme_blocks() -> tuple[str, str]:
    """The README's custom-reward recipe snippet and ``my_pkg/rewards.py``, as written there."""
    text = (ROOT / "README.md").read_text()
    yaml_block = re.search(r"```yaml\n(rewards:\n.*?my_pkg\.rewards:brevity.*?)```", text, re.S).group(1)
    py_block = re.search(r"```python\n# my_pkg/rewards.py\n(.*?)```", text, re.S).group(1)
    return yaml_block, py_block


def run(args, cwd, env=None):
    e = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"OMP_NUM_THREADS": "1"} | (env or {})
    return subprocess.run([str(LACONIC), *args], cwd=cwd, env=e, capture_output=True, text=True, timeout=600)


@pytest.mark.skipif(not LACONIC.exists(), reason="laconic is not installed as a command")
def test_the_readme_custom_reward_runs_as_written(untrained_toy, tmp_path):
    import yaml

    yaml_block, py_block = readme_blocks()
    (tmp_path / "my_pkg").mkdir()
    (tmp_path / "my_pkg" / "rewards.py").write_text(py_block)
    recipe = yaml.safe_load((ROOT / "recipes" / "quickstart.yaml").read_text())
    recipe["rewards"] = yaml.safe_load(yaml_block)["rewards"]
    recipe["model"]["name_or_path"] = str(untrained_toy)
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    p = run(["train", "recipe.yaml", "train.output_dir=out", "train.max_steps=1", "rollout.engine=transformers",
             "rollout.prompts_per_step=2", "rollout.group_size=2", "rollout.max_new_tokens=8", "eval.before=false",
             "eval.after=false"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    metrics = (tmp_path / "out" / "metrics.jsonl").read_text()
    assert '"reward/my_pkg.rewards:brevity' in metrics or '"reward/brevity' in metrics, metrics[:2000]


def test_a_file_path_names_a_reward(tmp_path, monkeypatch):
    (tmp_path / "my_rewards.py").write_text("def brevity(samples, ctx, target=200):\n"
                                            "    return [float(s.length <= target) for s in samples]\n")
    monkeypatch.chdir(tmp_path)
    name, reward, _ = build_reward({"name": "./my_rewards.py:brevity", "target": 3})
    from rewards.base import Context, Sample

    assert reward([Sample("p", 0, length=2), Sample("p", 0, length=4)], Context()) == [1.0, 0.0]
    with pytest.raises(RewardConfigError, match=r"no such file .*missing.py"):
        build_reward("./missing.py:brevity")
    with pytest.raises(RewardConfigError, match=r"has no attribute 'brevty'; did you mean 'brevity'"):
        build_reward("./my_rewards.py:brevty")
    (tmp_path / "broken.py").write_text("import not_a_module_anywhere\n")
    with pytest.raises(RewardConfigError, match=r"importing .*broken.py failed: ModuleNotFoundError"):
        build_reward("broken.py:fn")


def test_a_user_module_named_like_laconics_packages_is_named(tmp_path, monkeypatch):
    (tmp_path / "rewards.py").write_text("def brevity(samples, ctx):\n    return [0.0 for s in samples]\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RewardConfigError) as e:
        build_reward("rewards:brevity")
    assert str(tmp_path / "rewards.py") in str(e.value) and str(ROOT / "rewards") in str(e.value)
    assert "'rewards.py:brevity'" in str(e.value)  # the way out: name the file
    from rewards.base import Context, Sample

    assert build_reward("rewards.py:brevity")[1]([Sample("p", 0)], Context()) == [0.0]


@pytest.mark.skipif(not LACONIC.exists(), reason="laconic is not installed as a command")
def test_a_shadowing_rewards_module_on_the_path_is_one_line(tmp_path):
    (tmp_path / "rewards.py").write_text("def brevity(samples, ctx):\n    return [0.0 for s in samples]\n")
    p = run(["plan", str(ROOT / "recipes" / "quickstart.yaml")], cwd=tmp_path, env={"PYTHONPATH": "."})
    assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr[-2000:]
    assert str(tmp_path / "rewards.py") in p.stderr and str(ROOT / "rewards") in p.stderr
