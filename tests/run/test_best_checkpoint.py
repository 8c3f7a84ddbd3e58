"""train.keep_best: the best step by a metric of metrics.jsonl, its checkpoint pinned against the rotation,
final/ optionally the best step's model, summary.json saying which, and a crash + resume choosing the same
best as an uninterrupted run (rl/run/checkpoint.py: Best; rl/train/loop.py)."""

import json
import math
from pathlib import Path

import pytest
import torch

from rl.cli import main
from rl.config import load_config
from rl.config.validate import EVAL_METRICS, keep_best_options
from rl.run.checkpoint import Best, checkpoint_dirs, pick_best, save_checkpoint, use_best, verify
from rl.run.tracking import read_metrics

from tests.conftest import ROOT
from tests.train.test_trainer import TWO_PROCESSES, laconic, overrides, strip_timing

NAN = float("nan")


def opts(**spec):
    return keep_best_options(spec)


# ------------------------------------------------------------------------ choosing, by hand-made rows
def rows(*values, key="eval/accuracy", tie="eval/mean_tokens"):
    """Rows for steps 1, 2, ...: each value a metric or a (metric, tie-break) pair; None: the step has no
    such key (a step that did not evaluate)."""
    out = []
    for step, v in enumerate(values, 1):
        row = {"step": step, "loss": 0.1}
        if isinstance(v, tuple):
            row[key], row[tie] = v
        elif v is not None:
            row[key] = v
        out.append(row)
    return out


def test_max_and_min_pick_the_extreme_and_the_earliest_of_equals():
    seq = rows(0.2, 0.5, 0.4, 0.5, 0.1)
    assert pick_best(seq, opts(metric="eval/accuracy", tie_break=None)).step == 2  # 4 equals 2: the earlier stays
    assert pick_best(seq, opts(metric="eval/accuracy", mode="min", tie_break=None)).step == 5
    b = pick_best(seq, opts(metric="eval/accuracy", tie_break=None))
    assert (b.value, b.tie_value, b.checkpoint) == (0.5, None, "checkpoint-000002")


def test_a_tie_goes_to_fewer_tokens_by_default():
    seq = rows((0.5, 40.0), (0.6, 50.0), (0.6, 30.0), (0.6, 30.0), (0.6, 35.0), (0.4, 10.0))
    o = opts(metric="eval/accuracy")
    assert (o["tie_break"], o["tie_mode"], o["mode"], o["final"]) == ("eval/mean_tokens", "min", "max", "last")
    b = pick_best(seq, o)
    assert (b.step, b.value, b.tie_value) == (3, 0.6, 30.0)  # 4 ties on both: the earlier stays
    assert pick_best(seq, opts(metric="eval/accuracy", tie_mode="max")).step == 2
    # a training metric's default tie-break is the training lengths; none when the metric is the lengths
    assert opts(metric="accuracy")["tie_break"] == "tokens/mean"
    assert opts(metric="eval/mean_tokens", mode="min")["tie_break"] is None
    assert opts(metric="tokens/mean")["tie_break"] is None


def test_nan_missing_and_non_numbers_are_skipped():
    seq = rows(None, NAN, 0.3, math.inf, "0.9", True, None, 0.2, NAN)
    b = pick_best(seq, opts(metric="eval/accuracy", tie_break=None))
    assert (b.step, b.value) == (3, 0.3)
    assert pick_best(seq, opts(metric="eval/accuracy", mode="min", tie_break=None)).step == 8
    assert pick_best(rows(None, NAN), opts(metric="eval/accuracy")).step is None  # never measured: no best
    # equal metric: a step without the tie-break never wins the tie; one with it beats a best without it
    assert pick_best(rows((0.5, 20.0), 0.5), opts(metric="eval/accuracy")).step == 1
    assert pick_best(rows(0.5, (0.5, NAN), (0.5, 90.0)), opts(metric="eval/accuracy")).step == 3


