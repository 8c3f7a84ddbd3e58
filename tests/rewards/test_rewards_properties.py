"""Property tests over random groups for every registered reward.

For each reward spec (defaults, plus a few variants): one finite real per sample, scoring leaves the
reward's state untouched (history changes only in ``update``), the state is JSON-serializable and a
fresh copy loaded with it scores identically. Edge tables: G = 1, all correct, none correct, all the
same length, zero length, length == max length.
"""

from __future__ import annotations

import copy
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rewards
from rewards import Context, build_rewards
from rewards.base import Sample
from rewards.registry import REWARDS

MAX_LEN = 64
CTX = Context(step=3, max_length=MAX_LEN, group_size=4)


def trl_fn(prompts, completions, completion_ids=None, **kwargs):
    """A TRL-signature function for the registry's 'trl' form."""
    return [float(len(c)) - 0.5 * len(kwargs.get("answer", [])) for c in completions]


SMALL_GRID = {"lower_bound": 8, "upper": MAX_LEN, "step": 8, "monitor_every": 1}
SPECS = {
    "adactrl": {},
    "adaptthink": {},
    "arlcp": {},
    "ceeh": {},
    "ceeh_former": {"name": "ceeh", "length_term": "clipped", "strict": True, "acc_reset": False, "hard_rule": "history"},
    "ceeh_sized": {"name": "ceeh", "num_prompts": 8},
    "clarity": {},
    "clarity_any": {"name": "clarity", "answer": "any"},
    "conciseness": {},
    "concise_r": {},
    "correctness": {},
    "cosine": {},
    "da_dler": {},
    "da_dler_small": {"name": "da_dler", "short_limit": 16, "long_limit": 48},
    "dapo_overlong": {},
    "decs": {},
    "dapo_overlong_small": {"name": "dapo_overlong", "buffer": 16},
    "dler": {},
    "e1": {"effort": 0.8},
    "format": {},
    "format_length": {},
    "format_length_limit": {"name": "format_length", "reference_length": None, "open_tag": None},
    "gate": {"reward": {"name": "kimi_length"}, "otherwise": {"name": "hapo"}, "condition": "mixed"},
    "grpo_lambda": {},
    "hapo": {},
    "hapo_linear": {"name": "hapo", "variant": "linear"},
    "hypervolume_weight": {},
    "hypervolume_weight_2d": {"name": "hypervolume_weight", "clarity": False},
    "kimi_length": {},
    "leak": {},
    "leak_any_case": {"name": "leak", "case_sensitive": False, "keywords": ["A", "answer"]},
    "l1_exact": {},
    "l1_max": {},
    "laser": {},
    "laser_hybrid": {"name": "laser", "mode": "hybrid", "target_length": 32, "require_think": True},
    "laser_d": {},
    "laser_d_small": {"name": "laser_d", **SMALL_GRID},
    "laser_de": {},
    "laser_de_small": {"name": "laser_de", **SMALL_GRID, "repetition_ngram": 3},
    "palu": {},
    "palu_small": {"name": "palu", "floor": 4, "lengths": "all", "comparison": ">=", "hard_cap": False},
    "pear": {},
    "remaining_budget": {},
    "redundancy": {"encoder": "builtin:tiny-bert"},
    "redundancy_toy": {"name": "redundancy", "delimiter": None, "per_token": True, "combine": "product",
                       "encoder": "builtin:tiny-bert"},
    "thinkdial_length": {"mode": "low"},
    "repetition_penalty": {},
    "repetition_penalty_short": {"name": "repetition_penalty", "ngram_size": 2, "per_token": False, "penalty": -1.0},
    "traac": {},
    "traac_prompt_opened": {"name": "traac", "open_tag": None, "history_includes_current": False, "history": 2},
    "trl": {"function": "tests.rewards.test_rewards_properties:trl_fn"},
    "truncation_penalty": {},
}


def spec_of(key):
    spec = dict(SPECS[key])
    spec.setdefault("name", key)
    return spec


def test_every_registered_reward_is_covered():
    rewards.available_rewards()
    ours = {n for n, f in REWARDS.items() if getattr(f, "__module__", "").startswith("rewards.")}
    assert ours <= {spec_of(k)["name"] for k in SPECS}, ours - {spec_of(k)["name"] for k in SPECS}


