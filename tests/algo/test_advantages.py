"""Advantage estimators against hand-computed values."""

import math

import pytest
import torch

from rl.algo.advantages import compute_advantages

R = [1, 0, 1, 1, 0, 0, 1, 0]
G = [0, 0, 0, 0, 1, 1, 1, 1]


def close(a, b, tol=1e-4):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert abs(float(x) - y) < tol, (a, b)


def test_grpo_group_std():
    # group 0: mean .75, centred (.25,-.75,.25,.25), unbiased std sqrt(.75/3)=.5
    # group 1: mean .25, centred (-.25,-.25,.75,-.25), std .5
    close(compute_advantages("grpo", R, G, eps=0.0), [0.5, -1.5, 0.5, 0.5, -0.5, -0.5, 1.5, -0.5])


def test_none_is_centred_only():
    close(compute_advantages("none", R, G), [0.25, -0.75, 0.25, 0.25, -0.25, -0.25, 0.75, -0.25])


def test_batch_std_scales_by_one_std():
    # centred values have sum of squares 1.5 over 8 samples: unbiased std sqrt(1.5/7) = 0.462910
    s = math.sqrt(1.5 / 7)
    expected = [c / s for c in [0.25, -0.75, 0.25, 0.25, -0.25, -0.25, 0.75, -0.25]]
    close(compute_advantages("batch_std", R, G, eps=0.0), expected)
    assert abs(expected[1] - (-1.620185)) < 1e-5


def test_zero_variance_group_gets_zero_advantage():
    adv = compute_advantages("grpo", [1, 1, 1, 0, 1], [0, 0, 0, 1, 1])
    close(adv[:3], [0, 0, 0])
    assert adv[3] < 0 < adv[4]


def test_groups_need_not_be_contiguous():
    a = compute_advantages("grpo", [1, 0, 0, 1], [0, 1, 0, 1], eps=0.0)
    close(a, [math.sqrt(0.5), -math.sqrt(0.5), -math.sqrt(0.5), math.sqrt(0.5)])


def test_unknown_estimator_names_closest():
    with pytest.raises(ValueError, match="did you mean 'grpo'"):
        compute_advantages("grop", R, G)


def test_dtype_and_shape():
    a = compute_advantages("grpo", torch.tensor(R, dtype=torch.float32), torch.tensor(G))
    assert a.shape == (8,) and a.dtype == torch.float32


# ----------------------------------------------------------------------------- facts and options
def test_old_positional_call_still_works():
    close(compute_advantages("grpo", R, G, 0.0), [0.5, -1.5, 0.5, 0.5, -0.5, -0.5, 1.5, -0.5])


def test_grpo_constant_group_is_exactly_zero_even_without_eps():
    # 0.1 * 3 / 3 != 0.1 in floating point; the group mean must still be exact
    a = compute_advantages("grpo", [0.1, 0.1, 0.1, 1.0, 0.0], [0, 0, 0, 1, 1], eps=0.0)
    assert a[:3].tolist() == [0.0, 0.0, 0.0]
    assert torch.isfinite(a).all()


def test_missing_fact_names_estimator_and_fact():
    with pytest.raises(ValueError, match="advantage estimator 'drpo' needs lengths"):
        compute_advantages("drpo", R, G)
    with pytest.raises(ValueError, match="advantage estimator 'reinforce_pp_baseline' needs lengths"):
        compute_advantages("reinforce_pp_baseline", R, G, max_length=10)


def test_unknown_option_names_closest():
    msg = "advantage estimator 'drpo' has no option 'temprature'; did you mean 'temperature'"
    with pytest.raises(ValueError, match=msg):
        compute_advantages("drpo", R, G, lengths=[1] * 8, options={"temprature": 1.0})
    with pytest.raises(ValueError, match="'grpo' has no option 'temperature'.*takes no options"):
        compute_advantages("grpo", R, G, options={"temperature": 1.0})


def test_facts_not_declared_are_ignored():
    a = compute_advantages("grpo", R, G, 0.0, lengths=[5] * 8, correct=[True] * 8, max_length=9)
    close(a, [0.5, -1.5, 0.5, 0.5, -0.5, -0.5, 1.5, -0.5])


def test_bad_option_value_and_bad_facts():
    with pytest.raises(ValueError, match="'temperature' must be a finite number"):
        compute_advantages("drpo", R, G, lengths=[1] * 8, options={"temperature": "hot"})
    with pytest.raises(ValueError, match="temperature must be > 0"):
        compute_advantages("drpo", R, G, lengths=[1] * 8, options={"temperature": 0})
    with pytest.raises(ValueError, match="lengths has shape"):
        compute_advantages("drpo", R, G, lengths=[1, 2])
    with pytest.raises(ValueError, match="lengths must be finite and >= 0"):
        compute_advantages("drpo", R, G, lengths=[-1] * 8)
    with pytest.raises(ValueError, match="max_length must be a positive int"):
        compute_advantages("drpo", R, G, lengths=[1] * 8, max_length=0)


