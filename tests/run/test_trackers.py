"""``train.report_to``: every tracker accelerate knows, refused before the model loads when it is not
installed (before: accelerate warned and the run logged nothing to it), and a wandb run in offline mode
whose records hold the step metrics (issue 24, B4)."""

import glob
import json
import struct
import subprocess
import sys

import pytest

from rl.config import ConfigError, load_config

from tests.conftest import ROOT
from tests.train.test_trainer import overrides


def test_every_accelerate_tracker_is_a_valid_name():
    for name in ("wandb", "tensorboard", "mlflow", "comet_ml", "aim", "clearml", "dvclive", "swanlab", "trackio"):
        assert load_config(None, [f"train.report_to=[{name}]"]).train.report_to == [name]
    with pytest.raises(ConfigError, match="unknown 'wandbb'.*did you mean 'wandb'"):
        load_config(None, ["train.report_to=[wandbb]"])


def test_a_tracker_that_is_not_installed_stops_the_run_before_the_model_loads(untrained_toy, tmp_path, monkeypatch,
                                                                              capsys):
    import accelerate.utils

    import rl.train.loop as loop
    from rl.cli import main

    monkeypatch.setattr(accelerate.utils, "is_mlflow_available", lambda: False)
    monkeypatch.setattr(loop, "load_policy", lambda *a, **k: pytest.fail("the model was loaded"))
    rc = main(["train", str(ROOT / "recipes" / "quickstart.yaml"),
               *overrides(untrained_toy, tmp_path / "run", "train.report_to=[mlflow]")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err == ("laconic: config error: train.report_to: mlflow is not installed (pip install mlflow); "
                               "the run would log nothing to it"), err


def wandb_records(path: str) -> list:
    """The records of a ``.wandb`` file: LevelDB's log format (32 KiB blocks of chunks: a 4-byte checksum,
    a 2-byte length, a 1-byte type: 1 full, 2 first, 3 middle, 4 last) after a 7-byte header, each record
    a ``wandb_internal_pb2.Record``."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = open(path, "rb").read()
    pos, block, buf, out = 7, 32768, b"", []
    while pos + 7 <= len(data):
        room = block - pos % block
        if room < 7:  # a block's tail too short for a chunk header is padding
            pos += room
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        buf += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(buf)
            out.append(record)
            buf = b""
    return out


def test_a_wandb_offline_run_records_the_step_metrics_in_the_run_directory(untrained_toy, tmp_path):
    pytest.importorskip("wandb")
    import os

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "rl.cli", "train", str(ROOT / "recipes" / "quickstart.yaml"),
           *overrides(untrained_toy, out, "train.max_steps=2", "train.report_to=[wandb]", "train.run_name=offline-check")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    files = glob.glob(str(out / "wandb" / "offline-run-*" / "run-*.wandb"))
    assert len(files) == 1, list(out.rglob("*"))
    records = wandb_records(files[0])
    history = [{(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in r.history.item}
               for r in records if r.WhichOneof("record_type") == "history"]
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [h["_step"] for h in history] == [m["step"] for m in logged] == [1, 2]
    for h, m in zip(history, logged):
        for key in ("accuracy", "tokens/mean", "truncation_rate", "reward/mean", "loss"):
            assert h[key] == pytest.approx(m[key]), key
    run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    assert run.display_name == "offline-check"


def test_library_chatter_is_off_unless_verbose(tmp_path, monkeypatch, caplog):
    """Issue 24, B9: accelerate's "Removed shared tensor" note on every save of a tied-embedding model
    is dropped, and vLLM logs warnings and above; train.verbose=true keeps both."""
    import logging
    from collections import OrderedDict

    import torch
    from accelerate.utils import save

    from rl.run.tracking import quiet_libraries

    monkeypatch.delenv("VLLM_LOGGING_LEVEL", raising=False)
    w = torch.zeros(2, 2)
    tied = {"embed.weight": w, "lm_head.weight": w}
    quiet_libraries(verbose=True)
    with caplog.at_level(logging.WARNING):
        save(OrderedDict(tied), tmp_path / "a.safetensors", safe_serialization=True)
    assert "Removed shared tensor" in caplog.text and "VLLM_LOGGING_LEVEL" not in __import__("os").environ
    caplog.clear()
    quiet_libraries(verbose=False)
    with caplog.at_level(logging.WARNING):
        save(OrderedDict(tied), tmp_path / "b.safetensors", safe_serialization=True)
    assert "Removed shared tensor" not in caplog.text
    assert __import__("os").environ["VLLM_LOGGING_LEVEL"] == "WARNING"
