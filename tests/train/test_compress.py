"""TRAAC's compress-and-continue stage (rl/train/compress.py): the two-pass attention row equals a full eager
forward's, a correct toy trace loses its least-attended re-check and is continued, each group is re-drawn from
originals and compressed versions, and a toy run trains on compressed completions."""

from types import SimpleNamespace

import pytest
import torch

from rl.data import Prompt
from rl.engines.base import Rollout, SamplingParams
from rl.facts import make_samples
from rl.run.tracking import read_metrics
from rl.train import compress as compress_mod
from rl.train.compress import Compressor, attention_row

from tests.train.test_trainer import laconic, overrides

TOY = {"open_tag": None, "close_tag": "A:", "summary": "", "split": "release", "keywords": ["check"]}


def test_two_pass_attention_row_equals_a_full_eager_forward(toy):
    model, tok = toy
    ids = tok("3+5=8,8+2=10.check1:3+5=8,8+2=10.A:")["input_ids"]
    row = attention_row(model, ids, "cpu")
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            full = model(input_ids=torch.tensor([ids]), output_attentions=True).attentions
    finally:
        model.set_attn_implementation("sdpa")
    half = model.config.num_hidden_layers // 2
    want = torch.stack([full[k][0, :, -1, :] for k in range(half)]).mean(dim=(0, 1))
    assert torch.allclose(torch.tensor(row), want, atol=1e-6) and len(row) == len(ids)
    assert sum(row) == pytest.approx(1.0, abs=1e-5)


class Scripted:
    def __init__(self, tok, answer):
        self.tok, self.answer, self.calls = tok, answer, []

    def generate(self, prompts, params, limits=None):
        self.calls.append(([list(p) for p in prompts], params, list(limits)))
        ids = self.tok(self.answer)["input_ids"] + [self.tok.eos_token_id]
        return [Rollout(i, list(p), ids, self.answer, "stop", [-0.1] * len(ids)) for i, p in enumerate(prompts)]


def fake_run(toy, untrained_toy, engine):
    model, tok = toy
    cfg = SimpleNamespace(train=SimpleNamespace(seed=0), model=SimpleNamespace(trust_remote_code=False),
                          data=SimpleNamespace(delimiter=None))
    acc = SimpleNamespace(device=torch.device("cpu"), unwrap_model=lambda m: m)
    return SimpleNamespace(cfg=cfg, acc=acc, engine=engine, tokenizer=tok, policy=model)


def test_a_correct_trace_loses_its_least_attended_recheck_and_is_continued(toy, untrained_toy, monkeypatch):
    model, tok = toy
    prompt = Prompt("p0", "Q:3+5+2=", "10", "Q:3+5+2=", tok("Q:3+5+2=")["input_ids"])
    long = "3+5=8,8+2=10.check1:3+5=8,8+2=10.check2:3+5=8,8+2=10.A:10"
    texts = [long, long, "3+5=8,8+2=10.A:10", "3+5=8,8+2=11.A:11"]  # 3 of 4 correct: p = 0.75, medium
    rollouts = [Rollout(0, prompt.ids, tok(t)["input_ids"] + [tok.eos_token_id], t, "stop", None) for t in texts]
    samples = make_samples(rollouts, [prompt], 0, tok, None)
    assert [s.correct for s in samples] == [True, True, True, False]

    def attention(_, ids, device):  # the first chain holds the attention; the re-checks almost none
        first = len("3+5=8,8+2=10.")
        return [1.0 if t < first else 0.001 for t in range(len(ids))]

    monkeypatch.setattr(compress_mod, "attention_row", attention)
    engine = Scripted(tok, "10")
    run = fake_run(toy, untrained_toy, engine)
    comp = Compressor.build({**TOY, "rho": {"easy": 0.6, "medium": 0.9, "hard": 0.2}}, str(untrained_toy))
    params = SamplingParams(max_new_tokens=200, temperature=1.0, n=4)
    out, outs, stats = comp.apply(run, 1, [prompt], rollouts, samples, 0, params)
    # 3 steps with I = (1, 0.001, 0.001): U = 0.016, e = min(0.9 x 0.984, 0.8) = 0.8, floor(3 x 0.8) = 2 evicted
    (prefixes, one, limits), = engine.calls
    want = tok("Q:3+5+2=3+5=8,8+2=10.A:")["input_ids"]
    assert prefixes == [want, want] and one.n == 1  # the two long correct traces, each once
    assert limits == [200 - (len(want) - len(prompt.ids))] * 2
    assert stats["compress/made"] == 2 and stats["compress/scored"] == 3  # the short one has one step: nothing to evict
    assert len(out) == 4 and all(r.prompt_index == 0 for r in out)  # the group keeps G = 4
    made = [r for r, s in zip(out, outs) if s.meta.get("compressed")]
    assert len(made) == stats["compress/in_batch"]
    for r in made:
        assert r.text == "3+5=8,8+2=10.A:10" and r.logprobs is None and r.versions is None  # every token trained


