"""A resume whose learning-rate schedule differs from the run's (issue 24, B7). Before: a longer
``train.max_steps`` after a finished cosine silently restarted the cosine from the middle (the lr jumping
from 0 back up), and transformers' cosine past its horizon rises again (cos(pi x), x > 1). Now the run
stops with one line until ``train.resume_schedule`` says ``extend`` or ``keep``; ``keep`` holds the lr where
the run's schedule ended."""

import json

import pytest
import torch

from rl.config import ConfigError, TrainConfig
from rl.run.rundir import plan_start


def finished_run(tmp_path, **train):
    out = tmp_path / "run"
    out.mkdir(parents=True)
    (out / "config.json").write_text(json.dumps({"train": {"max_steps": 2, "warmup_steps": 0, "lr_scheduler": "cosine",
                                                           **train}}))
    return out


def resume(out, monkeypatch, **train):
    import rl.run.rundir as rundir

    monkeypatch.setattr(rundir, "latest_valid_checkpoint", lambda out, warn: out / "checkpoint-000002")
    return plan_start(TrainConfig(output_dir=str(out), resume="latest", lr_scheduler="cosine", **train))


def test_a_longer_run_after_a_finished_cosine_asks_which_schedule(tmp_path, monkeypatch):
    out = finished_run(tmp_path)
    with pytest.raises(ConfigError, match=r"different learning-rate schedule \(max_steps 2 -> 4; cosine\): set "
                                          r"train.resume_schedule=extend .* or train.resume_schedule=keep"):
        resume(out, monkeypatch, max_steps=4)
    assert resume(out, monkeypatch, max_steps=4, resume_schedule="keep").schedule == {
        "max_steps": 2, "warmup_steps": 0, "lr_scheduler": "cosine"}
    extended = resume(out, monkeypatch, max_steps=4, resume_schedule="extend")
    assert extended.schedule == {} and "max_steps 2 -> 4" in extended.notes[-1]
    assert resume(out, monkeypatch, max_steps=2).schedule == {}  # the same schedule: nothing to ask
    constant = finished_run(tmp_path / "c", lr_scheduler="constant")  # a constant lr has nothing to extend
    assert plan_start(TrainConfig(output_dir=str(constant), resume="latest", max_steps=4)).schedule == {}


def test_kept_schedules_hold_their_end_value():
    from transformers import get_scheduler

    from rl.train.loop import hold_at_end

    def lrs(hold: bool) -> list[float]:
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        sched = get_scheduler("cosine", opt, num_warmup_steps=0, num_training_steps=2)
        if hold:
            hold_at_end(sched, 2)
        out = []
        for _ in range(4):
            opt.step()
            sched.step()
            out.append(round(sched.get_last_lr()[0], 6))
        return out

    assert lrs(hold=False) == [0.5, 0.0, 0.5, 1.0]  # transformers' cosine past its horizon
    assert lrs(hold=True) == [0.5, 0.0, 0.0, 0.0]


def test_a_resumed_run_keeps_or_extends_the_schedule_end_to_end(untrained_toy, tmp_path):
    """The toy trained 2 steps on a cosine, then resumed to 4: refused with one line and nothing written;
    ``keep`` trains steps 3-4 at the lr the cosine ended on (0); ``extend`` restarts the cosine's
    remainder over 4 steps (lr > 0 at step 3), and config.json records the schedule in force."""
    from rl.run.tracking import read_metrics
    from tests.train.test_trainer import laconic, overrides

    common = ["train.lr_scheduler=cosine", "train.save_every=1", "eval.before=false", "eval.after=false"]
    out = tmp_path / "run"
    p = laconic(overrides(untrained_toy, out, *common, "train.max_steps=2"))
    assert p.returncode == 0, p.stderr[-3000:]
    first = read_metrics(out / "metrics.jsonl")

    p = laconic(overrides(untrained_toy, out, *common, "train.max_steps=4", "train.resume=latest"))
    assert p.returncode != 0 and "train.resume_schedule=keep" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and read_metrics(out / "metrics.jsonl") == first

    keep = tmp_path / "keep"
    import shutil
    shutil.copytree(out, keep)
    p = laconic(overrides(untrained_toy, keep, *common, "train.max_steps=4", "train.resume=latest",
                          "train.resume_schedule=keep"))
    assert p.returncode == 0, p.stderr[-3000:]
    lrs = [r["lr"] for r in read_metrics(keep / "metrics.jsonl") if "lr" in r]
    assert lrs[1] == 0.0 and lrs[2:] == [0.0, 0.0]  # held at the cosine's end, not rising again
    saved = json.loads((keep / "config.json").read_text())
    assert saved["train"]["max_steps"] == 4 and saved["lr_schedule"]["max_steps"] == 2  # the schedule in force
    p = laconic(overrides(untrained_toy, keep, *common, "train.max_steps=5", "train.resume=latest"))
    assert p.returncode != 0 and "max_steps 2 -> 5" in p.stderr  # a later resume still compares with the kept one

    p = laconic(overrides(untrained_toy, out, *common, "train.max_steps=4", "train.resume=latest",
                          "train.resume_schedule=extend"))
    assert p.returncode == 0, p.stderr[-3000:]
    lrs = [r["lr"] for r in read_metrics(out / "metrics.jsonl") if "lr" in r]
    assert lrs[1] == 0.0 and lrs[2] > 0  # the 4-step cosine taken up at step 3
    assert json.loads((out / "config.json").read_text())["lr_schedule"]["max_steps"] == 4
