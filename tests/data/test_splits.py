"""Where training and eval rows come from (issue 24, B2 and B5). Before: ``data.split`` / ``eval.split``
were ignored for local files, the eval set defaulted to the training file itself and its numbers were
called held-out; a ``save_to_disk`` Dataset gave a 24-line traceback, and an offline hub dataset or
model a 45- or 99-line one after 31 s."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rl.config import ConfigError, load_config
from rl.data import train_and_eval_rows
from rl.run.preflight import check_model

from tests.conftest import ROOT


def rows(n):
    return [{"question": f"What is {i} + 1?", "answer": str(i + 1)} for i in range(n)]


def write_jsonl(path, data):
    path.write_text("".join(json.dumps(r) + "\n" for r in data))
    return path


def cfg(*overrides):
    return load_config(ROOT / "recipes" / "quickstart.yaml", ["eval.num_examples=null", *overrides])


def questions(rs):
    return [r.question for r in rs]


def test_a_local_file_without_eval_data_holds_out_a_seeded_share(tmp_path):
    f = write_jsonl(tmp_path / "d.jsonl", rows(20))
    train, evals, info = train_and_eval_rows(cfg(f"data.name={f}"))
    assert (len(train), len(evals)) == (18, 2) and not set(questions(train)) & set(questions(evals))
    assert info["held_out"] and info["overlap"] == 0 and info["holdout"] == 0.1
    assert "2 rows held out of" in info["note"] and "trained on the other 18" in info["note"]
    again, evals2, _ = train_and_eval_rows(cfg(f"data.name={f}"))
    assert questions(evals2) == questions(evals)  # seeded: the same rows every start (and resume)
    _, other, _ = train_and_eval_rows(cfg(f"data.name={f}", "train.seed=1", "eval.holdout=0.25"))
    assert len(other) == 5 and questions(other) != questions(evals)[:5]
    with pytest.raises(ConfigError, match=r"eval.holdout must be in \(0, 1\)"):
        cfg(f"data.name={f}", "eval.holdout=1.5")


def test_split_slices_of_a_local_file_are_honoured(tmp_path):
    f = write_jsonl(tmp_path / "d.jsonl", rows(20))
    train, evals, info = train_and_eval_rows(cfg(f"data.name={f}", "data.split=train[:80%]", "eval.split=train[80%:]"))
    assert questions(train) == [f"What is {i} + 1?" for i in range(16)]
    assert questions(evals) == [f"What is {i} + 1?" for i in range(16, 20)]
    assert info["held_out"] and "holdout" not in info
    # evaluating on the training rows themselves is allowed, but never called held-out
    train, evals, info = train_and_eval_rows(cfg(f"data.name={f}", "eval.split=train"))
    assert len(train) == len(evals) == 20 and info["overlap"] == 20 and info["held_out"] is False
    assert "20 of the 20 eval prompts" in info["note"] and "not held-out" in info["note"]
    # a separate eval file is its own eval set (its only split is read whatever eval.split says)
    g = write_jsonl(tmp_path / "e.jsonl", rows(25)[20:])
    train, evals, info = train_and_eval_rows(cfg(f"data.name={f}", f"eval.name={g}"))
    assert (len(train), len(evals), info["held_out"], "note" in info) == (20, 5, True, False)


def test_saved_datasets_load_from_disk(tmp_path):
    from datasets import Dataset, DatasetDict

    Dataset.from_list(rows(10)).save_to_disk(str(tmp_path / "single"))
    train, evals, info = train_and_eval_rows(cfg(f"data.name={tmp_path / 'single'}"))
    assert (len(train), len(evals), info["held_out"]) == (9, 1, True)  # a saved Dataset is one split, like a file
    train, _, _ = train_and_eval_rows(cfg(f"data.name={tmp_path / 'single'}", "data.split=train[:50%]",
                                          "eval.split=train[50%:]"))
    assert len(train) == 5
    DatasetDict({"train": Dataset.from_list(rows(12)), "test": Dataset.from_list(rows(15)[12:])}).save_to_disk(
        str(tmp_path / "dict"))
    train, evals, info = train_and_eval_rows(cfg(f"data.name={tmp_path / 'dict'}"))
    assert (len(train), len(evals), info["held_out"], "holdout" in info) == (12, 3, True, False)  # its own test split
    with pytest.raises(ConfigError, match=r"no split 'validation' \(splits: \['test', 'train'\]\)"):
        train_and_eval_rows(cfg(f"data.name={tmp_path / 'dict'}", "data.split=validation"))
    (tmp_path / "junk").mkdir()
    with pytest.raises(ConfigError, match="not a dataset saved with save_to_disk"):
        train_and_eval_rows(cfg(f"data.name={tmp_path / 'junk'}"))


def test_offline_hub_dataset_and_model_are_one_line_each(tmp_path):
    """Run as the CLI runs, offline: one line each on stderr, exit 2, before any model loads."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "OMP_NUM_THREADS": "1"}
    common = [sys.executable, "-m", "rl.cli", "train", str(ROOT / "recipes" / "quickstart.yaml"),
              f"train.output_dir={tmp_path / 'out'}"]
    for extra, expect in ((["data.name=openai/gsm8k", "data.subset=main"], "dataset 'openai/gsm8k' (main)"),
                          (["model.name_or_path=Qwen/Qwen2.5-0.5B"], "model.name_or_path=Qwen/Qwen2.5-0.5B: not a local"),
                          # without HF_HUB_OFFLINE: the hub unreachable (as here) or answering "no such dataset"
                          (["data.name=laconic-tests/no-such-dataset", "+HF_HUB_OFFLINE=0"],
                           "dataset 'laconic-tests/no-such-dataset'")):
        env["HF_HUB_OFFLINE"] = "0" if "+HF_HUB_OFFLINE=0" in extra else "1"
        extra = [x for x in extra if not x.startswith("+")]
        p = subprocess.run(common + extra, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
        lines = [x for x in p.stderr.splitlines() if x.strip()]
        assert p.returncode == 2 and len(lines) == 1 and expect in lines[0], p.stderr[-3000:]


def test_model_sources_checked_before_loading(tmp_path):
    check_model("builtin:toy")
    with pytest.raises(ConfigError, match="no such directory"):
        check_model(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="has no config.json"):
        check_model(str(tmp_path / "empty"))