def test_nothing_to_evict_keeps_the_group(toy, untrained_toy, monkeypatch):
    model, tok = toy
    prompt = Prompt("p0", "Q:3+5=", "8", "Q:3+5=", tok("Q:3+5=")["input_ids"])
    text = "3+5=8.check1:3+5=8.A:8"
    rollouts = [Rollout(0, prompt.ids, tok(text)["input_ids"], text, "stop", None) for _ in range(2)]
    samples = make_samples(rollouts, [prompt], 0, tok, None)
    monkeypatch.setattr(compress_mod, "attention_row", lambda _, ids, device: [1.0] * len(ids))  # U = 1
    engine = Scripted(tok, "8")
    out, _, stats = Compressor.build(TOY, str(untrained_toy)).apply(
        fake_run(toy, untrained_toy, engine), 1, [prompt], rollouts, samples, 0, SamplingParams(max_new_tokens=64, n=2))
    assert out == rollouts and engine.calls == [] and stats["compress/made"] == 0


def test_policy_scorer_takes_the_current_weights(toy, untrained_toy):
    model, tok = toy
    policy = type(model)(model.config)
    policy.load_state_dict(model.state_dict())
    with torch.no_grad():
        policy.model.layers[0].mlp.down_proj.weight.add_(1.0)
    run = fake_run((policy, tok), untrained_toy, None)
    initial = Compressor.build({**TOY, "attention_model": "initial"}, str(untrained_toy))._scorer(run)
    current = Compressor.build({**TOY, "attention_model": "policy"}, str(untrained_toy))._scorer(run)
    w = policy.model.layers[0].mlp.down_proj.weight
    assert torch.equal(current.model.layers[0].mlp.down_proj.weight, w)
    assert torch.allclose(initial.model.layers[0].mlp.down_proj.weight + 1.0, w)


def test_toy_run_trains_on_compressed_completions(tmp_path):
    out = tmp_path / "traac"
    p = laconic(overrides("builtin:toy", out, "rollout.compress={open_tag: null, close_tag: 'A:', summary: '', split: release, "
                          "keywords: [check]}", "rewards=[{name: traac, open_tag: null, close_tag: 'A:'}]",
                          "rollout.max_new_tokens=96", "train.max_steps=2", "eval.before=false", "eval.after=false"))
    assert p.returncode == 0, p.stderr[-3000:]
    rows = read_metrics(out / "metrics.jsonl")
    assert rows[0]["compress/made"] > 0 and sum(r["compress/in_batch"] for r in rows) > 0
    assert all(0 < r["compress/evicted_share"] < 1 for r in rows if r["compress/made"])
    assert all(r["compress/uniformity"] < 0.8 for r in rows)  # the trained toy attends unevenly: the default threshold acts
