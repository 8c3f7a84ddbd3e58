"""TRAAC's reward (rewards/traac.py): correctness, format and the difficulty-scaled length term against
hand-computed numbers, the history window (the release's order and laconic's), and its state."""

import math

import pytest

from rewards import build_rewards
from rewards.base import Context, Sample
from rewards.traac import TRAAC

TAGS = "<think>x</think>A"


def group(lengths, correct, gid=0, text=TAGS, source=""):
    return [Sample("p", gid, correct=c, length=n, completion=text, meta={"source": source}) for n, c in zip(lengths, correct)]


def test_format_terms():
    r = TRAAC()
    texts = ["<think>a</think>b", "a</think>b", "<think>a</think>b</think>", "</think><think>"]
    out = r([Sample("p", i, correct=False, completion=t) for i, t in enumerate(texts)], Context())
    assert out == [0.5, 0.0, 0.25, 0.25]  # both terms; no open tag; two closes (ordered); one each but reversed
    prompt_opened = TRAAC(open_tag=None)
    assert prompt_opened([Sample("p", 0, correct=False, completion="a</think>b")], Context()) == [0.5]


def test_length_term_with_the_current_batch_and_without():
    # hard groups (1 of 4 correct: p = 0.25, s = 0.5); the bucket "|hard" holds 100 and 300 from an earlier step
    r = TRAAC()
    r.update(group([100, 50, 50, 50], [True, False, False, False]) + group([300, 9, 9, 9], [True, False, False, False], gid=1),
             Context())
    scored = group([200, 80, 80, 80], [True, False, False, False])
    # with the current batch: lengths 100, 300, 200: m 100, M 300, mu 200; L = 200: L_norm 0.5, soft 0.5
    assert r(scored, Context())[0] == pytest.approx(4 + 0.5 + 0.5 * 0.5)
    # the earlier steps only: 100, 300: mu = 200 as well, the same numbers here; L = 100 gives L_norm 1
    before = TRAAC(history_includes_current=False)
    before.load_state_dict(r.state_dict())
    assert before(group([100, 80, 80, 80], [True, False, False, False]), Context())[0] == pytest.approx(4.5 + 0.5)
    # an empty bucket: no length term (medium group: 2 of 4)
    assert TRAAC(history_includes_current=False)(group([50, 60, 5, 5], [True, True, False, False]), Context())[:2] == [4.5, 4.5]


def test_history_keeps_the_last_steps_per_bucket():
    r = TRAAC(history=2)
    for n in (10, 20, 30):  # easy groups, all correct
        r.update(group([n] * 4, [True] * 4), Context())
    assert r.state_dict()["steps"]["|easy"] == [[20] * 4, [30] * 4]
    # the window with the current batch: step 3's 30s and the new 40s: m 30, M 40, mu 35; L = 40 -> soft only
    soft = 1 / (1 + math.exp((40 - 35) / 3.5))
    assert r(group([40] * 4, [True] * 4), Context())[0] == pytest.approx(4.5 + 1.0 * max(0.0, soft))


def test_buckets_split_by_source():
    r = TRAAC(history_includes_current=False)
    r.update(group([100] * 4, [True] * 4, source="a"), Context())
    assert r(group([100] * 4, [True] * 4, source="b"), Context())[0] == 4.5  # bucket "b|easy" is empty
    assert r(group([100] * 4, [True] * 4, source="a"), Context())[0] == pytest.approx(4.5 + 1.0 * 0.5)  # soft = 0.5
    assert build_rewards([{"name": "traac", "open_tag": None}]).names == ["traac"]
