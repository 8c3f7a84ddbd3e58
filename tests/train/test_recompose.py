"""RoRecomp in the loop (rl/train/recompose.py): the split of a step's batch, the FIFO buffer and its
compensation step (hand-computed ratio against the sampler's log-probs), and a toy run that takes
compensation steps and resumes exactly after a crash (the buffer is in the checkpoint)."""

import json
import math
from types import SimpleNamespace

import pytest
import torch

from rl.config import AlgoConfig
from rl.engines.base import Rollout
from rl.run.checkpoint import checkpoint_dirs
from rl.run.tracking import read_metrics
from rl.train.recompose import Recompose
from rl.train.update import NoSchedule, score_pass, update_policy

from tests.train.test_trainer import TWO_PROCESSES, laconic, overrides, strip_timing

ONE = SimpleNamespace(num_processes=1, process_index=0)


def batch(lengths, correct, group=0):
    rollouts = [Rollout(0, [1], [7] * n, "", "stop", [-0.5] * n) for n in lengths]
    samples = [SimpleNamespace(group=group, correct=c) for c in correct]
    return rollouts, samples


def test_split_trains_the_priority_and_buffers_the_rest_with_their_advantage_and_step():
    rc = Recompose.build({"alpha": 0.5})
    rollouts, samples = batch([5, 9, 3, 7], [True, True, False, False])
    adv = torch.tensor([0.8, 0.6, -0.7, -0.9])
    kept, a, old, ent, counts = rc.split(rollouts, samples, adv, None, None, step=3)
    assert [r.length for r in kept] == [5, 7] and a.tolist() == pytest.approx([0.8, -0.9]) and counts == [2, 2]
    assert old is None and ent is None
    assert [(e.rollout.length, e.advantage, e.step) for e in rc.entries] == [(9, pytest.approx(0.6), 3),
                                                                             (3, pytest.approx(-0.7), 3)]
    assert rc.entries[0].rollout.versions == [3] * 9  # written at step 3: older weights' tokens later


def test_a_batch_without_signal_keeps_one_untrained_row_and_buffers_nothing():
    rc = Recompose.build({})
    rollouts, samples = batch([4, 6], [True, True])
    kept, a, *_ , counts = rc.split(rollouts, samples, torch.zeros(2), None, None, step=1)
    assert len(kept) == 1 and not kept[0].trained and counts == [0, 0] and rc.entries == []


def test_buffered_samples_need_sampler_logprobs():
    rc = Recompose.build({})
    rollouts, samples = batch([5, 9], [True, True])
    rollouts[1].logprobs = None
    with pytest.raises(ValueError, match="sampler log-probs"):
        rc.split(rollouts, samples, torch.tensor([1.0, -1.0]), None, None, step=1)


def test_compensation_pops_the_oldest_full_batch_and_drops_the_stale():
    rc = Recompose.build({"alpha": 0.5, "batch": 2, "max_age": 2})
    calls = []

    def update(rs, adv):
        calls.append(([r.length for r in rs], adv.tolist()))
        return {"loss": 0.5}

    for step, lengths in ((1, [2, 3, 4, 5]), (2, [6, 7, 8, 9])):  # each step buffers 2 (the long-correct ones)
        rollouts, samples = batch(lengths, [True] * 4)
        rc.split(rollouts, samples, torch.tensor([1.0, 0.5, -0.5, -1.0]), None, None, step)
    s = rc.compensate(ONE, 2, 0, update)
    assert calls == [([4, 5], [-0.5, -1.0])] and s["rorecomp/comp_step"] == 1.0 and s["rorecomp/comp_loss"] == 0.5
    assert s["rorecomp/buffer_size"] == 2 and s["rorecomp/comp_steps"] == 1 and s["rorecomp/comp_age"] == 1
    s = rc.compensate(ONE, 5, 0, update)  # step 2's samples are 3 steps old at step 5: dropped, nothing to train
    assert len(calls) == 1 and s["rorecomp/dropped"] == 2 and s["rorecomp/comp_step"] == 0.0
    state = json.loads(json.dumps(rc.state_dict()))
    again = Recompose.build({"batch": 2})
    again.load_state_dict(state)
    assert again.comp_steps == 1 and again.entries == rc.entries


def test_compensation_probability_is_one_seeded_coin_per_step():
    taken = []
    for step in range(1, 41):
        rc = Recompose.build({"alpha": 0.5, "batch": 1, "prob": 0.5})
        rollouts, samples = batch([2, 3], [True, True])
        rc.split(rollouts, samples, torch.tensor([1.0, -1.0]), None, None, step)
        taken.append(rc.compensate(ONE, step, 0, lambda rs, adv: {})["rorecomp/comp_step"])
    assert 10 < sum(taken) < 30  # about half
    rc = Recompose.build({"alpha": 0.5, "batch": 1, "prob": 0.5})
    rollouts, samples = batch([2, 3], [True, True])
    rc.split(rollouts, samples, torch.tensor([1.0, -1.0]), None, None, 7)
    assert rc.compensate(ONE, 7, 0, lambda rs, adv: {})["rorecomp/comp_step"] == taken[6]  # reproducible


