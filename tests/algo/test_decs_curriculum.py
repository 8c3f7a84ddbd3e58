"""DECS's curriculum data scheduling (rl/algo/curriculum.py, arXiv 2509.25827): how many all-correct
groups go back into a dynamic-sampling batch, how kappa follows the redundant ratio, and that the
state is checkpointed."""

from __future__ import annotations

import json
import math
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rewards.base import Sample
from rl.algo.curriculum import KAPPA, LAST, Curriculum, compose, groups_to_add, next_kappa, redundant_ratio
from rl.config import ConfigError, load_config
from rl.train.sampling import collect

from tests.conftest import ROOT
from tests.train.test_sampling import make_run, params

CUR = ["algo.dynamic_sampling=correctness"]


def sample(k: int | None, length: int = 4, correct: bool = True) -> Sample:
    """A completion of one-character tokens stating the answer "5" at token ``k`` (never: None)."""
    chars = ["-"] * length
    if k is not None:
        chars[k] = "5"
    return Sample("p", 0, completion="".join(chars), answer="5", correct=correct, length=length,
                  token_ends=list(range(1, length + 1)))


# ----------------------------------------------------------------------------- by hand
def test_groups_to_add_by_hand():
    assert groups_to_add(0.2, kept=8, available=5) == 2  # 0.2 / 0.8 * 8 = 2
    assert groups_to_add(0.2, kept=8, available=1) == 1  # only one all-correct group to add
    assert groups_to_add(0.2, kept=7, available=5) == 1  # floor(1.75)
    assert groups_to_add(0.5, kept=3, available=9) == 3
    assert groups_to_add(0.0, kept=8, available=5) == 0
    assert groups_to_add(-0.05, kept=8, available=5) == 0  # the released code's kappa <= 0: none
    assert groups_to_add(0.3, kept=0, available=5) == 0  # no informative group: none added


def test_compose_by_hand():
    assert compose(0.2, kept=8, available=5, target=10) == (8, 2)  # everything fits
    assert compose(0.2, kept=8, available=5, target=8) == (7, 1)  # 8 + 2 > 8: one informative less
    assert compose(0.5, kept=2, available=9, target=3) == (1, 2)  # 1 + 1 fits, the rest all-correct
    assert compose(0.2, kept=12, available=5, target=8) == (7, 1)  # an oversampled round: K capped
    assert compose(0.0, kept=12, available=5, target=8) == (8, 0)  # no curriculum share
    assert compose(0.3, kept=0, available=5, target=8) == (0, 0)  # no kept groups: nothing added
    assert compose(0.3, kept=8, available=0, target=8) == (8, 0)  # none available: dynamic sampling as before
    assert compose(0.2, kept=4, available=5, target=8) == (4, 1)  # short batch: the rule, not a fill-up


def test_redundant_ratio_by_hand():
    # shares after the answer token: k=1 of 4 -> 2/4, k=3 of 4 -> 0; a wrong completion, a correct one
    # that never states the answer and an empty one do not count
    table = [sample(1), sample(3), sample(0, correct=False), sample(None), sample(None, length=0)]
    assert redundant_ratio(table, None) == pytest.approx(0.25)
    assert redundant_ratio([sample(0, length=8)], None) == pytest.approx(7 / 8)
    assert redundant_ratio([sample(None), sample(1, correct=False)], None) is None  # undefined


def test_kappa_over_steps_by_hand():
    """kappa 0, eta 0.2, rho_0 0.5; rho: 0.5, 0.25, 0.75, undefined, 0.0."""
    state: dict = {}
    cur = Curriculum({}, state, seed=0)
    assert (state[KAPPA], state[LAST]) == (0.0, 0.5)
    seen = []
    for table in ([sample(1)], [sample(2)], [sample(0)], [sample(1, correct=False)], [sample(3)]):
        stats = cur.update(table, None, added=0)
        seen.append((stats["curriculum/kappa"], stats["curriculum/redundant_ratio"]))
    kappas = [k for k, _ in seen] + [state[KAPPA]]
    # 0 -> 0 - 0.2(0.5 - 0.5) = 0 -> 0 - 0.2(0.25 - 0.5) = 0.05 -> 0.05 - 0.2(0.75 - 0.25) = -0.05
    # -> (rho undefined: unchanged) -> -0.05 - 0.2(0 - 0.75) = 0.1
    assert kappas == pytest.approx([0.0, 0.0, 0.05, -0.05, -0.05, 0.1])
    assert math.isnan(seen[3][1]) and state[LAST] == 0.0
    assert next_kappa(0.0, 0.25, 0.5, eta=0.2) == pytest.approx(0.05)  # kappa grows as rho drops


