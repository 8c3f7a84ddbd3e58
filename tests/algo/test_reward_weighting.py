"""Dynamic reward weighting (arXiv 2509.11452): why a step-wide meta-weight m needs an estimator
without a std, and the hypervolume meta-reward of rewards.dynamic_weighting, on hand-computed numbers.

Rewards r = [1, 0, 0.5 | 0.2, 0.8, 0.2], groups [0, 0, 0 | 1, 1, 1]:
  group means 0.5 and 0.4; centred c = [0.5, -0.5, 0, -0.2, 0.4, -0.2];
  group stds (unbiased) 0.5 and sqrt(0.12) = 0.346410;
  batch std of c (unbiased, mean 0) sqrt(0.74 / 5) = 0.384708; token-weighted (population,
  equal lengths) sqrt(0.74 / 6) = 0.351188.
"""

import math

import pytest
import torch

from rl.algo.advantages import compute_advantages
from rewards.dynamic_weighting import (
    ESTIMATORS_THAT_FEEL_M,
    HypervolumeMetaReward,
    check_estimator,
    hv_contribution,
    hypervolume,
    hypervolume_step,
    meta_weight,
)

R = [1.0, 0.0, 0.5, 0.2, 0.8, 0.2]
G = [0, 0, 0, 1, 1, 1]
LENGTHS = [10.0] * 6
C = [0.5, -0.5, 0.0, -0.2, 0.4, -0.2]
S1 = math.sqrt(0.12)
HAND = {
    "grpo": [1.0, -1.0, 0.0, -0.2 / S1, 0.4 / S1, -0.2 / S1],
    "batch_std": [c / math.sqrt(0.74 / 5) for c in C],
    "reinforce_pp_baseline": [c / math.sqrt(0.74 / 6) for c in C],
    "rloo": [1.5 * c for c in C],
    "none": C,
}


def adv(name, m, eps):
    extra = {"lengths": LENGTHS} if name == "reinforce_pp_baseline" else {}
    return compute_advantages(name, [m * r for r in R], G, eps, **extra).double()


@pytest.mark.parametrize("name", ["grpo", "batch_std", "reinforce_pp_baseline"])
@pytest.mark.parametrize("m", [0.5, 1.0, 1.7, 2.0])
def test_meta_weight_cancels_under_std_normalisation(name, m):
    expected = torch.tensor(HAND[name], dtype=torch.float64)
    assert torch.allclose(adv(name, m, 0.0), expected, atol=1e-6)           # exactly m-free at eps = 0
    assert torch.allclose(adv(name, m, 1e-6), expected, atol=1e-5)          # and up to eps at laconic's default


def test_grpo_keeps_m_only_through_eps():
    # (m r - m mean) / (m std + eps) = (r - mean) / (std + eps / m): group 0, sample 0, eps = 0.1
    assert adv("grpo", 1.0, 0.1)[0].item() == pytest.approx(0.5 / 0.6, abs=1e-6)
    assert adv("grpo", 2.0, 0.1)[0].item() == pytest.approx(0.5 / 0.55, abs=1e-6)


@pytest.mark.parametrize("name", ["rloo", "none"])
@pytest.mark.parametrize("m", [0.5, 1.7, 2.0])
def test_meta_weight_scales_unnormalised_estimators(name, m):
    expected = torch.tensor([m * a for a in HAND[name]], dtype=torch.float64)
    assert torch.allclose(adv(name, m, 1e-6), expected, atol=1e-6)
    assert not torch.allclose(adv(name, m, 1e-6), adv(name, 1.0, 1e-6))


def test_check_estimator_refuses_the_ones_that_cancel():
    assert ESTIMATORS_THAT_FEEL_M == ("rloo", "none")
    for name in ("rloo", "none"):
        check_estimator(name)
    for name in ("grpo", "batch_std", "reinforce_pp_baseline"):
        with pytest.raises(ValueError, match="cancels the step-wide weight m"):
            check_estimator(name)


REF = (0.5, 1000.0, 0.5)  # accuracy, length (tokens), format


