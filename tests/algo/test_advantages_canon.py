"""CANON (arXiv 2509.23962): hand-computed halves, lambda schedules, edge cases, properties."""

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rl.algo.advantages import compute_advantages
from rl.algo.estimators import advantage_facts, advantage_needs, canon_lambda

# one group: lengths 10, 20 (short half, rewards 1, 1) and 30, 40 (long half, rewards 0, 1)
R, L = [1.0, 1.0, 0.0, 1.0], [10, 20, 30, 40]
INTER = [0.5, 0.5, -1.0, 0.0]  # lambda = 1: short r - mu_long (0.5), long r - mu_short (1)
INTRA = [0.0, 0.0, -0.5, 0.5]  # lambda = 0: each half against its own mean


def canon(rewards, lengths, groups=None, **options):
    groups = [0] * len(rewards) if groups is None else groups
    return compute_advantages("canon", rewards, groups, lengths=lengths, options=options).tolist()


def entropy_split(rewards, entropies, **options):
    return compute_advantages("canon", rewards, [0] * len(rewards), entropies=entropies,
                              options={"split": "entropy", **options}).tolist()


def test_inter_intra_and_dr_grpo_midpoint():
    assert canon(R, L) == pytest.approx(INTER)  # code default: lambda = 1
    assert canon(R, L, lam=0.0) == pytest.approx(INTRA)
    # lambda = 1/2 is Dr.GRPO: r - mean (0.75)
    assert canon(R, L, lam=0.5) == pytest.approx([0.25, 0.25, -0.75, 0.25])


def test_alpha_and_beta():
    # long:  2 r - mu_S (1) + 0.1;   short: r - 2 mu_L (1) - 0.1
    assert canon(R, L, alpha=2.0, beta=0.1) == pytest.approx([-0.1, -0.1, -0.9, 1.1])


def test_sample_order_does_not_matter():
    perm = [2, 0, 3, 1]
    a = canon([R[i] for i in perm], [L[i] for i in perm])
    assert a == pytest.approx([INTER[i] for i in perm])


def test_odd_group_puts_the_middle_sample_in_the_long_half():
    # sorted lengths 1 (r 1) | 3 (r 1), 5 (r 0): short {1}, long {3, 5}; mu_S = 1, mu_L = 0.5
    assert canon([0.0, 1.0, 1.0], [5, 1, 3]) == pytest.approx([-1.0, 0.5, 0.0])


def test_group_of_one_gets_zero():
    assert canon([1.0], [12], lam=0.3, alpha=2.0, beta=1.0) == [0.0]


def test_all_lengths_equal_falls_back_to_dr_grpo():
    assert canon([1.0, 0.0, 0.0, 0.0], [7, 7, 7, 7], alpha=3.0, beta=0.5) == pytest.approx([0.75, -0.25, -0.25, -0.25])


def test_ties_split_in_sample_order():
    # lengths 5, 5, 5, 9: the first two 5s are the short half
    assert canon([1.0, 0.0, 1.0, 1.0], [5, 5, 5, 9]) == pytest.approx([0.0, -1.0, 0.5, 0.5])


def test_groups_are_separate():
    a = canon(R + [1.0, 0.0], L + [3, 1], groups=[0, 0, 0, 0, 1, 1])
    assert a == pytest.approx(INTER + [1.0, -1.0])  # 2nd group: short {1: r 0}, long {3: r 1}


def test_entropy_split_puts_alpha_on_the_low_side():
    # entropies 0.9 0.1 0.5 0.3, rewards 0 1 1 1: low {0.1, 0.3} mu 1, high {0.5, 0.9} mu 0.5
    r, h = [0.0, 1.0, 1.0, 1.0], [0.9, 0.1, 0.5, 0.3]
    a = entropy_split(r, h, alpha=2.0)
    assert a == pytest.approx([-2.0, 1.5, -1.0, 1.5])  # high: r - 2 mu_lo; low: 2 r - mu_hi
    # the length split on the same key puts alpha on the long (upper) side
    assert canon(r, h, alpha=2.0) == pytest.approx([-1.0, 0.0, 1.0, 0.0])
    # with alpha = 1 the two agree
    assert entropy_split(r, h, lam=0.3) == pytest.approx(canon(r, h, lam=0.3))


def test_entropy_split_needs_entropies():
    assert advantage_facts("canon") == {"lengths": False, "entropies": False, "step": False}
    assert advantage_needs("canon", {"split": "entropy"}) == {"entropy"}
    assert advantage_needs("canon") == advantage_needs("canon", {"split": "length"}) == set()
    assert advantage_needs("grpo") == set()
    with pytest.raises(ValueError, match="split=entropy needs entropies"):
        compute_advantages("canon", R, [0] * 4, lengths=L, options={"split": "entropy"})
    with pytest.raises(ValueError, match="split=length needs lengths"):
        compute_advantages("canon", R, [0] * 4)
    with pytest.raises(ValueError, match="split must be one of"):
        canon(R, L, split="len")
    with pytest.raises(ValueError, match="entropies must be finite"):
        entropy_split(R, [0.1, math.nan, 0.2, 0.3])


def lam_seen(**options):
    """lambda recovered from the last sample: A = lam * 0 + (1 - lam) * 0.5."""
    return 1 - 2 * canon(R, L, **options)[3]