def test_option_names_helper():
    from rl.algo.estimators import ADVANTAGES, advantage_facts, advantage_option_names

    assert advantage_option_names("drpo") == ["temperature", "token_positions"]
    assert advantage_option_names("grpo") == ["token_positions"]  # the per-token option of every estimator
    assert advantage_facts("drpo") == {"lengths": True, "max_length": False}
    assert advantage_facts("reinforce_pp_baseline") == {"lengths": True}
    assert {"grpo", "batch_std", "none", "rloo", "reinforce_pp_baseline", "drpo"} <= set(ADVANTAGES)
    with pytest.raises(ValueError, match="did you mean 'rloo'"):
        advantage_option_names("rlo")


# ----------------------------------------------------------------------------- rloo
def test_rloo_leave_one_out():
    # G = 4, mean .5: 4/3 * (r - .5); e.g. sample 0: 1 - mean(0, 0, 1) = 2/3
    close(compute_advantages("rloo", [1, 0, 0, 1], [0, 0, 0, 0]), [2 / 3, -2 / 3, -2 / 3, 2 / 3])
    # R/G: group 0 (1,0,1,1): sample 1 gets 0 - 1 = -1, the others 1 - 2/3 = 1/3
    close(compute_advantages("rloo", R, G), [1 / 3, -1, 1 / 3, 1 / 3, -1 / 3, -1 / 3, 1, -1 / 3])


def test_rloo_group_of_one_and_non_contiguous():
    close(compute_advantages("rloo", [5.0, 1, 0], [7, 0, 0]), [0, 1, -1])
    # groups 0: (1, 0) -> (1, -1); 1: (0, 3, 0) -> 0 - 1.5, 3 - 0, 0 - 1.5
    close(compute_advantages("rloo", [1, 0, 0, 3, 0], [0, 1, 0, 1, 1]), [1, -1.5, -1, 3, -1.5])


# ----------------------------------------------------------------------------- reinforce++-baseline
def test_reinforce_pp_baseline_token_whitening():
    # centred: group 0 (1,0) -> (.5,-.5), group 1 (1,1) -> (0,0); lengths (2,4,1,3), 10 tokens
    # mu = (2*.5 - 4*.5 + 0 + 0)/10 = -0.1
    # deviations (.6,-.4,.1,.1): sigma^2 = (2*.36 + 4*.16 + 1*.01 + 3*.01)/10 = 1.40/10 = 0.14
    mu = (2 * 0.5 - 4 * 0.5) / 10
    var = (2 * 0.6**2 + 4 * 0.4**2 + 1 * 0.1**2 + 3 * 0.1**2) / 10
    assert abs(mu + 0.1) < 1e-12 and abs(var - 0.14) < 1e-12
    s = math.sqrt(0.14)
    a = compute_advantages("reinforce_pp_baseline", [1, 0, 1, 1], [0, 0, 1, 1], 0.0, lengths=[2, 4, 1, 3])
    close(a, [0.6 / s, -0.4 / s, 0.1 / s, 0.1 / s], tol=1e-5)
    # token-weighted mean of the result is 0, token-weighted variance 1
    L = torch.tensor([2.0, 4, 1, 3])
    assert abs(float((L * a).sum() / L.sum())) < 1e-6
    assert abs(float((L * a**2).sum() / L.sum()) - 1) < 1e-5


def test_reinforce_pp_baseline_zero_length_samples():
    # samples 2, 3 have no tokens: weight 0, yet they are shifted and scaled like the others.
    # centred (.5, -.5, -.5, .5); tokens only from samples 0, 1 (1 each): mu = 0, sigma = .5
    a = compute_advantages("reinforce_pp_baseline", [1, 0, 0, 1], [0, 0, 1, 1], 0.0, lengths=[1, 1, 0, 0])
    close(a, [1, -1, -1, 1])
    # no tokens at all: the centred values
    a = compute_advantages("reinforce_pp_baseline", [1, 0, 3, 1], [0, 0, 1, 1], 0.0, lengths=[0, 0, 0, 0])
    close(a, [0.5, -0.5, 1, -1])


# ----------------------------------------------------------------------------- drpo
DR = [1, 1, 0, 0]
DG = [0, 0, 0, 0]
DL = [10, 30, 50, 100]


