"""AdaptThink (arXiv 2505.13417): forced completion prefixes (generation, mask, first-token ratio
of 0.5), the reference pass, the reward and its identity advantage."""

import json
import math
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rewards.adaptthink import AdaptThink
from rewards.base import Context, Sample
from rl.algo.advantages import compute_advantages
from rl.config import AlgoConfig, ConfigError, load_config
from rl.engines.base import Rollout, SamplingParams
from rl.train.sampling import generate_forced
from rl.train.record import FIRST_FORCED_LOGP, forced_old_logps, trained_tokens
from rl.train.update import score_pass, update_policy

from tests.conftest import ROOT


class Tok:
    """Characters as token ids (ord), enough for prefixes and decoding."""

    def encode(self, text, add_special_tokens=False):
        return [ord(c) for c in text]

    def decode(self, ids, skip_special_tokens=False):
        return "".join(chr(i) for i in ids)


class Engine:
    """Writes "xy" after each prompt, n times, with sampler log-probs -1, -2; records its calls."""

    def __init__(self):
        self.calls = []

    def generate(self, prompts, params):
        self.calls.append(([list(p) for p in prompts], params))
        return [Rollout(i, list(p), [ord("x"), ord("y")], "xy", "stop", [-1.0, -2.0])
                for i, p in enumerate(prompts) for _ in range(params.n)]


def test_forced_prefixes_split_each_group_and_join_the_completion():
    eng = Engine()
    prompts = [[1, 2], [3]]
    prefixes = [{"text": "AB", "fraction": 0.25}, {"text": "C", "fraction": 0.5}]
    out = generate_forced(eng, prompts, SamplingParams(max_new_tokens=10, n=4), prefixes, Tok())
    # one call per prefix (G * fraction each) and one for the free rest, limits cut by the prefix
    assert [(c[0], c[1].n, c[1].max_new_tokens) for c in eng.calls] == [
        ([[1, 2, 65, 66], [3, 65, 66]], 1, 8), ([[1, 2, 67], [3, 67]], 2, 9), ([[1, 2], [3]], 1, 10)]
    assert len(out) == 8 and [r.prompt_index for r in out] == [0] * 4 + [1] * 4  # prompt-major groups
    assert [r.text for r in out[:4]] == ["ABxy", "Cxy", "Cxy", "xy"]
    assert [r.forced_tokens for r in out[:4]] == [2, 1, 1, 0]
    assert [r.prompt_ids for r in out[4:]] == [[3]] * 4  # the prefix left the prompt
    assert out[0].completion_ids == [65, 66, ord("x"), ord("y")] and out[0].length == 4
    assert out[0].logprobs == [math.log(0.5), 0.0, -1.0, -2.0]  # placeholders: log 0.5, then masked
    assert out[1].logprobs == [math.log(0.5), -1.0, -2.0] and out[3].logprobs == [-1.0, -2.0]
    eng.calls.clear()  # a share's own cap (the paper's 4096 for no-thinking answers), never above the step's
    generate_forced(eng, prompts, SamplingParams(max_new_tokens=10, n=4),
                    [{"text": "AB", "fraction": 0.25, "max_new_tokens": 5}, {"text": "C", "fraction": 0.5, "max_new_tokens": 50}], Tok())
    assert [c[1].max_new_tokens for c in eng.calls] == [3, 9, 10]
    eng2 = Engine()
    assert generate_forced(eng2, prompts, SamplingParams(max_new_tokens=10, n=4), [], Tok()) == eng2.generate(
        prompts, SamplingParams(max_new_tokens=10, n=4))


