"""Failure paths: crashes and resumes, damaged checkpoints, a full or read-only disk, an existing
run directory, and bad input that must be refused with one line before any model is loaded."""

import json
import subprocess
from pathlib import Path

import pytest
import torch

from rl.cli import main
from rl.config import TrainConfig
from rl.run.checkpoint import (CheckpointError, checkpoint_dirs, latest_valid_checkpoint, load_checkpoint,
                               save_checkpoint, verify)
from rl.run.rundir import plan_start
from rl.run.tracking import read_metrics

from tests.conftest import ROOT
from tests.train.test_trainer import TWO_PROCESSES, laconic, overrides, strip_timing

NO_MODEL = "model.name_or_path=/nonexistent/model"  # every check below must fire before a model load


# ------------------------------------------------------------------------ crash, resume, fallback
def final_weights(out: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(out / "final" / "model.safetensors")


def test_chaos_crashes_resume_to_the_uninterrupted_run(untrained_toy, tmp_path):
    """Killed in the middle of a checkpoint write, right after a resume, and after a second resume;
    then the newest checkpoint is damaged on disk. Every resume continues exactly: the metrics of
    every step and the final weights equal an uninterrupted run's."""
    extra = ["train.max_steps=8", "train.save_every=2", "algo.kl_coef=0.05", "algo.updates_per_rollout=2",
             "train.lr_scheduler=cosine", "train.warmup_steps=1", "eval.before=false", "eval.after=false"]
    full = laconic(overrides(untrained_toy, tmp_path / "full", *extra))
    assert full.returncode == 0, full.stderr[-3000:]
    out, resume = tmp_path / "chaos", "train.resume=latest"

    p = laconic(overrides(untrained_toy, out, *extra), env={"LACONIC_FAIL_IN_CHECKPOINT": "4"})
    assert p.returncode == 17  # died inside the save of checkpoint 4
    assert [d.name for d in checkpoint_dirs(out)] == ["checkpoint-000002"] and (out / ".tmp-checkpoint-000004").is_dir()

    p = laconic(overrides(untrained_toy, out, *extra, resume), env={"LACONIC_FAIL_AT_STEP": "3"})
    assert p.returncode == 17, p.stderr[-3000:]  # died right after resuming at step 2
    assert not (out / ".tmp-checkpoint-000004").exists()  # the next start removed the half-written save

    p = laconic(overrides(untrained_toy, out, *extra, resume), env={"LACONIC_FAIL_AT_STEP": "7"})
    assert p.returncode == 17, p.stderr[-3000:]  # second resume, died after checkpoint 6
    steps = [json.loads((d / "trainer_state.json").read_text())["step"] for d in checkpoint_dirs(out)]
    assert steps == [4, 6]  # a checkpoint written after a resume records its own step

    model = out / "checkpoint-000006" / "model.safetensors"
    model.write_bytes(model.read_bytes()[:1000])  # a damaged newest checkpoint: fall back to 4
    p = laconic(overrides(untrained_toy, out, *extra, resume))
    assert p.returncode == 0, p.stderr[-3000:]
    assert "skipping damaged checkpoint" in p.stdout + p.stderr and "checkpoint-000006" in p.stdout + p.stderr
    assert "resumed from" in p.stdout and "checkpoint-000004" in p.stdout

    a = strip_timing(read_metrics(tmp_path / "full" / "metrics.jsonl"))
    b = strip_timing(read_metrics(out / "metrics.jsonl"))
    assert [r["step"] for r in b] == list(range(1, 9))  # none duplicated, none missing
    assert a[5]["grad_norm"] > 0 and a[5]["kl"] > 0  # the compared steps really trained
    assert a == b
    wa, wb = final_weights(tmp_path / "full"), final_weights(out)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)  # bit-identical


