"""Partial rollouts (``rollout.partial``, rl/train/partial.py) and the per-token record they write:
the buffer's flow step to step with a scripted engine, a two-segment completion through the update
(hand-computed ratios for every ``rollout.offpolicy``), and a toy run that continues partial
completions and resumes exactly after a crash."""

import json
import math
from types import SimpleNamespace

import pytest
import torch

from rl.config import AlgoConfig, ConfigError, DataConfig, load_config
from rl.data import Prompt, PromptSampler
from rl.engines.base import Rollout, SamplingParams
from rl.run.checkpoint import checkpoint_dirs
from rl.run.tracking import read_metrics
from rl.train.partial import PartialBuffer, roll_partial
from rl.train.record import record_masks, trained_tokens
from rl.train.update import score_pass, update_policy

from tests.train.test_trainer import laconic, overrides, strip_timing


class Tok:
    def decode(self, ids, skip_special_tokens=False):
        return "".join(chr(i) for i in ids)


class Scripted:
    """generate_partial that writes ``plan[call][i]`` tokens for request i (or, with ``None``,
    aborts it after 1 token); records each call."""

    def __init__(self, plan):
        self.plan, self.calls, self.last_trace = plan, [], []

    def generate_partial(self, prompts, params, limits, groups, needed):
        self.calls.append(dict(prompts=[list(p) for p in prompts], limits=list(limits), groups=list(groups),
                               needed=needed))
        out = []
        for i, (p, n) in enumerate(zip(prompts, self.plan[len(self.calls) - 1])):
            ids = [ord("a") + len(self.calls)] * (1 if n is None else n)
            out.append(Rollout(i, list(p), ids, "", "abort" if n is None else "stop", [-0.5] * len(ids)))
        return out


def make_run(engine, share=2, G=2, overprovision=1.5, max_age=2, processes=1):
    prompts = [Prompt(str(i), f"q{i}", "1", f"q{i}", [100 + i]) for i in range(10)]
    cfg = SimpleNamespace(rollout=SimpleNamespace(prompts_per_step=share * processes, group_size=G,
                                                  partial_overprovision=overprovision, partial_max_age=max_age),
                          data=DataConfig(), train=SimpleNamespace(seed=0))
    acc = SimpleNamespace(num_processes=processes, process_index=0)
    return SimpleNamespace(cfg=cfg, acc=acc, engine=engine, sampler=PromptSampler(len(prompts), 0),
                           train_prompts=prompts, tokenizer=Tok())


def test_unfinished_groups_are_continued_first_under_the_next_step():
    """share 2, G 2, overprovision 1.5: 3 groups in flight. Step 1: groups A and C finish, B's second
    completion is aborted after 1 token. Step 2: B's unfinished completion is continued first (prompt +
    its token, limit 8 - 1), then 2 new groups; B completes and is trained with a two-segment record."""
    params = SamplingParams(max_new_tokens=8)
    engine = Scripted([[3, 2, 4, None, 1, 5], [2, 6, 6, 6, None]])
    run, buf = make_run(engine), PartialBuffer()
    order = PromptSampler(10, 0).next(5)
    rollouts, kept, stats = roll_partial(run, 1, params, buf)
    first = engine.calls[0]
    assert first["groups"] == [0, 0, 1, 1, 2, 2] and first["needed"] == 2 and first["limits"] == [8] * 6
    assert [k.ids[0] - 100 for k in kept] == [order[0], order[2]]  # the complete groups, in order
    assert [r.length for r in rollouts] == [3, 2, 1, 5] and [r.prompt_index for r in rollouts] == [0, 0, 1, 1]
    assert [r.versions for r in rollouts][0] == [1, 1, 1]
    assert len(buf.groups) == 1 and [m.finish for m in buf.groups[0].members] == ["stop", None]
    assert stats["partial/carried"] == 1 and stats["offpolicy/token_share"] == 0

    rollouts, kept, stats = roll_partial(run, 2, params, buf)
    second = engine.calls[1]
    b = 100 + order[1]
    assert second["prompts"][0] == [b, ord("b")] and second["limits"][0] == 7  # continued: prompt + 1 token
    assert second["groups"] == [0, 1, 1, 2, 2] and second["needed"] == 2  # B first, then 2 new groups
    assert kept[0].ids == [b] and [r.completion_ids for r in rollouts[:2]] == [[ord("b")] * 4, [ord("b"), ord("c"), ord("c")]]
    assert rollouts[1].versions == [1, 2, 2] and rollouts[1].logprobs == [-0.5] * 3
    assert stats["partial/continued"] == 1 and stats["offpolicy/token_share"] == pytest.approx(5 / 19)  # B's first completion and 1 token of its second, of 7 + 12
    assert stats["offpolicy/mean_age"] == 1.0


def test_groups_past_the_maximum_age_are_dropped():
    params = SamplingParams(max_new_tokens=8)
    engine = Scripted([[3, 2, 4, None, 1, 5], [1] * 6])
    run, buf = make_run(engine, max_age=1), PartialBuffer()
    roll_partial(run, 1, params, buf)
    assert len(buf.groups) == 1
    _, _, stats = roll_partial(run, 3, params, buf)  # two steps later: older than partial_max_age=1
    assert stats["partial/dropped"] == 1 and len(engine.calls[1]["prompts"]) == 6  # three new groups


