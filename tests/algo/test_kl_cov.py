"""KL-Cov (arXiv 2505.22617; DOT's released loss, arXiv 2601.03969): token selection, loss and
gradient against hand-computed numbers, the selection over several processes, an update that does
not depend on the micro-batching, and the config checks."""

import math
import threading

import pytest
import torch
from hypothesis import given, settings, strategies as st

from rl.algo.kl_cov import covariances, select, top_count
from rl.algo.loss import Normalizer, policy_loss
from rl.config import AlgoConfig, ConfigError, kl_cov_options, load_config

# 2 sequences x 3 tokens, the last token of sequence 1 is padding
MASK = torch.tensor([[1, 1, 1], [1, 1, 0]])
OLD = torch.tensor([[-0.5, -1.0, -2.0], [-0.2, -3.0, -9.0]])
ADV_SEQ = torch.tensor([1.0, -1.0])
ADV_TOK = torch.tensor([[1.0, 2.0, -3.0], [0.5, -2.0, 7.0]])  # 7.0 sits on the pad
DELTA = torch.tensor([[0.1, -0.2, 0.3], [0.0, -0.1, 0.5]])  # logp - old_logp
RATIO = 0.4  # N = 5 valid tokens: k = max(1, floor(5 * 0.4)) = 2


def test_top_count():
    assert top_count(5, 0.4) == 2
    assert top_count(12800, 0.002) == 25   # about the toy's tokens per step at DOT's ratio
    assert top_count(300, 0.002) == 1      # floor(0.6) = 0 -> at least one token, as verl
    assert top_count(0, 0.5) == 0
    assert top_count(7, 1.0) == 7


def test_selection_by_hand_per_sequence_advantages():
    """Valid A = 1, 1, 1, -1, -1 (mean 0.2); valid old logp = -0.5, -1, -2, -0.2, -3 (mean -1.34).
    cov = 0.8*0.84, 0.8*0.34, 0.8*(-0.66), -1.2*1.14, -1.2*(-1.66)
        = 0.672, 0.272, -0.528, -1.368, 1.992  -> top 2: (1, 1) and (0, 0)."""
    cov = covariances(ADV_SEQ, OLD, MASK)
    assert cov.tolist() == pytest.approx([0.672, 0.272, -0.528, -1.368, 1.992])
    chosen = select(ADV_SEQ, OLD, MASK, RATIO)
    assert chosen.tolist() == [[True, False, False], [False, True, False]]
    # the pad (A = -1, logp = -9) would win if the mask leaked: with it, A mean 0, logp mean -2.6167,
    # its cov = -1 * (-9 + 2.6167) = 6.38 is the largest
    leaked = select(ADV_SEQ, OLD, torch.ones_like(MASK), RATIO)
    assert leaked[1, 2]


def test_selection_by_hand_per_token_advantages():
    """Valid A = 1, 2, -3, 0.5, -2 (mean -0.3): deviations 1.3, 2.3, -2.7, 0.8, -1.7;
    logp deviations 0.84, 0.34, -0.66, 1.14, -1.66;
    cov = 1.092, 0.782, 1.782, 0.912, 2.822 -> top 2: (1, 1) and (0, 2); the pad's A = 7 is ignored."""
    cov = covariances(ADV_TOK, OLD, MASK)
    assert cov.tolist() == pytest.approx([1.092, 0.782, 1.782, 0.912, 2.822])
    assert select(ADV_TOK, OLD, MASK, RATIO).tolist() == [[False, False, True], [False, True, False]]
    # per-token advantages equal to the per-sequence ones choose what the [B] form chooses
    assert torch.equal(select(ADV_SEQ.unsqueeze(-1).expand(2, 3), OLD, MASK, RATIO), select(ADV_SEQ, OLD, MASK, RATIO))


def test_ties_go_to_the_earlier_position():
    adv, logp, mask = torch.tensor([1.0, -1.0]), torch.tensor([[0.0, 0.0], [-2.0, -2.0]]), torch.ones(2, 2)
    # every cov is 1*1 = 1: the first k in row-major order win
    assert select(adv, logp, mask, 0.5).tolist() == [[True, True], [False, False]]
    assert select(adv, logp, mask, 0.25).tolist() == [[True, False], [False, False]]