def test_forced_old_logps_hand_example():
    """Row 0: 3 forced tokens of 5 -> old[0, 0] = log 0.5, tokens 1 and 2 masked; row 1 untouched."""
    old = torch.tensor([[-0.1, -0.2, -0.3, -0.4, -0.5], [-1.0, -1.0, -1.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    o, m = forced_old_logps(old, mask, [3, 0])
    assert m.tolist() == [[1, 0, 0, 1, 1], [1, 1, 1, 0, 0]]
    assert o[0].tolist() == pytest.approx([math.log(0.5), -0.2, -0.3, -0.4, -0.5])
    assert torch.equal(o[1], old[1]) and old[0, 0] == pytest.approx(-0.1)  # inputs not modified
    o, m = forced_old_logps(old, mask, [1, 0])  # a one-token prefix: nothing masked, only the 0.5
    assert torch.equal(m, mask) and o[0, 0] == pytest.approx(math.log(0.5))
    assert trained_tokens(Rollout(0, [1], [5] * 5, "", "stop", None, forced_tokens=3)) == 3


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 9), st.integers(0, 9)), min_size=1, max_size=6))
def test_forced_old_logps_properties(rows):
    lengths = [n for n, _ in rows]
    forced = [min(f, n) for n, f in rows]
    C = max(lengths)
    mask = torch.tensor([[1] * n + [0] * (C - n) for n in lengths])
    old = -torch.rand(len(rows), C)
    o, m = forced_old_logps(old, mask, forced)
    for i, (n, f) in enumerate(zip(lengths, forced)):
        assert int(m[i].sum()) == n - max(f - 1, 0)  # exactly the forced tokens after the first leave
        assert int(m[i].sum()) == trained_tokens(Rollout(0, [1], [2] * n, "", "stop", None, forced_tokens=f))
        assert float(o[i, 0]) == pytest.approx(FIRST_FORCED_LOGP if f else float(old[i, 0]))
        assert torch.equal(o[i, 1:], old[i, 1:])


def _update(toy, rollouts, agg="token-mean", old=None, tis_cap=None, adv=(1.0,)):
    from accelerate import Accelerator

    model, tok = toy
    policy = type(model)(model.config)
    policy.load_state_dict(model.state_dict())
    opt = torch.optim.SGD(policy.parameters(), lr=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    return update_policy(Accelerator(cpu=True), policy, None, opt, sched, rollouts, torch.tensor(adv),
                         AlgoConfig(loss_agg=agg, tis_cap=tis_cap), pad_id=tok.pad_token_id, temperature=0.7,
                         micro_batch_size=8, max_grad_norm=1e9, norm_len=16, old_logps=old)


def test_first_forced_token_ratio_is_pi_over_half_and_the_rest_of_the_prefix_is_masked(toy):
    """Completion "A:7" with the 2-token prefix "A:": token 0 trains with ratio p/0.5, token 1 is
    masked, token 2 has ratio 1. token-mean, A = 1: loss = -(min(r0, clip(r0, 0.8, 1.28)) + 1) / 2
    (2 trained tokens, not 3)."""
    model, tok = toy
    ids = tok("A:7")["input_ids"]
    r = Rollout(0, tok("Q:3+4=")["input_ids"], ids, "A:7", "stop", None, forced_tokens=2)
    logp, _ = score_pass(model, [r], tok.pad_token_id, 0.7, 8, False)
    r0 = math.exp(float(logp[0][0])) / 0.5
    stats = _update(toy, [r])
    assert stats["ratio"] == pytest.approx((r0 + 1) / 2, rel=1e-5)
    assert stats["loss"] == pytest.approx(-(min(r0, min(max(r0, 0.8), 1.28)) + 1) / 2, rel=1e-5)
    # the same with behaviour log-probs given (updates_per_rollout > 1 passes them), every loss_agg
    for agg in ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"):
        assert _update(toy, [r], agg, old=logp)["ratio"] == pytest.approx((r0 + 1) / 2, rel=1e-5)
    # TIS: the sampler placeholders (log 0.5 first, 0 masked) give weight 1 and no numerics gap
    sampled = Rollout(0, r.prompt_ids, ids, "A:7", "stop", [FIRST_FORCED_LOGP, 0.0, float(logp[0][2])],
                      forced_tokens=2)
    s = _update(toy, [sampled], tis_cap=2.0)
    assert s["tis_weight"] == pytest.approx(1.0) and s["rollout/logprob_diff"] == pytest.approx(0.0, abs=1e-6)
    assert s["loss"] == pytest.approx(stats["loss"], rel=1e-5)
    # mutation check: unforced, every ratio is 1
    assert _update(toy, [Rollout(0, r.prompt_ids, ids, "A:7", "stop", None)])["ratio"] == pytest.approx(1.0)


def test_adaptthink_reward_hand_example():
    s = [Sample("a", 0, completion="</think>The answer is 3", correct=True, meta={"ref_accuracy": 0.25}),
         Sample("a", 0, completion="Alright, let me think", correct=True, meta={"ref_accuracy": 0.25}),
         Sample("b", 1, completion="  </think>x", correct=False, meta={"ref_accuracy": 0.5}),
         Sample("b", 1, completion="Alright", correct=False, meta={"ref_accuracy": 0.5})]
    assert AdaptThink()(s, Context()) == pytest.approx([0.8, 0.75, -0.45, -0.5])
    assert AdaptThink(delta=0.1, nothink_prefix="A:")([Sample("c", 0, completion="A:3", correct=True,
                                                              meta={"ref_accuracy": 1.0})], Context()) == [pytest.approx(0.1)]
    with pytest.raises(ValueError, match="reference_samples"):
        AdaptThink()([Sample("a", 0, completion="x", correct=True)], Context())
    # no baseline on top: the advantage is the reward
    assert compute_advantages("identity", [0.8, 0.75, -0.45], [0, 0, 1]).tolist() == pytest.approx([0.8, 0.75, -0.45])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans(), st.integers(0, 16)), min_size=1, max_size=16),
       st.floats(0, 1))
