"""The policy update's micro-batching: length-sorted micro-batches under a row and a token cap, and
an update whose result does not depend on how the step is cut into micro-batches."""

import random

import pytest
import torch

from rl.config import AlgoConfig
from rl.engines.base import Rollout
from rl.train.update import completion_logprobs, make_batch, micro_batches, score_pass, update_policy


def _fake(prompt_len: int, completion_len: int) -> Rollout:
    return Rollout(0, [1] * prompt_len, [2] * completion_len, "", "stop", None)


def test_micro_batches_hand_example():
    """Prompt 2 + completions 9, 1, 5, 2 -> totals 11, 3, 7, 4 -> order 1, 3, 2, 0.
    Token cap 24: [1, 3] pads to 2 x (2 + 2) = 8, adding 2 gives 3 x (2 + 5) = 21 <= 24, adding 0
    would give 4 x (2 + 9) = 44 > 24, so 0 starts a new micro-batch."""
    rs = [_fake(2, n) for n in (9, 1, 5, 2)]
    assert micro_batches(rs, [0, 1, 2, 3], size=2) == [[1, 3], [2, 0]]
    assert micro_batches(rs, [0, 1, 2, 3], size=4, max_tokens=24) == [[1, 3, 2], [0]]
    assert micro_batches(rs, [0, 1, 2, 3], size=4, max_tokens=5) == [[1], [3], [2], [0]]  # one row may exceed
    assert micro_batches(rs, [2, 0], size=8) == [[2, 0]]
    assert micro_batches(rs, [], size=8) == []


@pytest.mark.parametrize("size,max_tokens", [(1, None), (3, None), (64, None), (64, 300), (5, 120)])
def test_micro_batches_cover_every_index_once_within_the_caps(size, max_tokens):
    rng = random.Random(size)
    rs = [_fake(rng.randint(3, 20), rng.randint(0, 60)) for _ in range(57)]
    idx = rng.sample(range(57), 40)
    mbs = micro_batches(rs, idx, size, max_tokens)
    assert sorted(i for mb in mbs for i in mb) == sorted(idx)
    for mb in mbs:
        assert 1 <= len(mb) <= size
        padded = len(mb) * (max(len(rs[i].prompt_ids) for i in mb) + max(max(rs[i].length, 1) for i in mb))
        if max_tokens and len(mb) > 1:
            assert padded <= max_tokens
    totals = [len(rs[i].prompt_ids) + rs[i].length for mb in mbs for i in mb]
    assert totals == sorted(totals)  # shortest first: each micro-batch pads to its own lengths


def _rollouts(tok):
    rows = [("Q:1+2=", "3.A:3"), ("Q:4+4+1=", "9.9.9.A:9"), ("Q:9+1+1=", "11"), ("Q:2=", "A:2"),
            ("Q:5+5=", "10.10.A:10"), ("Q:3+3+3+3=", "12")]
    return [Rollout(i, tok(p)["input_ids"], tok(c)["input_ids"] + [tok.eos_token_id], c, "stop", None)
            for i, (p, c) in enumerate(rows)]


def _updated_weights(toy, micro_batch_size, micro_batch_tokens, agg, entropy_coef=0.0, checkpointing=False,
                     entropy_mask=None, **algo):
    from accelerate import Accelerator

    model, tok = toy
    torch.manual_seed(0)
    policy = type(model)(model.config)
    policy.load_state_dict(model.state_dict())
    if checkpointing:
        policy.gradient_checkpointing_enable()
        assert policy.is_gradient_checkpointing
    opt = torch.optim.SGD(policy.parameters(), lr=0.5)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    adv = torch.tensor([1.0, -0.5, 2.0, -1.5, 0.3, -1.3])
    stats = update_policy(Accelerator(cpu=True), policy, None, opt, sched, _rollouts(tok), adv,
                          AlgoConfig(loss_agg=agg, entropy_coef=entropy_coef, **algo), pad_id=tok.pad_token_id,
                          temperature=0.7, micro_batch_size=micro_batch_size, max_grad_norm=1e9, norm_len=16,
                          micro_batch_tokens=micro_batch_tokens, entropy_mask=entropy_mask)
    return torch.cat([p.detach().flatten() for p in policy.parameters()]), stats


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"])
@pytest.mark.parametrize("entropy_coef", [0.0, 0.01])
def test_update_does_not_depend_on_the_micro_batching(toy, agg, entropy_coef):
    whole, s_whole = _updated_weights(toy, 64, None, agg, entropy_coef)
    for size, tokens in ((1, None), (4, None), (64, 40)):
        cut, s_cut = _updated_weights(toy, size, tokens, agg, entropy_coef)
        assert torch.allclose(cut, whole, atol=1e-6), (size, tokens)
        assert s_cut["loss"] == pytest.approx(s_whole["loss"], abs=1e-6)
        assert s_cut["entropy"] == pytest.approx(s_whole["entropy"], rel=1e-5)
    start = torch.cat([p.detach().flatten() for p in toy[0].parameters()])
    assert not torch.allclose(whole, start)  # the step did move the weights


