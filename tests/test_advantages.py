"""Advantage estimators against hand-computed values."""

import math

import pytest
import torch

from rl.advantages import compute_advantages

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