@pytest.fixture(scope="module")
def two_checkpoints(tmp_path_factory):
    """checkpoint-000001 and -000002 of a tiny model with optimizer, scheduler and RNG state."""
    from accelerate import Accelerator

    out = tmp_path_factory.mktemp("ckpt")
    acc = Accelerator(cpu=True)
    model = torch.nn.Linear(4, 4)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    model, opt = acc.prepare(model, opt)
    acc.register_for_checkpointing(sched)
    for step in (1, 2):
        model(torch.ones(1, 4)).sum().backward()
        opt.step()
        # the state loaded at a resume still carries the old step: the new one must win
        save_checkpoint(acc, out, step, {"step": 99, "sampler": {}, "evals": {}}, keep=5)
    return acc, out


FILES = ["model.safetensors", "optimizer.bin", "custom_checkpoint_0.pkl", "trainer_state.json", "random_states_0.pkl"]


@pytest.mark.parametrize("name", FILES)
def test_a_damaged_checkpoint_is_named_and_skipped(two_checkpoints, tmp_path, name):
    import shutil

    acc, src = two_checkpoints
    out = tmp_path / "run"
    shutil.copytree(src, out)
    assert json.loads((out / "checkpoint-000002" / "trainer_state.json").read_text())["step"] == 2
    assert verify(out / "checkpoint-000002") is None
    f = out / "checkpoint-000002" / name
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])  # truncated, as by a kill or a full disk
    assert name in verify(out / "checkpoint-000002")
    warnings = []
    assert latest_valid_checkpoint(out, warn=warnings.append) == out / "checkpoint-000001"
    assert len(warnings) == 1 and "checkpoint-000002" in warnings[0] and name in warnings[0]
    with pytest.raises(CheckpointError, match=name):
        load_checkpoint(acc, out / "checkpoint-000002")


def test_a_flipped_byte_is_caught(two_checkpoints, tmp_path):
    import shutil

    _, src = two_checkpoints
    shutil.copytree(src, tmp_path / "run")
    f = tmp_path / "run" / "checkpoint-000002" / "random_states_0.pkl"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    assert "does not match its checksum" in verify(tmp_path / "run" / "checkpoint-000002")


# ------------------------------------------------------------------------ disks
@pytest.fixture
def tmpfs(tmp_path):
    """A small tmpfs to fill or make read-only; skipped where mounting is not allowed."""
    mounts = []

    def mount(size_mb: int, read_only: bool = False) -> Path:
        d = tmp_path / f"mnt{len(mounts)}"
        d.mkdir()
        opts = f"size={size_mb}m" + (",ro" if read_only else "")
        if subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(d)], capture_output=True).returncode:
            pytest.skip("cannot mount a tmpfs here")
        mounts.append(d)
        return d

    yield mount
    for d in mounts:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)


def test_full_disk_during_a_checkpoint_is_one_line_and_keeps_the_previous(untrained_toy, tmpfs):
    disk = tmpfs(22)  # room for one toy checkpoint (~13 MB), not two
    out = disk / "run"
    p = laconic(overrides(untrained_toy, out, "train.save_every=1", "train.keep_checkpoints=3",
                          "eval.before=false", "eval.after=false"))
    assert p.returncode == 2, p.stderr[-3000:]
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("laconic: checkpoint error: could not write") and "the disk is full" in last, last
    assert ".tmp-checkpoint-000002" in last
    assert [d.name for d in checkpoint_dirs(out)] == ["checkpoint-000001"] and verify(out / "checkpoint-000001") is None
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp-")]


def test_read_only_output_dir_is_refused_before_the_model_loads(tmpfs, capsys):
    disk = tmpfs(1, read_only=True)
    assert main(["train", str(ROOT / "recipes/quickstart.yaml"), NO_MODEL, f"train.output_dir={disk / 'run'}"]) == 2
    assert "is not writable" in one_line(capsys)


