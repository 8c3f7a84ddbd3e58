"""LASER-D / LASER-DE (rewards/laser_d.py): buckets, targets, history, exploration bonus."""

from __future__ import annotations

import json

import pytest

from rewards import Context, LaserD, LaserDE, bucket_targets, build_reward
from rewards.base import Sample
from rewards.laser_d import candidate_lengths, difficulty_bucket, monitor_lengths

CTX = Context(step=1, max_length=100)


def S(correct, length, group=0, pid="p", completion=None, ids=None):
    if completion is None:
        completion = "A:1" if correct else "A:2"
    return Sample(pid, group, completion=completion, correct=correct, length=length, completion_ids=ids)


# ------------------------------------------------------------------------------ pure helpers


@pytest.mark.parametrize("k,n,bucket", [
    (6, 8, "easy"),     # 0.75 >= 2/3
    (5, 8, "medium"),   # 0.625
    (3, 8, "medium"),   # 0.375 >= 1/3
    (2, 8, "hard"),     # 0.25 < 1/3
    (2, 3, "easy"),     # exactly 2/3 (no float trouble)
    (1, 3, "medium"),   # exactly 1/3
    (0, 3, "hard"),
    (1, 1, "easy"),
    (0, 1, "hard"),
])
def test_difficulty_bucket(k, n, bucket):
    assert difficulty_bucket(k, n) == bucket


def test_candidate_lengths():
    assert candidate_lengths(4096, 16384, 1024)[:3] == [4096, 5120, 6144]
    assert candidate_lengths(4096, 16384, 1024)[-1] == 16384 and len(candidate_lengths(4096, 16384, 1024)) == 13
    # lower bound below the grid: the lower bound, then multiples of step (as the released code)
    assert candidate_lengths(500, 2500, 1024) == [500, 1024, 2048, 2500]
    assert candidate_lengths(10, 10, 5) == [10]


def test_bucket_targets_hand_computed():
    monitor = {"easy": [100, 300, 500, 700, 900], "medium": [100, 300, 500, 700, 900], "hard": [100, 1200]}
    # candidates 200, 400, 600, 800, 1000
    # easy   (0.2): need 0.2*5 = 1 response <= L: L=200 covers {100} -> 200
    # medium (0.5): need 2.5: 200 -> 1, 400 -> 2, 600 -> 3 -> 600
    # hard   (1.0): need 2: even 1000 covers only {100} -> fallback = longest response seen = 1200
    assert bucket_targets(monitor, lower_bound=200, upper=1000, step=200) == {"easy": 200, "medium": 600, "hard": 1200}
    assert bucket_targets(monitor, lower_bound=200, upper=1000, step=200, fallback=999)["hard"] == 999
    # custom coverage: easy 0.6 -> need 3: 600 covers {100,300,500}
    cov = {"easy": 0.6, "medium": 0.5, "hard": 1.0}
    assert bucket_targets({"easy": monitor["easy"]}, cov, 200, 1000, 200) == {"easy": 600}


def test_bucket_targets_published_defaults():
    # candidates 4096, 5120, ..., 16384
    monitor = {"easy": [3000] * 5, "medium": [5000, 9000], "hard": [16384, 10]}
    # easy: 4096 covers all -> 4096; medium (0.5): need 1: 4096 covers 0, 5120 covers {5000} -> 5120;
    # hard (1.0): 16384 covers both -> 16384
    assert bucket_targets(monitor) == {"easy": 4096, "medium": 5120, "hard": 16384}


def test_no_bucket_reaches_its_coverage():
    monitor = {"easy": [20000], "medium": [18000, 30000], "hard": [17000]}
    # every response is longer than upper = 16384 -> every bucket falls back to the longest: 30000
    assert bucket_targets(monitor) == {"easy": 30000, "medium": 30000, "hard": 30000}


def test_empty_buckets_are_left_out_and_unknown_buckets_rejected():
    assert bucket_targets({"easy": [], "hard": [5000]}) == {"hard": 5120}   # 1.0 of {5000}: 5120
    assert bucket_targets({}) == {}
    with pytest.raises(ValueError, match="trivial"):
        bucket_targets({"trivial": [1]})


def test_monitor_lengths_from_samples():
    samples = [S(True, 10, 0), S(True, 20, 0), S(True, 30, 0),      # 3/3 easy
               S(True, 40, 1, "q"), S(False, 50, 1, "q"),           # 1/2 medium
               S(False, 60, 2, "r")]                                # 0/1 hard
    assert monitor_lengths(samples) == {"easy": [10, 20, 30], "medium": [40, 50], "hard": [60]}


# ------------------------------------------------------------------------------ the reward


def batch1():
    a = [S(True, 20, 0, "a"), S(True, 40, 0, "a"), S(True, 60, 0, "a")]       # easy (3/3)
    b = [S(False, 30, 1, "b"), S(False, 70, 1, "b"), S(False, 90, 1, "b")]    # hard (0/3)
    return a + b