def test_clamps():
    assert next_kappa(0.85, 0.0, 0.5, eta=0.2, high=0.9) == 0.9
    assert next_kappa(0.01, 1.0, 0.5, eta=0.2, low=0.0) == 0.0
    assert next_kappa(0.01, 1.0, 0.5, eta=0.2) == pytest.approx(-0.09)  # low: null (the released code's)
    state: dict = {}
    cur = Curriculum({"kappa": 0.1, "eta": 1.0, "low": 0.05, "high": 0.3}, state, seed=0)
    cur.update([sample(3)], None, 0)  # rho 0: kappa 0.1 + 0.5 -> 0.3
    assert state[KAPPA] == 0.3
    cur.update([sample(0)], None, 0)  # rho 0.75: kappa 0.3 - 0.75 -> 0.05
    assert state[KAPPA] == 0.05


def test_bad_config_is_one_line():
    with pytest.raises(ConfigError, match="unknown option 'kapa'; did you mean 'kappa'"):
        load_config(None, CUR + ["algo.curriculum={kapa: 0.1}"])
    with pytest.raises(ConfigError, match="algo.dynamic_sampling=correctness"):
        load_config(None, ["algo.dynamic_sampling=reward", "algo.curriculum={}"])
    with pytest.raises(ConfigError, match="high must be < 1"):
        load_config(None, CUR + ["algo.curriculum={high: 1}"])
    with pytest.raises(ConfigError, match=r"kappa \(0.5\) must lie in \[low, high\]"):
        load_config(None, CUR + ["algo.curriculum={kappa: 0.5, high: 0.4}"])
    with pytest.raises(ConfigError, match="eta must be >= 0"):
        load_config(None, CUR + ["algo.curriculum={eta: -1}"])
    with pytest.raises(ConfigError, match="start_ratio must be a number"):
        load_config(None, CUR + ["algo.curriculum={start_ratio: x}"])
    assert load_config(None, CUR + ["algo.curriculum={}"]).algo.curriculum == {}


# ----------------------------------------------------------------------------- properties
@settings(max_examples=300, deadline=None)
@given(st.floats(-0.5, 0.95), st.integers(0, 80), st.integers(0, 80), st.integers(1, 64))
def test_compose_properties(kappa, kept, available, target):
    k, a = compose(kappa, kept, available, target)
    assert 0 <= k <= min(kept, target) and 0 <= a <= available and k + a <= target
    if kappa <= 0:
        assert a == 0 and k == min(kept, target)
    if k == kept:
        assert a == groups_to_add(kappa, kept, available)  # all kept: the rule itself
    else:
        assert a >= groups_to_add(kappa, k, available)  # capped: at least the rule's share
    if kept + groups_to_add(kappa, kept, available) >= target:  # the rounds stopped: a full batch
        assert k + a == target
    if kappa > 0 and k + a > 0:
        assert a <= groups_to_add(kappa, k + 1, available)  # no more than the next K would add


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(0, 7)), min_size=1, max_size=12), st.floats(0, 1))
def test_kappa_telescopes_without_clamps(answer_at, eta):
    """With no clamp binding, kappa_t = kappa_0 - eta * (rho_t - rho_0): only the latest defined
    ratio matters (steps with no located answer change nothing)."""
    state: dict = {}
    cur = Curriculum({"eta": eta, "high": 0.99, "low": -2.0}, state, seed=0)
    for k in answer_at:
        cur.update([sample(k, length=8)], None, 0)
    last = next((k for k in reversed(answer_at) if k is not None), None)
    rho = 0.5 if last is None else (8 - last - 1) / 8
    assert state[LAST] == pytest.approx(rho)
    assert state[KAPPA] == pytest.approx(min(-eta * (rho - 0.5), 0.99))


# ----------------------------------------------------------------------------- in collect
def cur_run(toy_tokenizer, patterns, spec="{kappa: 0.2}", per_step=5, n_prompts=10):
    run = make_run(toy_tokenizer, patterns, n_prompts=n_prompts, per_step=per_step)
    run.cfg = load_config(None, [f"rollout.prompts_per_step={per_step}", "rollout.group_size=4",
                                 "algo.dynamic_sampling=correctness", f"algo.curriculum={spec}",
                                 "data.delimiter=null", "rewards=[{name: correctness}]"])
    return run


