"""TRL interop (rewards/trl.py): laconic rewards as TRL functions and back. TRL itself is not needed."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest

from rewards import Context, as_trl_reward, build_reward, build_rewards, from_trl
from rewards.base import Sample
from rewards.registry import RewardConfigError
from rewards.trl import samples_from_trl

approx = lambda xs: pytest.approx(xs, abs=1e-9)  # noqa: E731


def trl_len_fn(prompts, completions, completion_ids=None, scale=1.0, **kwargs):
    """A TRL-signature reward used through the registry's 'trl' form."""
    return [scale * len(c) for c in completions]


class WordTokenizer:
    def encode(self, text, add_special_tokens=True):
        return text.split()


def recorder(samples, ctx):
    recorder.seen = (samples, ctx)
    return [float(s.group) for s in samples]


def test_spec_to_trl_function_with_completion_ids():
    fn = as_trl_reward({"name": "kimi_length"})
    assert fn.__name__ == "kimi_length"
    # group of 2 (same prompt); lengths from ids 2 and 4 -> lambda 0.5, -0.5;
    # "A:2" right -> 1 + 0.4*0.5 ; "A:3" wrong -> 0 + 0.4*min(0, -0.5)
    out = fn(["Q:1+1=", "Q:1+1="], ["A:2", "A:3"], completion_ids=[[1, 2], [1, 2, 3, 4]], answer=["2", "2"])
    assert out == approx([1.2, -0.2])


def test_groups_by_identical_prompt_or_group_size():
    fn = as_trl_reward(recorder, tokenizer=WordTokenizer())
    assert fn(["a", "b", "a", "b"], ["x", "y", "z", "w"]) == [0.0, 1.0, 0.0, 1.0]
    samples, ctx = recorder.seen
    assert samples[0].prompt_id == samples[2].prompt_id != samples[1].prompt_id and ctx.group_size == 2
    fn = as_trl_reward(recorder, tokenizer=WordTokenizer(), group_size=2)
    assert fn(["a", "a", "a", "a"], ["x", "y", "z", "w"]) == [0.0, 0.0, 1.0, 1.0]


def test_lengths_from_tokenizer_and_columns():
    fn = as_trl_reward(recorder, tokenizer=WordTokenizer(), answer_key="solution", max_length=64)
    state = SimpleNamespace(global_step=7)
    fn(["p"], ["one two three"], solution=["3"], truncated=[True], budget=[100], prompt_id=["id-9"],
       trainer_state=state)
    samples, ctx = recorder.seen
    s = samples[0]
    assert (s.length, s.answer, s.truncated, s.prompt_id, s.meta) == (3, "3", True, "id-9", {"budget": 100})
    assert (ctx.step, ctx.max_length) == (7, 64)
    with pytest.raises(ValueError, match="tokens"):
        as_trl_reward(recorder)(["p"], ["text"])   # no ids, no tokenizer: never count characters
    with pytest.raises(ValueError, match="column 'budget'"):
        fn(["p", "p"], ["a", "b"], budget=[1])


def test_truncation_follows_trls_eos_rule():
    """Issue 24, B1. Before: TRL passes no truncation flag and the adapter assumed none, so DLER scored a
    completion cut at the limit with no final answer 1.0 through the last-number fallback."""
    cut_then_finished = (["q", "q"], ["so far 2 + 2 = 4", "The answer is 4"])
    ids = [[5, 6, 7, 8], [5, 6, 0]]  # 0 = EOS: the second ended, the first was cut at max_length 4
    with pytest.raises(ValueError, match=r"reward 'dler' reads whether a completion was truncated.*tokenizer"):
        as_trl_reward("dler")
    with pytest.raises(ValueError, match=r"reward 'kimi_length\+dler' reads"):  # inside a composition too
        as_trl_reward([{"name": "kimi_length"}, {"name": "dler"}])
    fn = as_trl_reward("dler", eos_token_ids=[0], max_length=4)
    assert fn(*cut_then_finished, completion_ids=ids, answer=["4", "4"]) == [0.0, 1.0]
    tok = SimpleNamespace(eos_token_id=0, pad_token_id=1)  # a tokenizer's EOS and pad, TRL's eos_and_pad
    assert as_trl_reward("dler", tokenizer=tok)(*cut_then_finished, completion_ids=ids, answer=["4", "4"]) == [0.0, 1.0]
    assert as_trl_reward("dler", tokenizer=tok)(["q"], ["4"], completion_ids=[[5, 1]], answer=["4"]) == [1.0]  # pad
    # with max_length, a shorter completion without EOS (a stop string) is not cut
    assert as_trl_reward("dler", eos_token_ids=0, max_length=8)(*cut_then_finished, completion_ids=ids,
                                                               answer=["4", "4"]) == [1.0, 1.0]
    # a truncated column, when the caller has one, wins
    assert fn(*cut_then_finished, completion_ids=ids, answer=["4", "4"], truncated=[False, True]) == [1.0, 0.0]