E = math.exp
# per-token KL-Cov losses (coef 0.5), ratios e^0.1, e^-0.2, e^0.3, e^0, e^-0.1:
#   per-sequence A, chosen (0, 0), (1, 1):
L_SEQ = [[-E(0.1) + 0.5 * 0.1, -E(-0.2), -E(0.3)], [1.0, E(-0.1) + 0.5 * 0.1]]
#   = -1.055171, -0.818731, -1.349859 (unclipped: the clip loss would give -1.2), 1.0, 0.954837
#   per-token A, chosen (0, 2), (1, 1):
L_TOK = [[-E(0.1), -2 * E(-0.2), 3 * E(0.3) + 0.5 * 0.3], [-0.5, 2 * E(-0.1) + 0.5 * 0.1]]
#   = -1.105171, -1.637462, 4.199576, -0.5, 1.859675


def _loss(adv, agg="token-mean", coef=0.5, logp=None):
    logp = OLD + DELTA if logp is None else logp
    chosen = select(adv, OLD, MASK, RATIO)
    return policy_loss(logp, OLD, adv, MASK, clip_low=0.2, clip_high=0.2, agg=agg,
                       norm=Normalizer(num_tokens=5, num_seqs=2), kl_cov_mask=chosen, kl_cov_coef=coef)


def test_loss_by_hand():
    assert [v for row in L_SEQ for v in row] == pytest.approx([-1.055171, -0.818731, -1.349859, 1.0, 0.954837], abs=1e-6)
    assert [v for row in L_TOK for v in row] == pytest.approx([-1.105171, -1.637462, 4.199576, -0.5, 1.859675], abs=1e-6)
    loss, stats = _loss(ADV_SEQ)
    assert loss.item() == pytest.approx(-1.268923 / 5, abs=1e-6)  # token-mean: sum / 5
    seq, _ = _loss(ADV_SEQ, agg="seq-mean-token-mean")
    assert seq.item() == pytest.approx((sum(L_SEQ[0]) / 3 + sum(L_SEQ[1]) / 2) / 2, abs=1e-6)  # -0.048584
    tok, _ = _loss(ADV_TOK)
    assert tok.item() == pytest.approx(2.816619 / 5, abs=1e-6)
    assert stats["kl_cov_fraction"].item() == pytest.approx(2 / 5)
    assert stats["kl_cov_abs_diff_mass"].item() == pytest.approx((0.1 + 0.1) / 5)  # |dlogp| on (0,0), (1,1)
    assert "clip_frac_high" not in stats
    assert stats["ratio"].item() == pytest.approx((E(0.1) + E(-0.2) + E(0.3) + 1 + E(-0.1)) / 5)


def test_gradient_penalty_on_chosen_tokens_and_no_clipping_elsewhere():
    """d l_t / d logp_t = (-A_t rho_t + coef * sign(logp_t - old_t) * s_t) / N:
    chosen (0, 0): (-e^0.1 + 0.5) / 5; chosen (1, 1): (e^-0.1 - 0.5) / 5 (logp below old);
    (0, 2): -e^0.3 / 5 although rho = 1.35 > 1.2 (the clipped loss gives 0 there); pad: 0."""
    logp = (OLD + DELTA).requires_grad_(True)
    loss, _ = _loss(ADV_SEQ, logp=logp)
    loss.backward()
    expected = torch.tensor([[-E(0.1) + 0.5, -E(-0.2), -E(0.3)], [1.0, E(-0.1) - 0.5, 0.0]]) / 5
    assert torch.allclose(logp.grad, expected, atol=1e-6)
    clip_logp = (OLD + DELTA).requires_grad_(True)
    clipped, _ = policy_loss(clip_logp, OLD, ADV_SEQ, MASK, clip_low=0.2, clip_high=0.2, agg="token-mean",
                             norm=Normalizer(num_tokens=5, num_seqs=2))
    clipped.backward()
    assert clip_logp.grad[0, 2] == 0