def test_adaptthink_reward_properties(rows, delta):
    samples = [Sample("p", 0, completion=("</think>" if nt else "Alright") + " 1", correct=ok,
                      meta={"ref_accuracy": k / 16}) for ok, nt, k in rows]
    out = AdaptThink(delta=delta)(samples, Context())
    for r, (ok, nt, k) in zip(out, rows):
        assert r == pytest.approx(ok - k / 16 + delta * nt)
        assert -1 <= r <= 1 + delta


def _cfg(tmp_path, *over):
    return load_config(ROOT / "recipes" / "toy" / "adaptthink.yaml", [f"train.output_dir={tmp_path}", *over])


@pytest.mark.parametrize("prefixes,msg", [
    ('[{text: "A:", fraction: 0.3}]', "whole number"),
    ('[{text: "A:", fraction: 0.5}, {text: "B", fraction: 0.75}]', "sum to 1.25"),
    ('[{text: "", fraction: 0.5}]', "text must be"),
    ('[{text: "A:", fraction: 0}]', r"fraction must be in \(0, 1\]"),
    ('[{text: "A:", share: 0.5}]', "expected {text"),
    ('[{text: "A:", fraction: 0.5, max_new_tokens: 0}]', "max_new_tokens must be"),
])
def test_bad_forced_prefixes_are_config_errors(tmp_path, prefixes, msg):
    with pytest.raises(ConfigError, match=msg):
        _cfg(tmp_path, f"rollout.forced_prefixes={prefixes}")


def test_adaptthink_needs_the_reference_pass(tmp_path):
    with pytest.raises(ConfigError, match="train.reference_samples"):
        _cfg(tmp_path, "train.reference_samples=0")
    with pytest.raises(ConfigError, match="train.reference_samples"):
        _cfg(tmp_path, "train.reference_samples=-1")


class Acc:
    num_processes, process_index, is_main_process = 1, 0, True
    distributed_type = SimpleNamespace(value="NO")

    def print(self, *a):
        pass

    def wait_for_everyone(self):
        pass

    def unwrap_model(self, m):
        return m