def test_two_segment_record_masks():
    r = Rollout(0, [1], [5, 6, 7], "", "stop", [-1.0, -2.0, -0.5], versions=[1, 1, 2])
    keep, behave, off = record_masks([r], 4, current=2, offpolicy="train")
    assert keep.tolist() == [[1, 1, 1, 0]] and off.tolist() == [[True, True, False, False]] and not behave.any()
    assert trained_tokens(r, 2, "mask") == 1 and trained_tokens(r, 2, "train") == 3
    assert trained_tokens(r, 3, "mask") == 0 and trained_tokens(r, None, "mask") == 3


def _update(toy, rollouts, offpolicy, version=2):
    from accelerate import Accelerator

    model, tok = toy
    policy = type(model)(model.config)
    policy.load_state_dict(model.state_dict())
    opt = torch.optim.SGD(policy.parameters(), lr=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    return update_policy(Accelerator(cpu=True), policy, None, opt, sched, rollouts, torch.tensor([1.0]),
                         AlgoConfig(loss_agg="token-mean"), pad_id=tok.pad_token_id, temperature=1.0,
                         micro_batch_size=8, max_grad_norm=1e9, norm_len=16, version=version, offpolicy=offpolicy,
                         offpolicy_cap=1.5)


@pytest.mark.parametrize("offpolicy", ["train", "mask", "behavior", "tis"])
def test_two_segment_completion_through_the_update(toy, offpolicy):
    """A completion of 4 tokens, the first 2 written at step 1, the last 2 at step 2 (trained at step 2),
    one update, A = 1, token-mean, clip 0.2 / 0.28. With p_t the policy's log-probs and b_t the behaviour
    ones: train: every ratio 1, loss -1; mask: 2 tokens, ratio 1, loss -1; behavior: tokens 0-1 have
    ratio r_t = exp(p_t - b_t), loss = -(min(r0, clip r0) + min(r1, clip r1) + 2) / 4; tis: ratio 1
    everywhere, tokens 0-1 weighted w_t = min(exp(p_t - b_t), 1.5): loss = -(w0 + w1 + 2) / 4."""
    model, tok = toy
    ids = tok("A:12")["input_ids"][:4]
    probe = Rollout(0, tok("Q:3+4=")["input_ids"], ids, "", "stop", None)
    p = score_pass(model, [probe], tok.pad_token_id, 1.0, 8, False)[0][0].tolist()
    b = [p[0] - 0.1, p[1] + 0.7, 0.0, 0.0]  # token 0: r = e^0.1 = 1.105; token 1: r = e^-0.7 = 0.497 (clipped at 0.8)
    b[2:] = p[2:]
    r = Rollout(0, probe.prompt_ids, ids, "", "stop", b, versions=[1, 1, 2, 2])
    s = _update(toy, [r], offpolicy)
    r0, r1 = math.exp(0.1), math.exp(-0.7)
    want = {"train": (1.0, -1.0), "mask": (1.0, -1.0),
            "behavior": ((r0 + r1 + 2) / 4, -(r0 + r1 + 2) / 4),  # r0 below 1.28, r1 below its clip 0.8: unclipped
            "tis": (1.0, -(min(r0, 1.5) + min(r1, 1.5) + 2) / 4)}[offpolicy]
    assert s["ratio"] == pytest.approx(want[0], rel=1e-5)
    assert s["loss"] == pytest.approx(want[1], rel=1e-5)
    # the numerics gap counts the current weights' tokens only: 0 here (b = p on tokens 2-3)
    assert s["rollout/logprob_diff"] == pytest.approx(0.0, abs=1e-5)
    # not a step later: nothing is off-policy, every mode is plain GRPO
    assert _update(toy, [r], offpolicy, version=1)["loss"] == pytest.approx(-1.0, rel=1e-5)


def test_partial_refuses_what_it_cannot_combine_with():
    for extra, needle in ((["algo.dynamic_sampling=correctness"], "use one of them"),
                          (["rollout.partial_overprovision=0.5"], "partial_overprovision must be >= 1"),
                          (["rollout.offpolicy=drop"], "'drop' is not one of")):
        with pytest.raises(ConfigError, match=needle):
            load_config(None, ["rollout.partial=true", *extra])


def test_partial_run_continues_completions_and_resumes_exactly(untrained_toy, tmp_path):
    """The untrained toy at 96 tokens: a few completions run to the limit while most stop early, so
    groups are left unfinished and continued a step later (once the completions have shortened: early on
    every group ends at the limit together). Killed after step 5 and resumed from the checkpoint of
    step 5 (whose buffer holds partial completions), the run equals the uninterrupted one."""
    extra = ["rollout.partial=true", "rollout.max_new_tokens=96", "train.max_steps=6", "train.save_every=1",
             "eval.before=false", "eval.after=false", "rollout.generation_batch_size=64"]
    full = laconic(overrides(untrained_toy, tmp_path / "full", *extra))
    assert full.returncode == 0, full.stderr[-3000:]
    rows = read_metrics(tmp_path / "full" / "metrics.jsonl")
    assert any(r["partial/continued"] > 0 for r in rows) and any(r["offpolicy/token_share"] > 0 for r in rows)
    out = tmp_path / "crash"
    p = laconic(overrides(untrained_toy, out, *extra), env={"LACONIC_FAIL_AT_STEP": "6"})
    assert p.returncode == 17
    saved = json.loads((checkpoint_dirs(out)[-1] / "trainer_state.json").read_text())["partial"][0]
    assert any(m["ids"] and m["finish"] is None for g in saved for m in g["members"])  # partial completions kept
    p = laconic(overrides(untrained_toy, out, *extra, "train.resume=latest"))
    assert p.returncode == 0, p.stderr[-3000:]
    assert strip_timing(read_metrics(out / "metrics.jsonl")) == strip_timing(rows)