def test_the_state_round_trips_and_a_changed_choice_starts_over():
    b = pick_best(rows((0.5, 40.0), (0.7, 30.0), (0.6, 10.0)), opts(metric="eval/accuracy"))
    saved = json.loads(json.dumps(b.state_dict()))  # as trainer_state.json holds it
    assert saved["step"] == 2 and saved["checkpoint"] == "checkpoint-000002"
    again, note = Best.from_config(opts(metric="eval/accuracy", final="best"), saved)  # final does not matter
    assert note is None and (again.step, again.value, again.tie_value) == (2, 0.7, 30.0)
    assert not again.offer(3, {"eval/accuracy": 0.7, "eval/mean_tokens": 30.0})  # continues exactly
    fresh, note = Best.from_config(opts(metric="eval/accuracy", mode="min"), saved)
    assert fresh.step is None and "changed since the checkpoint" in note
    assert Best.for_run(None, saved) == (None, None)


def test_a_misspelt_training_metric_is_warned_once():
    b, _ = Best.for_run({"metric": "tokens/maen"}, None)
    note = b.missing_note(1, {"tokens/mean": 3.0, "accuracy": 0.5})
    assert "'tokens/maen' (did you mean 'tokens/mean'?)" in note and b.missing_note(2, {"tokens/mean": 3.0}) is None
    e, _ = Best.for_run({"metric": "eval/accuracy"}, None)
    assert e.missing_note(1, {"accuracy": 0.5, "tokens/mean": 3.0}) is None  # a step that did not evaluate


# ------------------------------------------------------------------------ the pinned checkpoint
def test_the_best_checkpoint_is_never_pruned_while_best(tmp_path):
    from accelerate import Accelerator

    acc = Accelerator(cpu=True)
    model = torch.nn.Linear(2, 2)
    model, opt = acc.prepare(model, torch.optim.AdamW(model.parameters()))
    names = []
    for step, best in [(1, 1), (2, 1), (3, 1), (4, 4), (5, 4)]:
        save_checkpoint(acc, tmp_path, step, {"evals": {}}, keep=1, pin=best)
        names.append([int(d.name[-6:]) for d in checkpoint_dirs(tmp_path)])
    assert names == [[1], [1, 2], [1, 3], [4], [4, 5]]  # the old best goes once another is best
    assert all(verify(d) is None for d in checkpoint_dirs(tmp_path))


def test_final_best_without_a_usable_best_checkpoint_keeps_the_last_step(tmp_path):
    from accelerate import Accelerator

    acc = Accelerator(cpu=True)
    model = torch.nn.Linear(2, 2)
    model, opt = acc.prepare(model, torch.optim.AdamW(model.parameters()))
    save_checkpoint(acc, tmp_path, 2, {"evals": {}}, keep=0)
    (tmp_path / "checkpoint-000002" / "model.safetensors").write_bytes(b"damaged")
    best = pick_best(rows(0.1, 0.9, 0.5), opts(metric="eval/accuracy", final="best"))
    warned = []
    final = use_best(acc, tmp_path, best, 3, warn=warned.append)
    assert final["step"] == 3 and final["chosen_by"] == "last"
    assert "checkpoint-000002 cannot be used: model.safetensors has 7 bytes" in final["note"] and len(warned) == 1
    assert use_best(acc, tmp_path, pick_best(rows(None, NAN), opts(metric="eval/accuracy")), 3,
                    warn=warned.append)["note"] == "train.keep_best.final=best: no step measured eval/accuracy"
    assert use_best(acc, tmp_path, pick_best(rows(0.1, 0.2, 0.9), opts(metric="eval/accuracy")), 3)["step"] == 3


# ------------------------------------------------------------------------ config refusals, one line
NO_MODEL = "model.name_or_path=/nonexistent/model"  # each refusal comes before any model load