def test_no_penalty_when_nothing_is_chosen_or_coef_is_zero():
    logp = OLD + DELTA
    plain = -(torch.exp(DELTA) * ADV_SEQ.unsqueeze(-1) * MASK).sum() / 5
    for mask, coef in ((torch.zeros(2, 3), 0.5), (select(ADV_SEQ, OLD, MASK, RATIO), 0.0)):
        loss, _ = policy_loss(logp, OLD, ADV_SEQ, MASK, clip_low=0.2, clip_high=0.2, agg="token-mean",
                              norm=Normalizer(5, 2), kl_cov_mask=mask, kl_cov_coef=coef)
        assert loss.item() == pytest.approx(plain.item(), abs=1e-6)


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 5), st.integers(1, 7), st.floats(0.01, 1.0), st.booleans(), st.integers(0, 10_000))
def test_selection_properties(B, T, ratio, per_token, seed):
    """Exactly k = max(1, floor(N ratio)) tokens, all valid, and none left out has a larger cov."""
    g = torch.Generator().manual_seed(seed)
    mask = (torch.rand(B, T, generator=g) < 0.7).long()
    mask[0, 0] = 1
    logp = -torch.rand(B, T, generator=g) * 4
    adv = torch.randn(B, T, generator=g) if per_token else torch.randn(B, generator=g)
    chosen = select(adv, logp, mask, ratio)
    n = int(mask.sum())
    assert int(chosen.sum()) == top_count(n, ratio) == max(1, int(n * ratio))
    assert not (chosen & ~mask.bool()).any()
    cov = covariances(adv, logp, mask)
    flat = chosen[mask.bool()]
    if flat.all():
        return
    assert cov[flat].min() >= cov[~flat].max()


class _Group:
    """Collectives of ``world`` fake processes run as threads (sum-reduce and gather)."""

    def __init__(self, world):
        self.world, self.slots, self.barrier = world, [None] * world, threading.Barrier(world)

    def exchange(self, rank, x):
        self.slots[rank] = x
        self.barrier.wait()
        out = list(self.slots)
        self.barrier.wait()
        return out


class _FakeAccelerator:
    def __init__(self, group, rank):
        self.group, self.process_index, self.num_processes, self.device = group, rank, group.world, "cpu"

    def reduce(self, x, reduction="sum"):
        return torch.stack(self.group.exchange(self.process_index, x)).sum(0)

    def gather(self, x):
        return torch.cat(self.group.exchange(self.process_index, x))