def test_drpo_mixed_group_hand_computed():
    # base grpo: mean .5, unbiased std sqrt(1/3): base = +-sqrt(3)/2; positive mass sqrt(3)
    # r_len = 1 - L/100 = (.9, .7); logits / 0.1 = (9, 7)
    base = math.sqrt(3) / 2
    w_short = math.exp(9) / (math.exp(9) + math.exp(7))
    w_long = math.exp(7) / (math.exp(9) + math.exp(7))
    assert abs(w_short - 0.880797) < 1e-6
    a = compute_advantages("drpo", DR, DG, 0.0, lengths=DL, max_length=100)
    close(a, [w_short * 2 * base, w_long * 2 * base, -base, -base], tol=1e-5)
    assert a[0] > a[1] > 0  # shorter correct gets more; the long correct one stays positive
    assert abs(float(a[0] + a[1]) - 2 * base) < 1e-5  # positive mass preserved
    grpo = compute_advantages("grpo", DR, DG, 0.0)
    close(a[2:], grpo[2:].tolist())  # wrong answers keep their GRPO advantage


def test_drpo_temperature_option_changes_split():
    # lambda = 1: logits (.9, .7): w_short = 1 / (1 + e^-0.2)
    w = 1 / (1 + math.exp(-0.2))
    base = math.sqrt(3) / 2
    a = compute_advantages("drpo", DR, DG, 0.0, lengths=DL, max_length=100, options={"temperature": 1})
    close(a[:2], [w * 2 * base, (1 - w) * 2 * base], tol=1e-5)
    # very large lambda: equal split, i.e. plain grpo
    a = compute_advantages("drpo", DR, DG, 0.0, lengths=DL, max_length=100, options={"temperature": 1e9})
    close(a, [base, base, -base, -base], tol=1e-5)


def test_drpo_default_cap_is_group_longest():
    # C = 100 (group's longest) -> same as max_length=100
    a = compute_advantages("drpo", DR, DG, 0.0, lengths=DL)
    b = compute_advantages("drpo", DR, DG, 0.0, lengths=DL, max_length=100)
    close(a, b.tolist())
    # C = 200: logits (9.5, 8.5)
    w = 1 / (1 + math.exp(-1))
    c = compute_advantages("drpo", DR, DG, 0.0, lengths=DL, max_length=200)
    close(c[:2], [w * math.sqrt(3), (1 - w) * math.sqrt(3)], tol=1e-5)


def test_drpo_uniform_groups_get_zero_and_groups_are_separate():
    a = compute_advantages("drpo", [1, 1, 1, 0, 0, 1, 1, 0], [0, 0, 0, 1, 1, 2, 2, 2], lengths=[5, 9, 1, 3, 4, 8, 2, 6])
    close(a[:5], [0] * 5)
    # group 2 (1,1,0) lengths (8,2,6): the shorter correct (index 6) gets more, both positive
    assert a[6] > a[5] > 0 > a[7]


def test_drpo_non_binary_reward():
    # rewards (1, .5, 0, 0): mean .375; positives are those above the mean: 1 and .5
    r = [1.0, 0.5, 0.0, 0.0]
    base = compute_advantages("grpo", r, DG, 0.0)
    a = compute_advantages("drpo", r, DG, 0.0, lengths=[90, 10, 5, 5], max_length=100)
    assert a[1] > a[0] > 0  # the short .5 answer now outranks the long perfect one
    assert abs(float(a[0] + a[1] - base[0] - base[1])) < 1e-5
    close(a[2:], base[2:].tolist())


# ----------------------------------------------------------------------------- properties
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from rl.algo.estimators import ADVANTAGES, grpo  # noqa: E402

ZERO_FOR_UNIFORM = ("grpo", "batch_std", "none", "rloo", "drpo", "canon")