def test_scored_with_targets_from_before_the_batch_and_refresh_cadence():
    r = LaserD(lower_bound=10, upper=100, step=10, monitor_every=2, initial_target=50)
    # before any monitor every bucket's target is initial_target = 50:
    # a: 20, 40 <= 50 -> 1 + 0.5; 60 > 50 -> 1;  b: wrong -> -0.5
    assert r(batch1(), CTX) == [1.5, 1.5, 1.0, -0.5, -0.5, -0.5]
    r.update(batch1(), CTX)   # update #0: the batch is the monitor
    # candidates 10..100; easy {20,40,60} (0.2 -> need 0.6): 20; hard {30,70,90} (1.0): 90; medium unseen
    assert r.targets == {"easy": 20, "hard": 90}
    assert r(batch1(), CTX) == [1.5, 1.0, 1.0, -0.5, -0.5, -0.5]
    assert r.target("medium", CTX) == 50
    other = [S(True, 100, 0, "a"), S(True, 100, 0, "a"), S(True, 100, 0, "a")]
    r.update(other, CTX)      # update #1: 1 % 2 != 0 -> targets unchanged
    assert r.targets == {"easy": 20, "hard": 90}
    r.update(other, CTX)      # update #2: refresh: easy {100,100,100} -> 100
    assert r.targets == {"easy": 100, "hard": 90}


def test_default_target_before_refresh_is_the_context_limit():
    r = LaserD(lower_bound=10, upper=1000, step=10)
    # no initial_target: ctx.max_length = 100 -> 60 <= 100 -> +0.5
    assert r([S(True, 60)], CTX) == [1.5]
    # no ctx limit either: upper = 1000
    assert r([S(True, 600)], Context()) == [1.5]


def test_state_round_trip():
    r = LaserD(lower_bound=10, upper=100, step=10, monitor_every=2, initial_target=50)
    r.update(batch1(), CTX)
    state = json.loads(json.dumps(r.state_dict()))
    assert state == {"targets": {"easy": 20, "hard": 90}, "updates": 1, "external": 0}
    fresh = LaserD(lower_bound=10, upper=100, step=10, monitor_every=2, initial_target=50)
    fresh.load_state_dict(state)
    assert fresh(batch1(), CTX) == r(batch1(), CTX) == [1.5, 1.0, 1.0, -0.5, -0.5, -0.5]
    with pytest.raises(ValueError, match="bucket"):
        fresh.load_state_dict({"targets": {"trivial": 3}})


def test_set_monitor_refreshes_now_and_stops_batch_monitoring():
    r = LaserD(lower_bound=10, upper=100, step=10, monitor_every=1)
    # easy {15,25,35,45,55}: need 1 -> 20 covers {15}; medium {15,25,35,45,55} need 2.5 -> 40 covers 3
    assert r.set_monitor({"easy": [15, 25, 35, 45, 55], "medium": [15, 25, 35, 45, 55]}) == {"easy": 20, "medium": 40}
    r.update(batch1(), CTX)   # an external monitor was given: the batch is not used any more
    assert r.targets == {"easy": 20, "medium": 40} and r.state_dict()["external"] == 1
    with pytest.raises(ValueError, match="unknown monitor bucket"):
        r.set_monitor({"trivial": [1]})


def test_laser_de_exploration_bonus():
    r = LaserDE(lower_bound=10, upper=100, step=10, initial_target=50)
    plain = " ".join(f"w{i}" for i in range(40)) + " A:2"          # 41 distinct words: no repetition
    loop = "loop " * 40 + "A:2"                                     # 20-grams: 22, unique 2 -> 0.91 > 0.1
    samples = [S(False, 80, completion=plain),                       # wrong, 80 > 50, no repetition -> -0.5 + 0.5
               S(False, 80, completion=loop),                        # repetitive -> -0.5
               S(False, 40, completion=plain),                       # 40 <= 50 -> -0.5
               S(False, 80, completion="no answer"),                 # no answer -> -1 (no bonus)
               S(False, 80, completion=plain, ids=[1, 2] * 40),      # token ids win: repetitive -> -0.5
               S(True, 40, completion="A:1")]                        # correct, 40 <= 50 -> 1.5
    # the group (1/6 correct) is hard; all use the initial target 50
    assert r(samples, CTX) == [0.0, -0.5, -0.5, -1.0, -0.5, 1.5]
    assert LaserD(lower_bound=10, upper=100, step=10, initial_target=50)(samples, CTX) == \
        [-0.5, -0.5, -0.5, -1.0, -0.5, 1.5]


def test_registry_kwargs():
    name, r, _ = build_reward({"name": "laser_de", "lower_bound": 1024, "repetition_ngram": 5})
    assert isinstance(r, LaserDE) and r.lower_bound == 1024 and r.repetition_ngram == 5
    _, r, _ = build_reward({"name": "laser_d", "coverage": {"easy": 0.3, "medium": 0.5, "hard": 0.9}})
    assert r.coverage["easy"] == 0.3
    with pytest.raises(Exception, match="repetition_ngram"):
        build_reward({"name": "laser_d", "repetition_ngram": 5})   # LASER-D has no repetition detector