TEXTS = ["", "A:1", "A:2", "<think>x</think>A:1", "<think>no answer", "[Easy] A:1", "[Hard] A:2",
         "loop " * 30 + "A:3", "The answer is 7.", "</think>\\boxed{1}"]


def make_sample(pid, group, correct, length, text="A:1", truncated=False, think=None, ids=None, ent=(0.5, 0.2, 0.4),
                budget=100):
    return Sample(pid, group, prompt="Q", completion=text, answer="1", length=length, truncated=truncated,
                  correct=correct, think_length=think, answer_length=None if think is None else length - think,
                  entropy_think=ent[0], entropy_answer=ent[1], entropy_mean=ent[2], meta={"budget": budget, "ref_accuracy": budget % 5 / 4},
                  completion_ids=ids)


@st.composite
def tables(draw):
    samples = []
    for g in range(draw(st.integers(1, 4))):
        pid = draw(st.sampled_from(["p0", "p1", "p2", "p3"]))
        for _ in range(draw(st.integers(1, 6))):
            length = draw(st.one_of(st.just(0), st.just(MAX_LEN), st.integers(0, MAX_LEN)))
            ids = draw(st.sampled_from([None, "distinct", "cycle"]))
            ids = None if ids is None else [i if ids == "distinct" else i % 3 for i in range(length)]
            ent = tuple(draw(st.floats(0, 12, allow_nan=False)) for _ in range(3))
            samples.append(make_sample(
                pid, g, draw(st.booleans()), length, draw(st.sampled_from(TEXTS)),
                truncated=draw(st.booleans()) or length == MAX_LEN and draw(st.booleans()),
                think=draw(st.one_of(st.none(), st.integers(0, length))), ids=ids, ent=ent,
                budget=draw(st.integers(1, 5000))))
    return samples


def check(key, batches):
    """Score/update over successive batches; every property on every batch."""
    composed = build_rewards([spec_of(key)])
    for samples in batches:
        before = json.dumps(composed.state_dict(), sort_keys=True)
        mirror = build_rewards([spec_of(key)])
        mirror.load_state_dict(json.loads(before))
        totals, components = composed.score(samples, CTX)        # validates: one finite real per sample
        assert len(totals) == len(samples)
        assert all(isinstance(x, float) and math.isfinite(x) for x in totals)
        assert json.dumps(composed.state_dict(), sort_keys=True) == before, "scoring changed the state"
        assert mirror.score(samples, CTX)[0] == totals, "a copy loaded from the state scores differently"
        composed.update(copy.deepcopy(samples), CTX)
        json.dumps(composed.state_dict())                        # JSON-serializable after update


def edge_tables():
    s = make_sample
    return {
        "G=1 correct": [s("p", 0, True, 10)],
        "G=1 wrong": [s("p", 0, False, 10, "A:2")],
        "all correct": [s("p", 0, True, n) for n in (5, 20, 40, 64)],
        "none correct": [s("p", 0, False, n, "A:2") for n in (5, 20, 40, 64)],
        "same length": [s("p", 0, c, 32) for c in (True, False, True, False)],
        "zero length": [s("p", 0, c, 0, "", think=0, ids=[], ent=(0.0, 0.0, 0.0)) for c in (True, False, True)],
        "max length": [s("p", 0, c, MAX_LEN, truncated=t) for c, t in ((True, True), (True, False), (False, True))],
        "two groups": [s("p", 0, True, 3), s("p", 0, False, 60), s("q", 1, True, 64, truncated=True), s("q", 1, True, 0)],
    }


@pytest.mark.parametrize("key", sorted(SPECS))
def test_edge_tables(key):
    tables_ = edge_tables()
    check(key, list(tables_.values()) + list(tables_.values()))   # twice: also with a history


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=st.lists(tables(), min_size=1, max_size=3))
def test_random_groups(batches):
    for key in sorted(SPECS):   # one draw serves every reward (drawing dominates the cost)
        try:
            check(key, batches)
        except Exception as e:
            raise AssertionError(f"reward spec {key!r}: {type(e).__name__}: {e}") from e
