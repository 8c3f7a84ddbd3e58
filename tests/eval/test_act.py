"""ThinkDial's ACT (rl/eval/metrics.py act) against hand-computed numbers."""

import pytest

from rl.eval.metrics import ACT_BETAS, act


def test_act_hand_computed():
    # peak (phase 1): 80 % at 10000 tokens
    # high:   beta 1:   0.82/0.8                               = 1.025
    # medium: beta 0.5: 0.5 * 0.76/0.8 + 0.5 * (1 - 5000/10000) = 0.475 + 0.25   = 0.725
    # low:    beta 0.5: 0.5 * 0.72/0.8 + 0.5 * (1 - 2500/10000) = 0.45  + 0.375  = 0.825
    r = act({"high": (0.82, 9000), "medium": (0.76, 5000), "low": (0.72, 2500)}, peak=(0.8, 10000))
    assert r == pytest.approx({"high": 1.025, "medium": 0.725, "low": 0.825, "average": 2.575 / 3})
    assert ACT_BETAS == {"high": 1.0, "medium": 0.5, "low": 0.5}


def test_act_at_the_peak_and_with_other_betas():
    # the peak itself in high mode: A = 1; in low mode at the peak's cost: 0.5 * 1 + 0.5 * 0 = 0.5
    assert act({"high": (0.5, 100), "low": (0.5, 100)}, peak=(0.5, 100)) == pytest.approx(
        {"high": 1.0, "low": 0.5, "average": 0.75})
    assert act({"low": (0.4, 25)}, peak=(0.5, 100), betas={"low": 0.0}) == pytest.approx({"low": 0.75, "average": 0.75})


def test_act_errors():
    with pytest.raises(ValueError, match="peak with accuracy > 0"):
        act({"high": (0.5, 10)}, peak=(0.0, 10))
    with pytest.raises(ValueError, match=r"no beta for mode\(s\) \['fast'\]"):
        act({"fast": (0.5, 10)}, peak=(0.5, 10))
