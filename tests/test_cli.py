"""The `laconic` command line."""

import subprocess
import sys

from tests.conftest import ROOT


def cli(*args):
    return subprocess.run([sys.executable, "-m", "rl.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})


def test_config_error_is_one_clear_line():
    p = cli("train", "recipes/quickstart.yaml", "algo.clip_hihg=0.3")
    assert p.returncode == 2
    assert p.stderr.strip() == "laconic: config error: unknown key 'algo.clip_hihg'; did you mean 'algo.clip_high'?"


def test_toy_model_command_builds_a_loadable_model(tmp_path):
    p = cli("toy-model", str(tmp_path / "toy"), "--steps", "3")
    assert p.returncode == 0, p.stderr[-2000:]
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tmp_path / "toy")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "toy")
    assert model.config.vocab_size == len(tok) and (tmp_path / "toy" / "toy_info.json").exists()


def test_config_lists_every_field_with_its_comment_as_a_loadable_recipe(tmp_path, capsys):
    """Issue 24, B9: `laconic config [RECIPE]` prints every field, its value and the schema's comment;
    the output is a recipe that loads back to the same config. `laconic --version` answers."""
    import dataclasses

    import pytest

    from rl.cli import main
    from rl.config import Config, load_config

    assert main(["config", str(ROOT / "recipes" / "quickstart.yaml"), "train.max_steps=7"]) == 0
    text = capsys.readouterr().out
    assert "  max_steps: 7" in text and "  holdout: 0.1  # a local training file" in text
    assert "  resume_schedule: null  # a resume whose max_steps" in text  # a comment from the lines above a field
    assert "  dtype: float32  # float32 | bfloat16 | float16" in text
    fields = sum(len(dataclasses.fields(type(getattr(Config(), f.name)))) for f in dataclasses.fields(Config)
                 if f.name != "rewards")
    assert sum(1 for line in text.splitlines() if line.startswith("  ") and not line.startswith("  - ")) == fields
    (tmp_path / "r.yaml").write_text(text)
    assert load_config(tmp_path / "r.yaml", []) == load_config(ROOT / "recipes" / "quickstart.yaml", ["train.max_steps=7"])
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("laconic ")