def test_entropy_shaped_advantages_act_where_the_mask_says(toy):
    """algo.entropy_advantage (CEEH's release): no sample selected -> the plain update exactly; some
    selected -> another update, the same however the micro-batches are cut."""
    shaping = {"entropy_advantage": {"alpha": 0.4, "kappa": 2.0}}
    plain, _ = _updated_weights(toy, 64, None, "token-mean")
    none, _ = _updated_weights(toy, 64, None, "token-mean", entropy_mask=torch.zeros(6), **shaping)
    assert torch.equal(none, plain)
    some, s_some = _updated_weights(toy, 64, None, "token-mean", entropy_mask=torch.tensor([1.0, 0, 1, 0, 1, 1]),
                                    **shaping)
    assert not torch.allclose(some, plain)
    cut, s_cut = _updated_weights(toy, 2, None, "token-mean", entropy_mask=torch.tensor([1.0, 0, 1, 0, 1, 1]),
                                  **shaping)
    assert torch.allclose(cut, some, atol=1e-6) and s_cut["loss"] == pytest.approx(s_some["loss"], abs=1e-6)


def test_untrained_rollouts_carry_no_gradient(toy):
    """algo.mask_truncated (TRL mask_truncated_completions): a rollout with trained=False enters neither
    the loss nor its token count, so the update equals the update on the trained rollouts alone."""
    from accelerate import Accelerator

    model, tok = toy
    adv = torch.tensor([1.0, -0.5, 2.0, -1.5, 0.3, -1.3])
    keep = [0, 2, 3, 5]

    def step(rollouts, advantages, micro=64):
        torch.manual_seed(0)
        policy = type(model)(model.config)
        policy.load_state_dict(model.state_dict())
        opt = torch.optim.SGD(policy.parameters(), lr=0.5)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
        stats = update_policy(Accelerator(cpu=True), policy, None, opt, sched, rollouts, advantages,
                              AlgoConfig(loss_agg="token-mean"), pad_id=tok.pad_token_id, temperature=0.7,
                              micro_batch_size=micro, max_grad_norm=1e9, norm_len=16)
        return torch.cat([p.detach().flatten() for p in policy.parameters()]), stats

    masked = _rollouts(tok)
    for i, r in enumerate(masked):
        r.trained = i in keep
    alone, s_alone = step([_rollouts(tok)[i] for i in keep], adv[keep])
    for micro in (64, 2):
        got, s_got = step(masked, adv, micro)
        assert torch.allclose(got, alone, atol=1e-6) and s_got["loss"] == pytest.approx(s_alone["loss"], abs=1e-6)
    for r in masked:
        r.trained = False
    start = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert torch.equal(step(masked, adv)[0], start)  # nothing trained: the weights stay


def test_entropy_outside_the_graph_has_the_same_value(toy):
    model, tok = toy
    batch = make_batch(_rollouts(tok), tok.pad_token_id)
    _, with_grad = completion_logprobs(model, batch, 0.7, with_entropy=True)
    _, stat_only = completion_logprobs(model, batch, 0.7, with_entropy=True, entropy_grad=False)
    assert with_grad.requires_grad and not stat_only.requires_grad
    assert torch.allclose(with_grad.detach(), stat_only)


def test_score_pass_returns_rollout_order_whatever_the_micro_batches(toy):
    model, tok = toy
    rollouts = _rollouts(tok)
    one, ent_one = score_pass(model, rollouts, tok.pad_token_id, 1.0, 64, True)
    cut, ent_cut = score_pass(model, rollouts, tok.pad_token_id, 1.0, 2, True, max_tokens=30)
    for r, a, b, ea, eb in zip(rollouts, one, cut, ent_one, ent_cut):
        assert a.shape == (r.length,) and torch.allclose(a, b, atol=1e-5) and torch.allclose(ea, eb, atol=1e-5)


def test_a_row_longer_than_the_token_cap_runs_alone_with_gradient_checkpointing(toy, monkeypatch):
    """micro_batch_tokens below every row: each row is its own micro-batch, its logits chunked
    (3-token chunks here) and its layers recomputed; the step equals the uncut, unchunked one."""
    monkeypatch.setattr("rl.algo.logprobs.CHUNK_BYTES", 4 * 3 * toy[0].config.vocab_size)
    cut, _ = _updated_weights(toy, 64, 4, "token-mean", 0.01, checkpointing=True)
    monkeypatch.undo()
    whole, _ = _updated_weights(toy, 64, None, "token-mean", 0.01)
    assert torch.allclose(cut, whole, atol=1e-6)