def test_hypervolume_hand_boxes():
    assert hypervolume([], REF) == 0.0
    assert hypervolume([(0.6, 800, 0.7)], REF) == pytest.approx(0.1 * 200 * 0.2)
    assert hypervolume([(0.7, 900, 0.6)], REF) == pytest.approx(0.2 * 100 * 0.1)
    # union: 4 + 2 - overlap (0.1 * 100 * 0.1)
    assert hypervolume([(0.6, 800, 0.7), (0.7, 900, 0.6)], REF) == pytest.approx(5.0)
    # three points, inclusion-exclusion: boxes 4, 2, 0.3 * 50 * 0.05 = 0.75;
    # overlaps (1,2) 1, (1,3) 0.1*50*0.05 = 0.25, (2,3) 0.2*50*0.05 = 0.5, (1,2,3) 0.1*50*0.05 = 0.25
    pts = [(0.6, 800, 0.7), (0.7, 900, 0.6), (0.8, 950, 0.55)]
    assert hypervolume(pts, REF) == pytest.approx(4 + 2 + 0.75 - 1 - 0.25 - 0.5 + 0.25)
    # a dominated point and a duplicate add nothing
    assert hypervolume(pts + [(0.55, 900, 0.6), (0.6, 800, 0.7)], REF) == pytest.approx(5.25)


def test_hypervolume_ignores_points_not_above_the_reference():
    assert hypervolume([(0.6, 800, 0.4)], REF) == 0.0      # worse format
    assert hypervolume([(0.6, 1100, 0.7)], REF) == 0.0     # longer
    assert hypervolume([(0.5, 800, 0.7)], REF) == 0.0      # equal accuracy: no volume
    assert hypervolume([(0.6, 800, 0.4), (0.6, 800, 0.7)], REF) == pytest.approx(4.0)


def test_contribution_is_clamped_and_relative_to_the_buffer():
    assert hv_contribution([REF], (0.6, 800, 0.7)) == pytest.approx(4.0)
    assert hv_contribution([REF, (0.6, 800, 0.7)], (0.7, 900, 0.6)) == pytest.approx(1.0)
    assert hv_contribution([REF, (0.6, 800, 0.7)], (0.55, 900, 0.6)) == 0.0
    assert hv_contribution([REF], (0.4, 700, 0.9)) == 0.0
    with pytest.raises(ValueError, match="reference point"):
        hv_contribution([], (0.6, 800, 0.7))
    with pytest.raises(ValueError, match="expected 3"):
        hv_contribution([REF], (0.6, 800))


def test_meta_weight_formula():
    assert meta_weight(0.0) == 0.5
    assert meta_weight(1.0) == pytest.approx(0.5 + 1.5 * 0.7615941559557649)
    assert meta_weight(4.0) == pytest.approx(1.9989936)
    assert meta_weight(1e6) == pytest.approx(2.0)


def test_step_appends_only_on_gain_and_leaves_input_alone():
    buf = [REF]
    m, d, new = hypervolume_step(buf, (0.6, 800, 0.7))
    assert (d, len(new), buf) == (pytest.approx(4.0), 2, [REF])
    assert m == pytest.approx(0.5 + 1.5 * math.tanh(4.0))
    m, d, newer = hypervolume_step(new, (0.55, 900, 0.6))
    assert (m, d, newer) == (0.5, 0.0, new)


def test_meta_reward_sequence_and_state_round_trip():
    meta = HypervolumeMetaReward()
    assert meta.m == 1.0 and meta.update(REF) == 1.0 and meta.buffer == [REF]
    assert meta.update((0.6, 800, 0.7)) == pytest.approx(0.5 + 1.5 * math.tanh(4.0))
    assert meta.update((0.55, 900, 0.6)) == 0.5                           # dominated: not kept
    assert meta.update((0.7, 900, 0.6)) == pytest.approx(0.5 + 1.5 * math.tanh(1.0))
    assert meta.buffer == [REF, (0.6, 800, 0.7), (0.7, 900, 0.6)]
    again = HypervolumeMetaReward.from_state(meta.state())
    assert again.buffer == meta.buffer and again.m == meta.m
    assert again.update((0.8, 950, 0.55)) == pytest.approx(0.5 + 1.5 * math.tanh(0.25))  # 5.25 - 5