def test_cosine_restart_schedule():
    # the code's cosine_restart: lam = 1 - 0.6 w; warm-up 30, 150 steps, 3 cycles of 40
    cases = {0: 1 - 0.6 / 30, 29: 0.4, 30: 0.4, 50: 0.7, 70: 0.4, 90: 0.7}
    for step, lam in cases.items():
        got = compute_advantages("canon", R, [0] * 4, lengths=L, step=step,
                                 options={"lambda_schedule": "cosine_restart"}).tolist()
        assert 1 - 2 * got[3] == pytest.approx(lam, abs=1e-6), step
    # cosine_restart_r: lam = 0.4 + 0.6 w after the warm-up; in it the code's cosine_annealing_with_restart
    # (max 1, min 0.4, warm-up 30) rises from 0 with no floor: (step + 1) / 30, 1/15 at step 1 (issue 24)
    assert canon_lambda("cosine_restart", 1.0, 50, torch.zeros(1), 0.4, 1.0, 30, 150, 3) == pytest.approx(0.7)
    assert canon_lambda("cosine_restart", 1.0, 1, torch.zeros(1), 0.4, 1.0, 30, 150, 3) == pytest.approx(1 / 15)
    assert canon_lambda("cosine_restart", 1.0, 29, torch.zeros(1), 0.4, 1.0, 30, 150, 3) == pytest.approx(1.0)
    # laconic's earlier warm-up, from the base, as a named option: 0.4 + 0.6 (step + 1) / 30
    assert canon_lambda("cosine_restart", 1.0, 0, torch.zeros(1), 0.4, 1.0, 30, 150, 3, 0.4) == pytest.approx(0.42)
    got = compute_advantages("canon", R, [0] * 4, lengths=L, step=0, options={
        "lambda_schedule": "cosine_restart", "lambda_base": 0.4, "lambda_peak": 1.0, "lambda_warmup_from": 0.4})
    assert 1 - 2 * got[3] == pytest.approx(0.42, abs=1e-6)
    with pytest.raises(ValueError, match="needs step"):
        canon(R, L, lambda_schedule="cosine_restart")


def test_accuracy_schedule_and_bad_schedule():
    assert lam_seen(lambda_schedule="accuracy") == pytest.approx(0.75)  # mean reward of the batch
    assert canon_lambda("accuracy", 1.0, None, torch.tensor([2.0, 3.0]), 1, 0.4, 30, 150, 3) == 1.0  # clipped
    assert lam_seen(lam=0.2) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="lambda_schedule must be one of"):
        canon(R, L, lambda_schedule="cosine")
    with pytest.raises(ValueError, match="lambda_steps > lambda_warmup"):
        compute_advantages("canon", R, [0] * 4, lengths=L, step=1,
                           options={"lambda_schedule": "cosine_restart", "lambda_steps": 10})


# ----------------------------------------------------------------------------- properties
@st.composite
def groups_of_distinct_lengths(draw, even=False):
    sizes = draw(st.lists(st.integers(1, 4).map(lambda k: 2 * k) if even else st.integers(1, 8),
                          min_size=1, max_size=4))
    rewards, groups, lengths = [], [], []
    for g, size in enumerate(sizes):
        rewards += draw(st.lists(st.sampled_from([0.0, 1.0, -0.5, 0.25]) | st.floats(-5, 5),
                                 min_size=size, max_size=size))
        lengths += draw(st.lists(st.integers(0, 500), min_size=size, max_size=size, unique=True))
        groups += [g] * size
    return rewards, groups, lengths


SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(groups_of_distinct_lengths(even=True))
def test_half_lambda_is_dr_grpo_for_even_groups(batch):
    rewards, groups, lengths = batch
    a = compute_advantages("canon", rewards, groups, lengths=lengths, options={"lam": 0.5})
    b = compute_advantages("none", rewards, groups)
    assert torch.allclose(a, b, atol=1e-5)


@SETTINGS
@given(groups_of_distinct_lengths(), st.floats(0, 1), st.floats(-3, 3))
def test_shift_invariance_and_permutation(batch, lam, shift):
    rewards, groups, lengths = batch
    opts = {"lam": lam}
    a = compute_advantages("canon", rewards, groups, lengths=lengths, options=opts)
    shifted = compute_advantages("canon", [r + shift for r in rewards], groups, lengths=lengths, options=opts)
    assert torch.allclose(a, shifted, atol=1e-4)  # alpha = 1, beta = 0: only differences matter
    perm = list(range(len(rewards)))[::-1]
    p = compute_advantages("canon", [rewards[i] for i in perm], [groups[i] for i in perm],
                           lengths=[lengths[i] for i in perm], options=opts)
    assert torch.allclose(p, a[perm], atol=1e-6)


@SETTINGS
@given(groups_of_distinct_lengths())
def test_inter_comparison_moves_each_half_by_the_gap(batch):
    # lambda = 1: sum over the long half = n_long (mu_L - mu_S), over the short half the negative n_short times
    rewards, groups, lengths = batch
    a = compute_advantages("canon", rewards, groups, lengths=lengths).double()
    r = torch.tensor(rewards, dtype=torch.float64)
    for g in set(groups):
        idx = sorted((i for i, x in enumerate(groups) if x == g), key=lambda i: lengths[i])
        if len(idx) < 2:
            assert float(a[idx[0]]) == 0.0
            continue
        short, long_ = idx[: len(idx) // 2], idx[len(idx) // 2 :]
        gap = float(r[long_].mean() - r[short].mean())
        assert float(a[long_].sum()) == pytest.approx(len(long_) * gap, abs=1e-4)
        assert float(a[short].sum()) == pytest.approx(-len(short) * gap, abs=1e-4)