@st.composite
def batches(draw):
    sizes = draw(st.lists(st.integers(1, 5), min_size=1, max_size=5))
    reward = st.one_of(st.sampled_from([0.0, 1.0, 0.1, -1.0, 0.5]), st.floats(-10, 10))
    rewards, groups, lengths = [], [], []
    for k, size in enumerate(sizes):
        if draw(st.booleans()):
            rewards += [draw(reward)] * size  # a zero-variance group
        else:
            rewards += draw(st.lists(reward, min_size=size, max_size=size))
        groups += [k] * size
        lengths += draw(st.lists(st.integers(0, 64), min_size=size, max_size=size))
    perm = draw(st.permutations(range(len(rewards))))
    pick = lambda xs: [xs[i] for i in perm]  # noqa: E731
    max_length = draw(st.one_of(st.none(), st.integers(64, 128)))
    return pick(rewards), pick(groups), pick(lengths), max_length


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches(), st.sampled_from([0.0, 1e-6]))
def test_every_estimator_finite_and_zero_for_uniform_groups(batch, eps):
    rewards, groups, lengths, max_length = batch
    correct = [r > 0 for r in rewards]
    for name in ADVANTAGES:
        if name == "reinforce_pp_baseline" and eps == 0.0:
            continue  # sigma can be a rounding residue: finite only with eps > 0
        a = compute_advantages(name, rewards, groups, eps, lengths=lengths, correct=correct, max_length=max_length,
                               entropies=[x / 7 for x in lengths], step=3)
        assert a.shape == (len(rewards),) and a.dtype == torch.float32
        assert torch.isfinite(a).all(), (name, a)
        if name in ZERO_FOR_UNIFORM:
            for g in set(groups):
                idx = [i for i, x in enumerate(groups) if x == g]
                if len({rewards[i] for i in idx}) == 1:
                    assert all(float(a[i]) == 0.0 for i in idx), (name, g, a)
        if name == "drpo":
            # positivity in float64, as the estimator sees it (a 1e-226 residue is positive)
            base = grpo(torch.tensor(rewards, dtype=torch.float64), torch.tensor(groups), eps)
            for g in set(groups):
                idx = [i for i, x in enumerate(groups) if x == g]
                pos = [i for i in idx if base[i] > 0]
                assert all(a[i] >= 0 for i in pos)
                assert abs(sum(float(a[i]) for i in pos) - sum(float(base[i]) for i in pos)) < 1e-3 * (1 + len(pos))
                assert all(float(a[i]) == float(base[i].float()) for i in idx if i not in pos)


def test_empty_batch():
    # the trainer calls with empty lists when dynamic sampling kept nothing
    for name in ADVANTAGES:
        a = compute_advantages(name, [], [], 1e-6, lengths=[], correct=[], max_length=8, entropies=[], step=1)
        assert a.shape == (0,) and a.dtype == torch.float32


def test_normalize_then_sum_by_hand_and_as_trl_computes_it():
    """GDPO / TRL multi_objective_aggregation=normalize_then_sum (issue 26, item 1): each reward
    normalised within its group, then the weighted sum; with batch_std the sum is normalised over the
    batch. Checked against TRL's formula (GRPOTrainer._compute_advantages, written out here)."""
    from types import SimpleNamespace

    from rl.algo.advantages import normalize_then_sum, table_advantages

    comps = {"correct": [1.0, 0.0, 1.0, 1.0, 0.0, 1.0], "length": [0.2, 0.8, 0.5, 0.3, 0.9, 0.1]}
    weights = {"correct": 1.0, "length": 0.5}
    groups = [0, 0, 0, 1, 1, 1]
    # group 0: correct (1, 0, 1): mean 2/3, sd 0.57735 -> 0.57735, -1.1547, 0.57735; length (.2, .8, .5): sd .3
    z = normalize_then_sum(comps, weights, groups, eps=0.0)
    assert z[:3].tolist() == pytest.approx([0.57735 - 0.5, -1.1547 + 0.5, 0.57735 + 0.0], abs=1e-4)
    # batch scope: one mean and sd over all six
    zb = normalize_then_sum(comps, weights, groups, scope="batch", eps=0.0)
    c, ln = torch.tensor(comps["correct"]), torch.tensor(comps["length"])
    want = (c - c.mean()) / c.std() + 0.5 * (ln - ln.mean()) / ln.std()
    assert torch.allclose(zb.float(), want, atol=1e-6)

    eps = 1e-4  # TRL's formula: per reward (x - group mean) / (group sd + 1e-4), weighted sum, batch z-score
    grouped = torch.stack([c, ln], dim=1).view(2, 3, 2).double()
    k = (grouped - grouped.mean(1, keepdim=True)) / (grouped.std(1, keepdim=True) + eps)
    r = (k.view(-1, 2) * torch.tensor([1.0, 0.5], dtype=torch.float64)).sum(1)
    trl = (r - r.mean()) / (r.std() + eps)
    table = [SimpleNamespace(group=g, length=10, correct=True, entropy_mean=None) for g in groups]
    algo = SimpleNamespace(reward_aggregation="normalize_then_sum", reward_norm="group", adv_eps=eps,
                           advantage="batch_std", advantage_options={})
    ours = table_advantages(algo, [0.0] * 6, table, 16, 1, None, comps, weights)
    assert torch.allclose(ours.double(), trl, atol=1e-5)
    # the default sums first: one term's scale decides (here correctness, sd 0.5 vs length's 0.3)
    algo.reward_aggregation = "sum_then_normalize"
    summed = [c_ + 0.5 * l_ for c_, l_ in zip(comps["correct"], comps["length"])]
    assert not torch.allclose(table_advantages(algo, summed, table, 16, 1).double(), trl, atol=1e-3)
    with pytest.raises(ValueError, match="per-token"):
        algo.reward_aggregation = "normalize_then_sum"
        table_advantages(algo, [0.0] * 6, table, 16, 1, [[1.0] * 10] * 6, comps, weights)