BAD = [
    (["train.keep_best={mode: max}"], "train.keep_best.metric must be given"),
    (["eval.every=1", "train.keep_best={metric: eval/accuracy, tie_brake: eval/mean_tokens}"],
     "unknown option 'tie_brake' (options: metric, mode, tie_break, tie_mode, final); did you mean 'tie_break'?"),
    (["eval.every=1", "train.keep_best={metric: eval/accuracy, mode: maximum}"], "did you mean 'max'"),
    (["eval.every=1", "train.keep_best={metric: eval/accuracy, tie_mode: least}"], "train.keep_best.tie_mode"),
    (["eval.every=1", "train.keep_best={metric: eval/accuracy, final: bset}"], "did you mean 'best'"),
    (["eval.every=1", "train.keep_best={metric: eval/acuracy}"], "did you mean 'eval/accuracy'"),
    (["eval.every=0", "train.keep_best={metric: eval/accuracy}"], "set eval.every=N"),
    (["eval.every=0", "train.keep_best.metric=eval/accuracy"], "never be measured"),  # a dotted override
    (["eval.every=0", "train.keep_best={metric: accuracy, tie_break: eval/mean_tokens}"],
     "train.keep_best.tie_break=eval/mean_tokens would never be measured"),
    (["train.keep_best=eval/accuracy"], "train.keep_best"),
]