def test_l1_budget_through_trl_columns_and_weights():
    fn = as_trl_reward("l1_exact")
    # budget 10, 4 ids -> 1 - 3e-4 * 6 = 0.9982
    assert fn(["q"], ["A:2"], completion_ids=[[1, 2, 3, 4]], answer=["2"], budget=[10]) == approx([0.9982])
    fn = as_trl_reward({"name": "correctness", "weight": 2.0})
    assert fn(["q"], ["A:2"], completion_ids=[[1]], answer=["2"]) == [2.0]
    fn = as_trl_reward([{"name": "correctness"}, {"name": "dapo_overlong", "max_length": 4, "buffer": 2}])
    assert fn.__name__ == "correctness+dapo_overlong"
    # 1 + clip(-(3 - 2)/2) = 0.5
    assert fn(["q"], ["A:2"], completion_ids=[[1, 2, 3]], answer=["2"]) == approx([0.5])


def test_conversational_inputs():
    prompts = [[{"role": "user", "content": "Q:1+1="}]] * 2
    completions = [[{"role": "assistant", "content": "A:2"}], [{"role": "assistant", "content": "A:5"}]]
    fn = as_trl_reward("correctness")
    assert fn(prompts, completions, completion_ids=[[1], [1]], answer=["2", "2"]) == [1.0, 0.0]


def test_stateful_reward_updates_between_calls():
    fn = as_trl_reward({"name": "hapo", "variant": "linear"})
    args = (["q", "q"], ["A:2", "A:3"])
    kw = dict(completion_ids=[[1] * 50, [1] * 200], answer=["2", "2"])
    assert fn(*args, **kw) == [1.0, 0.0]          # no history on the first call
    # now h = 50: right L=50 -> band -> 1 ; wrong L=200 -> max(-1, -(200-55)/50) = -1
    assert fn(*args, **kw) == approx([1.0, -1.0])
    assert list(fn.reward.state_dict().values()) == [50]


def test_rewards_that_need_entropy_are_refused():
    with pytest.raises(ValueError, match="pear.*entropy"):
        as_trl_reward("pear")
    with pytest.raises(RewardConfigError):
        as_trl_reward(42)


def test_from_trl_passes_columns_and_maps_none():
    calls = {}

    def fn(prompts, completions, completion_ids=None, **kwargs):
        calls.update(prompts=prompts, completions=completions, ids=completion_ids, **kwargs)
        return [1.5, None]

    r = from_trl(fn, bonus=3)
    samples = [Sample("p", 0, prompt="P", completion="a", answer="1", meta={"level": 2}, completion_ids=[4]),
               Sample("p", 0, prompt="P", completion="b", answer="1", meta={"source": "x"})]
    assert r(samples, Context(step=7, total_steps=9)) == [1.5, 0.0]
    state = calls.pop("trainer_state")
    assert (state.global_step, state.max_steps) == (7, 9)
    assert calls.pop("log_extra")("x", [1]) is None and calls.pop("log_metric")("m", 1.0) is None
    assert calls == {"prompts": ["P", "P"], "completions": ["a", "b"], "ids": None, "answer": ["1", "1"],
                     "solution": ["1", "1"], "level": [2, None], "source": [None, "x"], "bonus": 3}
    samples[1].completion_ids = [5, 6]
    r(samples, Context())
    assert calls["ids"] == [[4], [5, 6]]
    assert r.name == "fn" and r([], Context()) == []


def test_registry_trl_spec():
    name, r, _ = build_reward({"name": "trl", "function": "tests.rewards.test_rewards_trl:trl_len_fn", "scale": 2.0})
    assert name == "trl_len_fn" and r([Sample("p", 0, completion="abc")], Context()) == [6.0]
    composed = build_rewards([{"name": "trl", "function": "tests.rewards.test_rewards_trl:trl_len_fn", "as": "chars"}])
    assert composed.score([Sample("p", 0, completion="ab")], Context())[1] == {"chars": [2.0]}
    with pytest.raises(RewardConfigError, match="function"):
        build_reward({"name": "trl"})
    with pytest.raises(RewardConfigError, match="no attribute"):
        build_reward({"name": "trl", "function": "tests.rewards.test_rewards_trl:nope"})


def test_samples_from_trl_validates_shapes():
    with pytest.raises(ValueError, match="2 prompts for 1 completions"):
        samples_from_trl(["a", "b"], ["x"], [[1]])
    with pytest.raises(ValueError, match="group_size"):
        samples_from_trl(["a"] * 3, ["x"] * 3, [[1]] * 3, group_size=2)


def test_importing_rewards_does_not_import_trl():
    code = "import sys, rewards, rewards.trl; print('trl' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_trl_functions_log_under_their_own_names_and_plain_text_gets_a_hint():
    """Issue 24, B9. Before: two TRL functions logged as reward/trl and reward/trl_1, and TRL's
    accuracy_reward on plain completions failed inside TRL with "string indices must be integers"."""
    pytest.importorskip("trl")
    from rewards.base import Context, Sample

    composed = build_rewards([{"name": "trl", "function": "trl.rewards:accuracy_reward"},
                              {"name": "trl", "function": "trl.rewards:think_format_reward"},
                              {"name": "trl", "function": "trl.rewards:think_format_reward", "as": "fmt"}])
    assert composed.names == ["accuracy_reward", "think_format_reward", "fmt"]
    samples = [Sample("p", 0, prompt="1+1=", completion="\\boxed{2}", answer="2")]
    with pytest.raises(TypeError, match="plain text.*set conversational: true"):
        composed.rewards[0](samples, Context(chat=False))
    _, accuracy, _ = build_reward({"name": "trl", "function": "trl.rewards:accuracy_reward", "conversational": True})
    assert accuracy(samples, Context()) == [1.0]