def test_reference_pass_measures_once_caches_and_reloads(tmp_path, monkeypatch):
    import rl.train.reference_pass as rp
    from rl.data import Prompt

    prompts = [Prompt("p0", "1+1", "2", "Q:1+1=", [1]), Prompt("p1", "2+2", "4", "Q:2+2=", [2])]
    verdicts = {"p0": [True, False, True, True], "p1": [False] * 4}

    def fake_samples(rollouts, mine, offset, tokenizer, delimiter):
        return [Sample(mine[r.prompt_index].id, r.prompt_index, correct=verdicts[mine[r.prompt_index].id][j % 4])
                for j, r in enumerate(rollouts)]

    monkeypatch.setattr(rp, "make_samples", fake_samples)
    eng = Engine()
    cfg = _cfg(tmp_path, "train.reference_samples=4")
    run = SimpleNamespace(cfg=cfg, acc=Acc(), engine=eng, policy=torch.nn.Linear(1, 1), tokenizer=Tok(),
                          train_prompts=prompts)
    assert rp.reference_pass(run) == {"p0": 0.75, "p1": 0.0}
    assert [(c[1].n, c[1].max_new_tokens) for c in eng.calls] == [(4, cfg.rollout.max_new_tokens)]  # no prefixes
    assert not eng.calls[0][1].logprobs  # only correctness is kept: no sampler log-probs
    assert [p.meta["ref_accuracy"] for p in prompts] == [0.75, 0.0]
    saved = json.loads((tmp_path / "reference_accuracy.json").read_text())
    assert saved == {"samples": 4, "accuracy": {"p0": 0.75, "p1": 0.0}}
    # resume: the file is read, nothing is generated
    eng.calls.clear()
    for p in prompts:
        p.meta.clear()
    assert rp.reference_pass(run) == {"p0": 0.75, "p1": 0.0} and eng.calls == []
    assert [p.meta["ref_accuracy"] for p in prompts] == [0.75, 0.0]
    # another K: measured again
    run.cfg = _cfg(tmp_path, "train.reference_samples=8")
    rp.reference_pass(run)
    assert [c[1].n for c in eng.calls] == [8]
    run.cfg = _cfg(tmp_path, "train.reference_samples=0", "rewards=[{name: correctness}]")
    assert rp.reference_pass(run) is None


def test_reference_pass_generates_a_training_steps_worth_of_prompts_a_call(tmp_path, monkeypatch):
    """A process's share is generated in slices of ``rollout.prompts_per_step / processes`` prompts (issue 23:
    thousands of prompts x K x 16k tokens in one call would hold every completion at once)."""
    import rl.train.reference_pass as rp
    from rl.data import Prompt

    prompts = [Prompt(f"p{i}", "q", "a", "Q:", [i + 1]) for i in range(5)]
    monkeypatch.setattr(rp, "make_samples", lambda rollouts, mine, offset, tok, delim: [
        Sample(mine[r.prompt_index].id, r.prompt_index, correct=mine[r.prompt_index].id in ("p1", "p4"))
        for r in rollouts])
    eng = Engine()
    run = SimpleNamespace(cfg=_cfg(tmp_path, "train.reference_samples=2", "rollout.prompts_per_step=2"), acc=Acc(),
                          engine=eng, policy=torch.nn.Linear(1, 1), tokenizer=Tok(), train_prompts=prompts)
    assert rp.reference_pass(run) == {"p0": 0.0, "p1": 1.0, "p2": 0.0, "p3": 0.0, "p4": 1.0}
    assert [c[0] for c in eng.calls] == [[[1], [2]], [[3], [4]], [[5]]]


