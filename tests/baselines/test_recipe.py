"""Baseline recipes are validated whole before any model is loaded (no model in these tests)."""

import json
from pathlib import Path

import pytest
import yaml

from rl.baselines.recipe import load_baseline
from rl.config import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def _rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def files(tmp_path):
    sft = _rows(tmp_path / "sft.jsonl", [{"prompt": "Q:1+2=", "completion": "1+2=3.A:3", "prompt_id": "a"}])
    pairs = _rows(tmp_path / "pairs_kimi.jsonl", [{"prompt": "Q:1+2=", "chosen": "1+2=3.A:3",
                                                    "rejected": "1+2=3.check1:1+2=3.A:3", "prompt_id": "a"}])
    return {"sft": sft, "pairs": pairs, "dir": tmp_path}


def _recipe(tmp_path, **fields) -> Path:
    data = {"method": "sft", "output_dir": str(tmp_path / "run"), "model": {"name_or_path": "builtin:toy"},
            "data": {"name": "builtin:arithmetic", "prompt_template": "Q:{question}=", "delimiter": None},
            **fields}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_good_recipe_loads_with_yaml_floats_coerced(files):
    cfg = load_baseline(_recipe(files["dir"], train_file=str(files["sft"]), trl={"learning_rate": "1e-6"}))
    assert cfg.trl["learning_rate"] == 1e-6 and cfg.model.name_or_path == "builtin:toy"
    cfg = load_baseline(_recipe(files["dir"], method="simpo", train_file=str(files["pairs"])),
                        ["trl.beta=2.0", "trl.simpo_gamma=1.0", "eval.num_examples=10"])
    assert cfg.trl == {"beta": 2.0, "simpo_gamma": 1.0} and cfg.eval.num_examples == 10


@pytest.mark.parametrize("fields, overrides, message", [
    ({"methd": "sft"}, [], "unknown key 'methd'; did you mean 'method'?"),
    ({}, ["model.name_or_pth=x"], "unknown key 'model.name_or_pth'; did you mean 'model.name_or_path'?"),
    ({}, ["learning_rate=1e-5"], "unknown key 'learning_rate'; it is 'trl.learning_rate'"),
    ({}, ["trl.learnig_rate=1e-5"], "unknown key 'trl.learnig_rate' (not a field of SFTConfig); did you mean "
                                    "'trl.learning_rate'?"),
    ({}, ["trl.output_dir=x"], "trl.output_dir: set by laconic from 'output_dir'"),
    ({}, ["trl.gradient_checkpointing=true"], "from 'model.gradient_checkpointing'"),
    ({}, ["method=ppo"], "method: 'ppo' is not one of ['sft', 'dpo', 'simpo']"),
    ({}, ["eval.every=5"], "eval.every: laconic baseline evaluates before and after"),
    ({}, ["trl.num_train_epochs=many"], "trl.num_train_epochs: expected float"),
    ({}, ["trl.lr_scheduler_type=wobbly"], "trl: SFTConfig refuses these settings"),
    ({}, ["model.dtype=fp8"], "model.dtype: 'fp8' is not one of"),
])
def test_bad_recipes_are_one_line_naming_the_key(files, fields, overrides, message):
    path = _recipe(files["dir"], **{"train_file": str(files["sft"]), **fields})
    with pytest.raises(ConfigError) as e:
        load_baseline(path, overrides)
    assert message in str(e.value)


def test_train_file_must_match_the_method(files):
    with pytest.raises(ConfigError, match=r"method dpo needs columns \['prompt', 'chosen', 'rejected'\]"):
        load_baseline(_recipe(files["dir"], method="dpo", train_file=str(files["sft"])))
    with pytest.raises(ConfigError, match="no such file"):
        load_baseline(_recipe(files["dir"], train_file=str(files["dir"] / "missing.jsonl")))
    with pytest.raises(ConfigError, match="train_file: give laconic sample"):
        load_baseline(_recipe(files["dir"]))
    bad = files["dir"] / "bad.jsonl"
    bad.write_text('{"prompt": "x", "completion": "y"}\nnot json\n')
    with pytest.raises(ConfigError, match="line 2: not valid JSON"):
        load_baseline(_recipe(files["dir"], train_file=str(bad)))


def test_simpo_is_cpo_with_the_simpo_loss_and_a_max_length(files):
    path = _recipe(files["dir"], method="simpo", train_file=str(files["pairs"]))
    with pytest.raises(ConfigError, match="method simpo is CPOTrainer's loss_type simpo"):
        load_baseline(path, ["trl.loss_type=sigmoid"])
    with pytest.raises(ConfigError, match="truncates at 512"):
        load_baseline(path, ["trl.max_length=null"])


def test_trl_settings_in_force(files):
    from rl.baselines.recipe import trl_args

    cfg = load_baseline(_recipe(files["dir"], method="simpo", train_file=str(files["pairs"])))
    args = trl_args(cfg, files["dir"] / "trl", 321)
    assert (args.loss_type, args.cpo_alpha, args.max_length, args.save_strategy) == ("simpo", 0.0, 321, "no")
    cfg = load_baseline(_recipe(files["dir"], train_file=str(files["sft"]), trl={"max_length": None}))
    args = trl_args(cfg, files["dir"] / "trl", cfg.trl["max_length"])
    assert args.max_length is None and args.completion_only_loss is True and args.gradient_checkpointing is False


@pytest.mark.parametrize("recipe", sorted((ROOT / "recipes" / "baselines").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_recipes_validate(recipe, files):
    """Every shipped recipe loads once its train_file exists (the samples are made by laconic sample)."""
    method = yaml.safe_load(recipe.read_text())["method"]
    cfg = load_baseline(recipe, [f"train_file={files['sft' if method == 'sft' else 'pairs']}"])
    assert cfg.method == method