# ------------------------------------------------------------------------ the output directory
def test_rerun_into_an_existing_run_is_refused_and_overwrite_deletes_it(tmp_path, capsys):
    out = tmp_path / "run"
    (out / "checkpoint-000002").mkdir(parents=True)
    (out / "metrics.jsonl").write_text('{"step": 1}\n')
    assert main(["train", str(ROOT / "recipes/quickstart.yaml"), NO_MODEL, f"train.output_dir={out}"]) == 2
    line = one_line(capsys)
    assert str(out) in line and "train.resume=latest" in line and "train.overwrite=true" in line
    start = plan_start(TrainConfig(output_dir=str(out), overwrite=True))
    assert start.wipe and start.checkpoint is None
    # resume on a run whose only checkpoint does not verify: refused, nothing deleted
    with pytest.raises(Exception, match="no checkpoint in .* verifies"):
        plan_start(TrainConfig(output_dir=str(out), resume="latest"))
    assert (out / "metrics.jsonl").exists()


def test_resume_on_an_empty_dir_says_nothing_was_resumed(tmp_path):
    start = plan_start(TrainConfig(output_dir=str(tmp_path / "new"), resume="latest"))
    assert start.checkpoint is None and "nothing to resume" in start.notes[0]


def test_overwrite_refuses_a_directory_that_is_not_a_run(tmp_path):
    (tmp_path / "thesis.tex").write_text("years of work")
    with pytest.raises(Exception, match="not a laconic run"):
        plan_start(TrainConfig(output_dir=str(tmp_path), overwrite=True))


def test_overwrite_run_starts_clean(untrained_toy, tmp_path):
    out = tmp_path / "run"
    args = overrides(untrained_toy, out, "train.max_steps=1", "eval.before=false", "eval.after=false")
    assert laconic(args).returncode == 0
    (out / "checkpoint-000005").mkdir()  # stale: would be resumed by mistake if left behind
    p = laconic(args + ["train.overwrite=true"])
    assert p.returncode == 0, p.stderr[-2000:]
    assert [d.name for d in checkpoint_dirs(out)] == ["checkpoint-000001"]
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl")] == [1]


# ------------------------------------------------------------------------ bad input, one line, early
def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("laconic: "), err
    return err[0]


def run_cli(tmp_path, *args) -> int:
    return main(["train", str(ROOT / "recipes/quickstart.yaml"), NO_MODEL, f"train.output_dir={tmp_path / 'out'}",
                 "rollout.engine=transformers", *args])


def write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


BAD = [
    (["train.lr_scheduler=cosin"], "did you mean 'cosine'"),
    (["train.learning_rate=0"], "train.learning_rate must be > 0"),
    (["train.learning_rate=-1e-5"], "train.learning_rate must be > 0"),
    (["rewards=[{name: dlr}]"], "did you mean 'dler'"),
    (["rewards=[{name: dler, limt: 3}]"], "rewards[0]"),
    (["rewards=[{name: 'no_such_pkg.mod:fn'}]"], "no_such_pkg"),
    (["rewards=[{name: 'tests.bad_rewards:raises'}]"], "config error: rewards: reward 'tests.bad_rewards:raises' failed"),
    (["rewards=[{name: 'tests.bad_rewards:nan'}]"], "nan"),
    (["rewards=[{name: 'tests.bad_rewards:too_few'}]"], "wrong number of values"),
    (["data.prompt_template={question}"], "quote"),
    (["train.overwrite=true", "train.resume=latest"], "exclude each other"),
    (["algo.mask_truncated=true"], "reward 'dler' scores truncation"),  # the quickstart's reward is DLER's
    (["algo.reward_aggregation=normalise_then_sum"], "did you mean 'normalize_then_sum'"),
    (["algo.reward_aggregation=normalize_then_sum", "rewards=[{name: decs}]"], "per-token values"),
    (["algo.mask_truncated=true", "rewards=[{name: correctness}]", "algo.outlier_truncation={alpha: 3}"],
     "DOT"),
]


@pytest.mark.parametrize("args,expect", BAD, ids=[a[0] for a, _ in BAD])
def test_bad_config_is_one_line_before_the_model_loads(tmp_path, capsys, args, expect):
    assert run_cli(tmp_path, *args) == 2
    assert expect.lower() in one_line(capsys).lower()


def test_yaml_syntax_error_names_file_and_line(tmp_path, capsys):
    recipe = write(tmp_path / "r.yaml", "model:\n  dtype: float32\ntrain: [\n  max_steps: 3\n")
    assert main(["train", str(recipe)]) == 2
    line = one_line(capsys)
    assert str(recipe) in line and "line" in line