def test_the_compensation_step_ratio_is_against_the_sampler_logprob(toy):
    """A buffered correct completion (A = -0.5 in its group) written at step 1 with sampler log-probs
    b_t = p_t - 0.1 (p_t: the policy's), trained at step 2: every ratio is e^0.1 = 1.105 (inside the clip
    range 0.8 .. 1.28), token-mean loss = -A e^0.1 = 0.5526, and the lr schedule does not move."""
    from accelerate import Accelerator

    model, tok = toy
    ids = tok("A:12")["input_ids"][:4]
    probe = Rollout(0, tok("Q:3+4=")["input_ids"], ids, "", "stop", None)
    p = score_pass(model, [probe], tok.pad_token_id, 1.0, 8, False)[0][0].tolist()
    short = Rollout(0, probe.prompt_ids, ids[:2], "", "stop", [0.0, 0.0])
    long = Rollout(0, probe.prompt_ids, ids, "", "stop", [v - 0.1 for v in p])
    rc = Recompose.build({"alpha": 0.5, "batch": 1})
    samples = [SimpleNamespace(group=0, correct=True)] * 2
    rc.split([short, long], samples, torch.tensor([0.5, -0.5]), None, None, step=1)
    policy = type(model)(model.config)
    policy.load_state_dict(model.state_dict())
    opt = torch.optim.SGD(policy.parameters(), lr=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    acc = Accelerator(cpu=True)

    def update(rs, adv):
        return update_policy(acc, policy, None, opt, NoSchedule(), rs, adv, AlgoConfig(loss_agg="token-mean"),
                             pad_id=tok.pad_token_id, temperature=1.0, micro_batch_size=8, max_grad_norm=1e9,
                             norm_len=16, version=2, offpolicy="behavior")

    s = rc.compensate(ONE, 2, 0, update)
    assert s["rorecomp/comp_ratio"] == pytest.approx(math.exp(0.1), rel=1e-5)
    assert s["rorecomp/comp_loss"] == pytest.approx(0.5 * math.exp(0.1), rel=1e-5)
    assert sched.last_epoch == 0


def test_recompose_run_takes_compensation_steps_and_resumes_exactly(untrained_toy, tmp_path):
    """4 prompts x 4 a step; half of each class trains at once, the rest (up to 8 a step) waits; compensation
    batches of 6 leave some behind, so step 3's checkpoint holds buffered samples. Killed before step 4 and resumed from step 3's checkpoint (its buffer holds
    samples), the run equals the uninterrupted one."""
    extra = ["algo.recompose={alpha: 0.5, batch: 6, max_age: 2}", "train.max_steps=5", "train.save_every=1",
             "eval.before=false", "eval.after=false"]
    full = laconic(overrides(untrained_toy, tmp_path / "full", *extra))
    assert full.returncode == 0, full.stderr[-3000:]
    rows = read_metrics(tmp_path / "full" / "metrics.jsonl")
    assert all(0 < r["rorecomp/priority_size"] < 16 for r in rows)
    assert sum(r["rorecomp/comp_step"] for r in rows) >= 2 and rows[-1]["rorecomp/comp_steps"] >= 2
    assert any("rorecomp/comp_loss" in r for r in rows)
    out = tmp_path / "crash"
    p = laconic(overrides(untrained_toy, out, *extra), env={"LACONIC_FAIL_AT_STEP": "4"})
    assert p.returncode == 17
    saved = json.loads((checkpoint_dirs(out)[-1] / "trainer_state.json").read_text())["recompose"][0]
    assert saved["entries"], "the checkpoint holds the buffer"
    p = laconic(overrides(untrained_toy, out, *extra, "train.resume=latest"))
    assert p.returncode == 0, p.stderr[-3000:]
    assert strip_timing(read_metrics(out / "metrics.jsonl")) == strip_timing(rows)


def test_two_processes_take_the_compensation_step_together(untrained_toy, tmp_path):
    """gloo, 2 processes with 2 prompts each: their priority and buffered counts differ; the compensation
    step is decided from both buffers (a share of 3 each for a batch of 5) and run by both, or neither."""

    out = tmp_path / "ddp"
    launcher = TWO_PROCESSES
    p = laconic(overrides(untrained_toy, out, "algo.recompose={alpha: 0.5, batch: 5}", "train.max_steps=3",
                          "eval.before=false", "eval.after=false"), launcher=launcher)
    assert p.returncode == 0, p.stderr[-4000:]
    rows = read_metrics(out / "metrics.jsonl")
    assert sum(r["rorecomp/comp_step"] for r in rows) >= 1
    state = json.loads((checkpoint_dirs(out)[-1] / "trainer_state.json").read_text())["recompose"]
    assert len(state) == 2 and state[0]["comp_steps"] == state[1]["comp_steps"] == rows[-1]["rorecomp/comp_steps"]