@pytest.mark.parametrize("ratio", [0.05, 0.3, 1.0])
def test_selection_over_processes_equals_the_selection_over_all_their_rows(ratio):
    """Each process passes its own rows; together they choose what one process choosing over all
    rows (process-major) chooses: global means, global top k, ties to the lower process."""
    g = torch.Generator().manual_seed(3)
    adv = torch.randn(12, generator=g).round()  # rounded: many ties
    logp = -torch.randint(0, 3, (12, 5), generator=g).float()
    mask = (torch.rand(12, 5, generator=g) < 0.8).long()
    whole = select(adv, logp, mask, ratio)
    group, parts = _Group(3), [None] * 3

    def run(rank):
        rows = slice(4 * rank, 4 * rank + 4)
        parts[rank] = select(adv[rows], logp[rows], mask[rows], ratio, _FakeAccelerator(group, rank))

    threads = [threading.Thread(target=run, args=(r,)) for r in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert torch.equal(torch.cat(parts), whole)


# --------------------------------------------------------------------------- the update


def _updated(toy, micro_batch_size, micro_batch_tokens, agg, per_token):
    from accelerate import Accelerator

    from rl.train.update import score_pass, update_policy
    from tests.train.test_update import _rollouts

    model, tok = toy
    torch.manual_seed(0)
    policy = type(model)(model.config)
    policy.load_state_dict(model.state_dict())
    opt = torch.optim.SGD(policy.parameters(), lr=0.05)  # the second step sees |logp - old| ~ 0.1-1
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    rollouts = _rollouts(tok)
    adv = torch.tensor([1.0, -0.5, 2.0, -1.5, 0.3, -1.3])
    if per_token:  # [n, T_max], a different value on every token
        width = max(r.length for r in rollouts)
        adv = adv.unsqueeze(-1) * torch.linspace(0.5, 1.5, width)
    old, _ = score_pass(policy, rollouts, tok.pad_token_id, 0.7, 64, False)
    algo = AlgoConfig(loss_agg=agg, policy_loss="kl_cov", kl_cov={"ratio": 0.2, "coef": 1.0}, updates_per_rollout=2)
    stats = update_policy(Accelerator(cpu=True), policy, None, opt, sched, rollouts, adv, algo,
                          pad_id=tok.pad_token_id, temperature=0.7, micro_batch_size=micro_batch_size,
                          max_grad_norm=1e9, norm_len=16, micro_batch_tokens=micro_batch_tokens, old_logps=old)
    return torch.cat([p.detach().flatten() for p in policy.parameters()]), stats


@pytest.mark.parametrize("agg,per_token", [("token-mean", False), ("seq-mean-token-mean", True)])
def test_kl_cov_update_does_not_depend_on_the_micro_batching(toy, agg, per_token):
    """Two updates per rollout batch: the second is off-policy, so the chosen tokens carry the
    |logp - old_logp| penalty; the result is the same however the step is cut."""
    whole, s_whole = _updated(toy, 64, None, agg, per_token)
    assert 0 < s_whole["kl_cov_fraction"] < 0.2  # chosen only in the second of the two steps
    assert s_whole["kl_cov_abs_diff"] > 0
    for size, tokens in ((1, None), (2, None), (64, 40)):
        cut, s_cut = _updated(toy, size, tokens, agg, per_token)
        assert torch.allclose(cut, whole, atol=1e-6), (size, tokens)
        assert s_cut["loss"] == pytest.approx(s_whole["loss"], abs=1e-6)
        assert s_cut["kl_cov_fraction"] == pytest.approx(s_whole["kl_cov_fraction"], abs=1e-9)
        assert s_cut["kl_cov_abs_diff"] == pytest.approx(s_whole["kl_cov_abs_diff"], rel=1e-4)


def test_penalty_changes_the_update(toy, monkeypatch):
    """Same run with coef 0: the weights differ only through the penalty of the second step."""
    with_penalty, _ = _updated(toy, 64, None, "token-mean", False)
    monkeypatch.setattr("rl.train.update.kl_cov_options", lambda algo: (0.2, 0.0))
    without, _ = _updated(toy, 64, None, "token-mean", False)
    assert not torch.allclose(with_penalty, without, atol=1e-6)


# --------------------------------------------------------------------------- config


def test_config_defaults_and_release_values():
    assert AlgoConfig().policy_loss == "clip"
    assert kl_cov_options(load_config(None, ["algo.policy_loss=kl_cov"]).algo) == (2e-4, 1.0)  # verl's defaults
    cfg = load_config(None, ["algo.policy_loss=kl_cov", "algo.kl_cov={ratio: 0.002, coef: 1.0}"])
    assert kl_cov_options(cfg.algo) == (0.002, 1.0)


@pytest.mark.parametrize("overrides,message", [
    (["algo.policy_loss=kl-cov"], r"algo.policy_loss: 'kl-cov' is not one of .*did you mean 'kl_cov'"),
    (["algo.policy_loss=kl_cov", "algo.kl_cov={ration: 0.1}"], r"algo.kl_cov: unknown option 'ration'; did you mean 'ratio'"),
    (["algo.policy_loss=kl_cov", "algo.kl_cov={ratio: 0}"], r"algo.kl_cov.ratio must be in \(0, 1\]"),
    (["algo.policy_loss=kl_cov", "algo.kl_cov={ratio: 1.5}"], r"algo.kl_cov.ratio must be in \(0, 1\]"),
    (["algo.policy_loss=kl_cov", "algo.kl_cov={coef: -1}"], r"algo.kl_cov.coef must be >= 0"),
    (["algo.policy_loss=kl_cov", "algo.kl_cov={coef: 'big'}"], r"algo.kl_cov.coef must be a number"),
    (["algo.kl_cov={ratio: 0.002}"], r"algo.kl_cov is set but algo.policy_loss is 'clip'"),
    (["algo.policy_loss=kl_cov", "algo.ratio_level=sequence"], r"needs algo.ratio_level=token"),
])
def test_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)
