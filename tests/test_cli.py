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
