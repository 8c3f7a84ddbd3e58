"""L1 / LCPO rewards and prompt helpers (rewards/l1.py)."""

from __future__ import annotations

import random

import pytest

from rewards import Context, L1Exact, L1Max, RewardError, budget_prompt, build_rewards, sample_budget
from rewards.base import Sample

CTX = Context(step=1)
approx = lambda xs: pytest.approx(xs, abs=1e-9)  # noqa: E731


def S(correct, length, budget=2000, key="budget"):
    return Sample("p", 0, correct=correct, length=length, meta={key: budget})


def test_exact():
    samples = [S(True, 1000), S(False, 3000), S(True, 2000), S(True, 4000)]
    # 1 - 3e-4*1000 = 0.7 ; 0 - 0.3 ; 1 - 0 ; 1 - 3e-4*2000 = 0.4
    assert L1Exact()(samples, CTX) == approx([0.7, -0.3, 1.0, 0.4])
    assert L1Exact(alpha=1e-3)([S(True, 1900)], CTX) == approx([0.9])   # 1 - 1e-3*100


def test_max():
    samples = [S(True, 1000), S(True, 500), S(True, 0), S(True, 2000), S(True, 4000), S(False, 100)]
    # clip(3e-4*(N-L) + 0.5, 0, 1): 0.3+0.5 ; 0.45+0.5 ; 0.6+0.5 -> 1 ; 0.5 ; -0.6+0.5 -> 0 ; wrong -> 0
    assert L1Max()(samples, CTX) == approx([0.8, 0.95, 1.0, 0.5, 0.0, 0.0])


def test_missing_budget_names_the_key():
    bare = Sample("p", 0, correct=True, length=10, meta={"level": 3})
    with pytest.raises(ValueError, match=r"l1_exact.*meta\['budget'\].*\['level'\]"):
        L1Exact()([bare], CTX)
    with pytest.raises(RewardError, match="l1_max"):
        build_rewards([{"name": "l1_max"}]).score([bare], CTX)
    with pytest.raises(ValueError, match="must be a number"):
        L1Max()([S(True, 10, budget="lots")], CTX)
    # another key
    assert L1Exact(budget_key="N")([S(True, 100, 100, key="N")], CTX) == [1.0]


def test_sample_budget():
    rng = random.Random(0)
    draws = [sample_budget(rng) for _ in range(200)]
    assert all(100 <= d <= 4000 for d in draws) and len(set(draws)) > 100
    assert sample_budget(random.Random(1), 5, 5) == 5
    np = pytest.importorskip("numpy")
    assert 100 <= sample_budget(np.random.default_rng(0)) <= 4000
    assert sample_budget(np.random.default_rng(0), 7, 7) == 7   # numpy's high is exclusive: handled
    with pytest.raises(ValueError):
        sample_budget(rng, 10, 5)


def test_budget_prompt():
    assert budget_prompt("Solve 2+2.", 1200) == "Solve 2+2.\n\nThink for 1200 tokens."
    assert budget_prompt("Solve 2+2.\n", 300, "max") == "Solve 2+2.\n\nThink for maximum 300 tokens."
    assert budget_prompt("Q", 5, separator=" ") == "Q Think for 5 tokens."
    with pytest.raises(ValueError, match="mode"):
        budget_prompt("Q", 5, "min")
    with pytest.raises(ValueError, match="budget"):
        budget_prompt("Q", 0)