def test_collect_adds_back_all_correct_groups(toy_tokenizer):
    # prompts 0-4 mixed, 5-9 all correct; every correct completion is "A:<i></s>": the answer token
    # is followed by EOS only, rho = 1/4. kappa 0.2, 5 groups a batch: compose gives 4 + 1
    patterns = {i: ({0, 2} if i < 5 else {0, 1, 2, 3}) for i in range(10)}
    run = cur_run(toy_tokenizer, patterns)
    batch = collect(run, 1, params())
    by_group: dict[int, list] = {}
    for s in batch.table:
        by_group.setdefault(s.group, []).append(s.correct)
    assert sorted(sum(v) for v in by_group.values()) == [2, 2, 2, 2, 4]  # 4 mixed, 1 all-correct
    assert all(s.token_ends is not None for s in batch.table)  # attached for the ratio
    st_ = batch.stats
    assert st_["curriculum/added_groups"] == 1 and st_["curriculum/kappa"] == 0.2
    assert st_["curriculum/redundant_ratio"] == pytest.approx(0.25) and st_["sampling/kept_groups"] == 5
    assert run.ctx.state[KAPPA] == pytest.approx(0.2 - 0.2 * (0.25 - 0.5))  # 0.25
    # the same draw again: every process (and a resumed run) adds the same groups
    again = cur_run(toy_tokenizer, patterns)
    assert [s.prompt_id for s in collect(again, 1, params()).table] == [s.prompt_id for s in batch.table]


def test_collect_all_wrong_groups_are_never_added(toy_tokenizer):
    patterns = {i: ({0, 2} if i < 5 else set()) for i in range(10)}  # 5-9 all wrong
    run = cur_run(toy_tokenizer, patterns)
    batch = collect(run, 1, params())
    assert batch.stats["curriculum/added_groups"] == 0 and batch.stats["sampling/kept_groups"] == 5
    assert all(0 < sum(s.correct for s in batch.table if s.group == g) < 4 for g in range(5))


def test_collect_without_correct_completions_leaves_kappa(toy_tokenizer):
    run = cur_run(toy_tokenizer, {i: set() for i in range(10)})
    run.cfg.algo.max_sampling_rounds = 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batch = collect(run, 1, params())
    assert any("0 all-correct from algo.curriculum" in str(w.message) for w in caught)
    assert batch.rollouts == [] and batch.stats["curriculum/added_groups"] == 0
    assert math.isnan(batch.stats["curriculum/redundant_ratio"])
    assert (run.ctx.state[KAPPA], run.ctx.state[LAST]) == (0.2, 0.5)  # undefined ratio: unchanged


# ----------------------------------------------------------------------------- checkpoint / resume
def test_state_survives_a_resume(untrained_toy, tmp_path, monkeypatch):
    """kappa and the last ratio are in ctx.state: a run stopped at step 2 and resumed for step 3 uses
    the kappa an uninterrupted run used (the ratio is scripted: the untrained toy is never right)."""
    import torch

    import rl.algo.curriculum
    from rl.run.tracking import read_metrics
    from rl.train.loop import train

    torch.set_num_threads(1)
    ratios = {"full": iter([0.3, 0.1, 0.4]), "split": iter([0.3, 0.1, 0.4])}
    which = {"run": "full"}
    monkeypatch.setattr(rl.algo.curriculum, "redundant_ratio", lambda table, delimiter: next(ratios[which["run"]]))

    def run(out, *extra):
        cfg = load_config(ROOT / "recipes" / "quickstart.yaml", [
            f"model.name_or_path={untrained_toy}", f"train.output_dir={out}", "data.num_examples=32",
            "rollout.engine=transformers", "rollout.prompts_per_step=2", "rollout.group_size=2",
            "rollout.max_new_tokens=8", "algo.dynamic_sampling=correctness", "algo.max_sampling_rounds=1",
            "algo.curriculum={kappa: 0.0, eta: 0.2}", "rewards=[{name: decs, delimiter: null}]",
            "train.save_every=1", "eval.before=false", "eval.after=false", *extra])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            train(cfg)
        return read_metrics(out / "metrics.jsonl")

    full = run(tmp_path / "full", "train.max_steps=3")
    which["run"] = "split"
    run(tmp_path / "split", "train.max_steps=2")
    state = json.loads((tmp_path / "split" / "checkpoint-000002" / "trainer_state.json").read_text())["ctx"]
    assert state[KAPPA] == pytest.approx(0.2 * (0.5 - 0.1)) and state[LAST] == pytest.approx(0.1)
    resumed = run(tmp_path / "split", "train.max_steps=3", "train.resume=latest", "train.resume_schedule=extend")
    assert [r["curriculum/kappa"] for r in full] == pytest.approx([0.0, 0.04, 0.08])
    assert resumed[-1]["step"] == 3 and resumed[-1]["curriculum/kappa"] == pytest.approx(0.08)