BAD_DATA = [
    (b"", "has no rows"),
    (b'{"question": "1+1", "answer": "2"}\n{"question": "2+2", "answer": "4"\n', "line 2: not valid JSON"),
    (b'{"question": "1+1", "answer": "2"}\n{"question": "\xff\xfe", "answer": "4"}\n', "line 2: not UTF-8"),
    (b'{"question": "1+1", "answer": "2"}\n[1, 2]\n', "line 2: expected a JSON object"),
    (b'{"question": "1+1", "answer": "2"}\n{"question": "2+2", "answer": null}\n', "row 1"),
    (b'{"question": "1+1", "answer": "2"}\n{"question": "2+2"}\n', "missing or empty"),
    (b'{"question": "q", "answer": "Natalia sold 48/2 = 24 clips.\\nShe sold 48+24 = 72 clips."}\n',
     "no '####' or \\boxed{}"),
]


@pytest.mark.parametrize("data,expect", BAD_DATA, ids=["empty", "malformed", "not-utf8", "not-object",
                                                        "null-answer", "missing-answer", "gsm8k-without-marker"])
def test_bad_data_names_file_and_row_before_the_model_loads(tmp_path, capsys, data, expect):
    f = write(tmp_path / "train.jsonl", data)
    assert run_cli(tmp_path, f"data.name={f}", "eval.before=false", "eval.after=false") == 2
    line = one_line(capsys)
    assert expect in line and "train.jsonl" in line, line


def test_bad_rows_skip_warns_with_count_and_first_id(tmp_path):
    from rl.config import DataConfig
    from rl.data import parse_rows

    rows = [{"question": "1+1", "answer": "2"}, {"question": "2+2", "answer": None, "id": "p7"},
            {"question": "3+3", "answer": ""}]
    with pytest.warns(UserWarning, match=r"2 of 3 rows are unusable \(first: row 1, id p7"):
        kept = parse_rows(rows, DataConfig(bad_rows="skip"), "mem")
    assert [r.answer for r in kept] == ["2"]


def test_indivisible_prompts_per_step_is_one_line_from_one_process(tmp_path):
    launcher = TWO_PROCESSES
    p = laconic([NO_MODEL, f"train.output_dir={tmp_path / 'out'}", "rollout.prompts_per_step=3"], launcher=launcher)
    assert p.returncode != 0
    lines = [l for l in p.stderr.splitlines() if l.startswith("laconic:")]
    assert len(lines) == 1 and "divisible by the number of processes (2)" in lines[0], p.stderr[-2000:]
    assert "rl/train/loop.py" not in p.stderr  # no traceback from laconic (the launcher adds its own exit summary)


def test_atomic_save_dir_keeps_the_old_directory_when_the_write_fails(tmp_path):
    from rl.run.checkpoint import atomic_save_dir

    final = tmp_path / "final"
    atomic_save_dir(final, lambda d: (d.mkdir(), (d / "config.json").write_text("old")))

    def half_write(d: Path) -> None:
        d.mkdir()
        (d / "config.json").write_text("")
        raise OSError(28, "No space left on device")

    with pytest.raises(CheckpointError, match="the disk is full"):
        atomic_save_dir(final, half_write)
    assert (final / "config.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final"]


def test_a_reward_failing_mid_run_is_one_line_and_the_run_resumes(untrained_toy, tmp_path):
    out = tmp_path / "run"
    args = overrides(untrained_toy, out, "train.save_every=1", "eval.before=false", "eval.after=false",
                     "rewards=[{name: 'tests.bad_rewards:fails_at_step_2'}]")
    p = laconic(args)
    assert p.returncode == 2
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("laconic: reward error: reward 'tests.bad_rewards:fails_at_step_2' failed: ValueError"), last
    assert "train.resume=latest" in last and "Traceback" not in p.stderr
    assert [d.name for d in checkpoint_dirs(out)] == ["checkpoint-000001"]