def test_reference_from_reuses_another_runs_pass_and_refuses_a_mismatch(tmp_path):
    import rl.train.reference_pass as rp
    from rl.data import Prompt

    src = tmp_path / "seed0"
    src.mkdir()
    (src / "reference_accuracy.json").write_text(json.dumps({"samples": 4, "accuracy": {"p0": 0.5, "p1": 1.0}}))
    prompts = [Prompt("p0", "1+1", "2", "Q:1+1=", [1]), Prompt("p1", "2+2", "4", "Q:2+2=", [2])]
    eng = Engine()
    out = tmp_path / "seed1"
    out.mkdir()
    run = SimpleNamespace(cfg=_cfg(out, "train.reference_samples=4", f"train.reference_from={src}"), acc=Acc(),
                          engine=eng, policy=torch.nn.Linear(1, 1), tokenizer=Tok(), train_prompts=prompts)
    assert rp.reference_pass(run) == {"p0": 0.5, "p1": 1.0} and eng.calls == []  # nothing sampled
    assert [p.meta["ref_accuracy"] for p in prompts] == [0.5, 1.0]
    assert json.loads((out / "reference_accuracy.json").read_text())["accuracy"] == {"p0": 0.5, "p1": 1.0}
    for bad in ("train.reference_samples=8", None):  # another K; a prompt the source never saw
        run.cfg = _cfg(tmp_path / f"other{bad is None}", bad or "train.reference_samples=4", f"train.reference_from={src}")
        run.train_prompts = prompts if bad else prompts + [Prompt("p2", "3+3", "6", "Q:3+3=", [3])]
        with pytest.raises(ConfigError, match="holds no reference pass with"):
            rp.reference_pass(run)
    with pytest.raises(ConfigError, match="set train.reference_samples"):
        _cfg(tmp_path, "train.reference_samples=0", f"train.reference_from={src}", "rewards=[{name: correctness}]")


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 4), st.sampled_from([2, 4, 8, 16]), st.lists(st.sampled_from([0.25, 0.5]), max_size=2))
def test_forced_groups_properties(num_prompts, G, fractions):
    prefixes = [{"text": t, "fraction": f} for t, f in zip(("AB", "C"), fractions) if (G * f).is_integer()]
    prompts = [[i + 1] for i in range(num_prompts)]
    out = generate_forced(Engine(), prompts, SamplingParams(max_new_tokens=10, n=G), prefixes, Tok())
    assert len(out) == num_prompts * G
    for i in range(num_prompts):
        group = out[i * G : (i + 1) * G]
        assert all(r.prompt_index == i and r.prompt_ids == prompts[i] for r in group)
        for p in prefixes:
            n = len(p["text"])
            assert sum(r.text.startswith(p["text"]) and r.forced_tokens == n for r in group) == G * p["fraction"]
        for r in group:  # the completion is prefix + sampled tokens, the log-probs aligned with it
            assert r.length == r.forced_tokens + 2 and len(r.logprobs) == r.length
            assert r.logprobs[r.forced_tokens :] == [-1.0, -2.0]


def test_toy_run_measures_the_reference_once_and_resume_reads_it(untrained_toy, tmp_path, monkeypatch):
    import rl.train.reference_pass as rp
    from rl.train.loop import train

    torch.set_num_threads(1)
    common = [f"model.name_or_path={untrained_toy}", "data.num_examples=16", "rollout.prompts_per_step=2",
              "rollout.group_size=4", "rollout.max_new_tokens=12", "train.save_every=1", "train.reference_samples=2",
              "train.log_completions=1", "eval.before=false", "eval.after=false"]
    train(_cfg(tmp_path, *common, "train.max_steps=1"))
    saved = json.loads((tmp_path / "reference_accuracy.json").read_text())
    assert saved["samples"] == 2 and len(saved["accuracy"]) == 16
    assert all(v in (0.0, 0.5, 1.0) for v in saved["accuracy"].values())
    rows = [json.loads(x) for x in (tmp_path / "completions" / "rank0.jsonl").read_text().splitlines()]
    assert all(r["meta"]["ref_accuracy"] == saved["accuracy"][r["prompt_id"]] for r in rows)
    assert sum(r["meta"].get("forced_prefix") == "A:" for r in rows) == len(rows) // 2  # half of each group
    assert all(r["completion"].startswith("A:") for r in rows if r["meta"].get("forced_prefix"))

    def no_sampling(*a, **k):
        raise AssertionError("the reference pass sampled again on resume")

    monkeypatch.setattr(rp, "compute", no_sampling)
    train(_cfg(tmp_path, *common, "train.max_steps=2", "train.resume=latest"))
    assert json.loads((tmp_path / "reference_accuracy.json").read_text()) == saved