@pytest.mark.parametrize("args,expect", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_keep_best_is_one_line(tmp_path, capsys, args, expect):
    code = main(["train", str(ROOT / "recipes/quickstart.yaml"), NO_MODEL, f"train.output_dir={tmp_path / 'out'}",
                 "rollout.engine=transformers", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("laconic: "), err
    assert expect in err[0], err[0]


def test_good_keep_best_passes():
    recipe = ROOT / "recipes/quickstart.yaml"
    assert load_config(recipe, ["train.keep_best={metric: accuracy}"]).train.keep_best == {"metric": "accuracy"}
    load_config(recipe, ["eval.every=5", "train.keep_best={metric: eval/accuracy, mode: max, tie_break: null, "
                         "tie_mode: max, final: best}"])


# ------------------------------------------------------------------------ runs of the toy
# the best moves (step 1 has accuracy 0 on the untrained toy, a later step more); ties go to the longer
# step, so the best is not the last one while the lengths fall (the length rewards' doing)
KEEP = "train.keep_best={metric: eval/accuracy, tie_break: eval/mean_tokens, tie_mode: max, final: %s}"
RUN = ["train.max_steps=6", "train.save_every=2", "train.keep_checkpoints=1", "eval.before=false", "eval.every=1"]


def weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(path / "model.safetensors")


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def best_run(untrained_toy, tmp_path_factory):
    """An uninterrupted run with train.keep_best.final=best, evaluated every step."""
    out = tmp_path_factory.mktemp("best") / "run"
    p = laconic(overrides(untrained_toy, out, *RUN, KEEP % "best"))
    assert p.returncode == 0, p.stderr[-3000:]
    return out, p


def test_final_best_is_the_best_steps_model_and_summary_says_so(best_run):
    out, p = best_run
    metrics = read_metrics(out / "metrics.jsonl")
    assert {k for k in metrics[0] if k.startswith("eval/")} == set(EVAL_METRICS)  # validate.py's list is true
    expect = pick_best(metrics, opts(metric="eval/accuracy", tie_break="eval/mean_tokens", tie_mode="max"))
    k = expect.step
    assert k is not None and k < 6, [(r["eval/accuracy"], r["eval/mean_tokens"]) for r in metrics]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["final"] == {"step": k, "chosen_by": "eval/accuracy", "value": expect.value,
                                "tie_break": "eval/mean_tokens", "tie_value": expect.tie_value}
    assert summary["best"]["step"] == k and summary["best"]["checkpoint"] == f"checkpoint-{k:06d}"
    assert summary["last"] == {"step": 6, "eval/accuracy": metrics[-1]["eval/accuracy"],
                               "eval/mean_tokens": metrics[-1]["eval/mean_tokens"]}
    # the best checkpoint survived a rotation that keeps one, next to the last
    assert [d.name for d in checkpoint_dirs(out)] == [f"checkpoint-{k:06d}", "checkpoint-000006"]
    best_ckpt = out / f"checkpoint-{k:06d}"
    assert verify(best_ckpt) is None and json.loads((best_ckpt / "trainer_state.json").read_text())["best"]["step"] == k
    final = weights(out / "final")
    assert same(final, weights(best_ckpt)) and not same(final, weights(out / "checkpoint-000006"))
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(out / "final")  # a loadable model directory, as always
    # "after" evaluates the model in final/: same model, same eval seed as step k's evaluation
    row = metrics[k - 1]
    assert (summary["after"]["accuracy"], summary["after"]["mean_tokens"]) == (row["eval/accuracy"],
                                                                               row["eval/mean_tokens"])
    assert f"best: step {k}, eval/accuracy" in p.stdout and f"final/ is step {k}" in p.stdout


def test_crashes_and_resumes_choose_the_same_best(best_run, untrained_toy, tmp_path):
    """Killed inside the save of the best step's checkpoint, then after it; the resumed run chooses the
    same best, with the same value, and its final/ holds the same weights."""
    full, _ = best_run
    k = json.loads((full / "summary.json").read_text())["final"]["step"]
    out, args = tmp_path / "chaos", overrides(untrained_toy, tmp_path / "chaos", *RUN, KEEP % "best")
    p = laconic(args, env={"LACONIC_FAIL_IN_CHECKPOINT": str(k)})
    assert p.returncode == 17, p.stderr[-3000:]
    p = laconic(args + ["train.resume=latest"], env={"LACONIC_FAIL_AT_STEP": str(k + 2)})
    assert p.returncode == 17, p.stderr[-3000:]
    state = json.loads((checkpoint_dirs(out)[-1] / "trainer_state.json").read_text())
    assert state["best"]["step"] == k  # the newest checkpoint knows the best so far
    p = laconic(args + ["train.resume=latest"])
    assert p.returncode == 0, p.stderr[-3000:]
    assert "resumed from" in p.stdout
    a, b = (json.loads((d / "summary.json").read_text()) for d in (full, out))
    assert (a["final"], a["best"], a["last"], a["after"]) == (b["final"], b["best"], b["last"], b["after"])
    assert strip_timing(read_metrics(full / "metrics.jsonl")) == strip_timing(read_metrics(out / "metrics.jsonl"))
    assert [d.name for d in checkpoint_dirs(out)] == [d.name for d in checkpoint_dirs(full)]
    assert same(weights(full / "final"), weights(out / "final"))


def test_final_last_keeps_the_last_step_and_names_the_best(best_run, untrained_toy, tmp_path):
    """final: last; and eval.every=4 with 6 steps: the last step is evaluated too (a candidate). The
    training itself is the same as the best run's: the choice and its checkpoints change nothing."""
    full, _ = best_run
    out = tmp_path / "last"
    p = laconic(overrides(untrained_toy, out, *RUN, KEEP % "last", "eval.every=4", "eval.after=false"))
    assert p.returncode == 0, p.stderr[-3000:]
    metrics = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in metrics if "eval/accuracy" in r] == [4, 6]
    drop = lambda rs: [{k: v for k, v in r.items() if not k.startswith("eval/")} for r in strip_timing(rs)]
    assert drop(metrics) == drop(read_metrics(full / "metrics.jsonl"))
    summary = json.loads((out / "summary.json").read_text())
    k = pick_best(metrics, opts(metric="eval/accuracy", tie_break="eval/mean_tokens", tie_mode="max")).step
    assert k in (4, 6) and summary["final"] == {"step": 6, "chosen_by": "last"} and summary["best"]["step"] == k
    assert "after" not in summary
    ckpt = out / summary["best"]["checkpoint"]
    assert verify(ckpt) is None and {d.name for d in checkpoint_dirs(out)} == {ckpt.name, "checkpoint-000006"}
    assert same(weights(out / "final"), weights(out / "checkpoint-000006"))


def test_two_processes_take_the_same_decisions(untrained_toy, tmp_path):
    """Every process must save (a collective) at the same steps and load the same best at the end: the
    main process's values decide (a metric such as time/step differs between processes)."""
    import sys

    out = tmp_path / "ddp"
    launcher = TWO_PROCESSES
    p = laconic(overrides(untrained_toy, out, *RUN, KEEP % "best", "eval.after=false"), launcher=launcher, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    k = json.loads((out / "summary.json").read_text())["final"]["step"]
    assert k == pick_best(read_metrics(out / "metrics.jsonl"),
                          opts(metric="eval/accuracy", tie_break="eval/mean_tokens", tie_mode="max")).step
    assert same(weights(out / "final"), weights(out / f"checkpoint-{k:06d}"))
