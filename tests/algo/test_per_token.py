"""Per-token rewards: the reward contract, per-token advantages, the loss, and DECS."""

import pytest
import torch
from hypothesis import given, settings, strategies as st

from rewards import DECS, build_rewards
from rewards.base import Context, Sample
from rewards.compose import RewardError
from rewards.decs import redundant_from
from rl.algo.advantages import table_advantages
from rl.algo.loss import Normalizer, policy_loss
from rl.config import AlgoConfig
from rl.train.update import token_columns


def per_token(samples, ctx):
    return [[float(t) for t in range(s.length)] if s.correct else 0.0 for s in samples]


def test_composition_of_scalar_and_per_token_rewards():
    samples = [Sample("p", 0, length=3, correct=True), Sample("p", 0, length=2, correct=False)]
    composed = build_rewards([{"name": "tests.algo.test_per_token:per_token", "weight": 2.0}, {"name": "correctness"}])
    totals, components, tokens = composed.score_tokens(samples, Context())
    assert tokens == [[1.0, 3.0, 5.0], [0.0, 0.0]]  # 2 * (0, 1, 2) + 1 ; 2 * 0 + 0
    assert components["tests.algo.test_per_token:per_token"] == [1.0, 0.0]  # logged as the token mean
    assert totals == [3.0, 0.0] and composed.score(samples, Context()) == (totals, components)
    assert build_rewards([{"name": "correctness"}]).score_tokens(samples, Context())[2] is None


def test_a_per_token_reward_of_the_wrong_length_is_named():
    def bad(samples, ctx):
        return [[1.0] * (s.length + 1) for s in samples]

    with pytest.raises(RewardError, match="reward 'bad' returned 4 per-token values at sample 0, whose completion has 3"):
        build_rewards([{"name": "tests.algo.test_per_token:per_token"}]).__class__([("bad", bad, 1.0)]).score_tokens(
            [Sample("p", 0, length=3)], Context())


def positions(mode, name="grpo"):
    return AlgoConfig(advantage=name, advantage_options={"token_positions": mode})


def test_token_advantages_by_hand():
    """grpo per token position within the group: position 0 {1, 3}, 1 {2, 4}: -/+0.7071 (std of
    two values, unbiased: sqrt 2). Position 2: only the longer sample reaches it. ``reached``: a
    group of one, 0. ``padded`` (the default): the shorter row is padded with its first value 1, so
    {1, 5}: mean 3, std 4/sqrt 2, the longer sample gets 2 / (2 sqrt 2) = 0.7071 and the pad 0."""
    table = [Sample("a", 0, length=2), Sample("a", 0, length=3), Sample("b", 1, length=1)]
    tokens = [[1.0, 2.0], [3.0, 4.0, 5.0], [7.0]]
    s = 2 ** -0.5
    reached = table_advantages(positions("reached"), [0.0] * 3, table, 8, 1, token_totals=tokens)
    padded = table_advantages(AlgoConfig(advantage="grpo"), [0.0] * 3, table, 8, 1, token_totals=tokens)
    want = torch.tensor([[-s, -s, 0.0], [s, s, 0.0], [0.0, 0.0, 0.0]])
    assert reached.shape == (3, 3) and torch.allclose(reached, want, atol=1e-5)
    want[1, 2] = s
    assert padded.shape == (3, 3) and torch.allclose(padded, want, atol=1e-5)
    assert torch.equal(padded, table_advantages(positions("padded"), [0.0] * 3, table, 8, 1, token_totals=tokens))


def test_decs_advantages_by_hand_padded_as_the_release_or_reached():
    """DECS values (beta 0.1, L_max 8), G = 3, lengths 2, 4, 3: A correct without a redundant span
    (1.1, 1.1), B correct with tokens 2-3 redundant (1.1, 1.1, 1.05, 1.05; 1.05 = 1 + 0.1 (1 - 4/8)),
    C wrong (0, 0, 0). Positions 0 and 1 (all reach them): {1.1, 1.1, 0}, mean 2.2/3, deviations
    1.1/3, 1.1/3, -2.2/3, unbiased std 1.1/sqrt 3: A, B get 1/sqrt 3 = 0.57735, C -2/sqrt 3 = -1.15470.

    ``padded`` (the release: pixas/DECS src_valid/valid_ray_trainer.py, grpo_proc_length): A's row
    goes on at 1.1 = r(1 + beta), C's at 0. Positions 2 and 3: {1.1, 1.05, 0}, mean 2.15/3,
    deviations 1.15/3, 1/3, -2.15/3, std^2 = (1.15^2 + 1 + 2.15^2) / 9 / 2 = 6.945/18, std 0.621155:
    B 1/3 / 0.621155 = 0.536634, C at 2: -2.15/3 / 0.621155 = -1.153763 (B's redundant tail earns
    less than A's tokens, 0.57735). ``reached``: position 2 {1.05, 0}: B +0.707107, C -0.707107;
    position 3 only B: a group of one, 0 (the tail of the longest completion gets no signal)."""
    table = [Sample("p", 0, length=2, correct=True), Sample("p", 0, length=4, correct=True),
             Sample("p", 0, length=3, correct=False)]
    tokens = [[1.1, 1.1], [1.1, 1.1, 1.05, 1.05], [0.0, 0.0, 0.0]]
    totals = [1.1, 1.075, 0.0]  # the token means (what the trainer logs); only an empty row would use them
    a, c = 3 ** -0.5, -2 * 3 ** -0.5
    padded = table_advantages(AlgoConfig(advantage="grpo"), totals, table, 8, 1, token_totals=tokens)
    reached = table_advantages(positions("reached"), totals, table, 8, 1, token_totals=tokens)
    assert padded.shape == reached.shape == (3, 4) and padded.dtype == torch.float32
    assert torch.allclose(padded, torch.tensor([[a, a, 0.0, 0.0],
                                                [a, a, 0.536634, 0.536634],
                                                [c, c, -1.153763, 0.0]]), atol=1e-5)
    assert torch.allclose(reached, torch.tensor([[a, a, 0.0, 0.0],
                                                 [a, a, 0.707107, 0.0],
                                                 [c, c, -0.707107, 0.0]]), atol=1e-5)
    # G = 2 (A and B only): positions 2, 3 {1.1 (pad), 1.05}: B -0.707107 (padded), 0 (reached)
    two = table_advantages(AlgoConfig(advantage="grpo"), totals[:2], table[:2], 8, 1, token_totals=tokens[:2])
    assert torch.allclose(two, torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, -0.707107, -0.707107]]), atol=1e-4)
    assert not table_advantages(positions("reached"), totals[:2], table[:2], 8, 1, token_totals=tokens[:2]).any()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.floats(-2, 2), min_size=1, max_size=5), min_size=2, max_size=8),
       st.integers(2, 4), st.sampled_from(["grpo", "batch_std", "none", "rloo", "reinforce_pp_baseline", "drpo",
                                           "identity", "canon"]), st.data())
def test_positions_agree_when_each_groups_completions_have_equal_lengths(rows, group_size, name, data):
    """Each group's completions equally long (groups may differ): ``padded`` has no pads inside a
    group, so both modes see the same pseudo-samples and give the same numbers, bit for bit."""
    widths = [len(rows[g]) for g in range(0, len(rows), group_size) for _ in range(group_size)][: len(rows)]
    tokens = [data.draw(st.lists(st.floats(-2, 2), min_size=w, max_size=w)) for w in widths]
    table = [Sample("p", i // group_size, length=w, correct=i % 3 == 0) for i, w in enumerate(widths)]
    totals = [sum(r) / len(r) for r in tokens]
    padded = table_advantages(AlgoConfig(advantage=name), totals, table, 8, 1, token_totals=tokens)
    reached = table_advantages(positions("reached", name), totals, table, 8, 1, token_totals=tokens)
    assert torch.equal(padded, reached)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.floats(-2, 2), min_size=0, max_size=6), min_size=1, max_size=8),
       st.sampled_from(["padded", "reached"]))
def test_pads_are_never_trained(rows, mode):
    """[N, T_max] with exactly 0 past each sample's end, whatever the pads did to the statistics."""
    table = [Sample("p", i % 2, length=len(r)) for i, r in enumerate(rows)]
    adv = table_advantages(positions(mode), [0.5] * len(rows), table, 8, 1, token_totals=rows)
    own = torch.arange(adv.shape[1]).unsqueeze(0) < torch.tensor([len(r) for r in rows]).unsqueeze(1)
    assert adv.shape == (len(rows), max(len(r) for r in rows)) and torch.isfinite(adv).all()
    assert not adv[~own].any()


def test_token_positions_option_is_checked_and_listed():
    from rl.algo.advantages import compute_advantages
    from rl.algo.estimators import advantage_option_defaults, advantage_option_names
    from rl.config import ConfigError, load_config

    assert "token_positions" in advantage_option_names("grpo") and "token_positions" in advantage_option_names("drpo")
    assert advantage_option_defaults("grpo") == {"token_positions": "padded"}
    assert load_config(None, ["algo.advantage_options={token_positions: reached}"]).algo.advantage_options == {
        "token_positions": "reached"}
    with pytest.raises(ConfigError, match="did you mean 'token_positions'"):
        load_config(None, ["algo.advantage_options={token_position: reached}"])
    with pytest.raises(ValueError, match=r"token_positions must be one of \['padded', 'reached'\], got 'reach'"):
        table_advantages(positions("reach"), [1.0], [Sample("p", 0, length=1)], 8, 1, token_totals=[[1.0]])
    with pytest.raises(ValueError, match="token_positions must be one of"):  # scalar rewards: checked, unused
        compute_advantages("grpo", [1.0, 0.0], [0, 0], options={"token_positions": "all"})
    scalar = compute_advantages("grpo", [1.0, 0.0], [0, 0], options={"token_positions": "reached"})
    assert torch.equal(scalar, compute_advantages("grpo", [1.0, 0.0], [0, 0]))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-2, 2), min_size=2, max_size=6), st.integers(1, 5),
       st.sampled_from(["grpo", "batch_std", "none", "rloo"]))
def test_scalar_rewards_spread_over_equal_lengths_give_the_scalar_advantages(rewards, length, name):
    table = [Sample("p", i % 2, length=length) for i in range(len(rewards))]
    algo = AlgoConfig(advantage=name)
    scalar = table_advantages(algo, rewards, table, 8, 1)
    tokens = table_advantages(algo, rewards, table, 8, 1, token_totals=[[r] * length for r in rewards])
    if name == "batch_std":  # its batch std now runs over tokens: the same values repeated
        scalar = table_advantages(algo, [r for r in rewards for _ in range(length)],
                                  [s for s in table for _ in range(length)], 8, 1).reshape(len(rewards), length)[:, 0]
    assert torch.allclose(tokens, scalar.unsqueeze(1).expand(-1, length), atol=1e-6)


def test_per_token_advantages_in_the_loss_equal_their_scalar_when_constant():
    logp = torch.log(torch.tensor([[1.0, 1.5, 5.0], [0.5, 1.2, 1.0]]))
    mask, norm = torch.tensor([[1, 1, 0], [1, 1, 1]]), Normalizer(num_tokens=5, num_seqs=2)
    kw = dict(clip_low=0.2, clip_high=0.28, agg="token-mean", norm=norm)
    a, _ = policy_loss(logp, torch.zeros_like(logp), torch.tensor([1.0, -1.0]), mask, **kw)
    wide = torch.tensor([[1.0, 1.0, 1.0, 9.0], [-1.0, -1.0, -1.0, 9.0]])  # [B, T_max], wider than the batch
    b, _ = policy_loss(logp, torch.zeros_like(logp), token_columns(wide, 3), mask, **kw)
    assert a.item() == pytest.approx(b.item())
    assert token_columns(torch.tensor([1.0, 2.0]), 1).shape == (2,)  # [B] advantages untouched


# ----------------------------------------------------------------------------- DECS
def sample(text, ends, answer="5", correct=True, delimiter_text=""):
    return Sample("p", 0, completion=text, answer=answer, correct=correct, length=len(ends), token_ends=ends)


def test_decs_by_hand():
    s = sample("2+3=5. check: 5.", [4, 6, 13, 16])
    assert DECS()([s], Context(max_length=8)) == [[1.1, 1.1, pytest.approx(1.05), pytest.approx(1.05)]]
    assert DECS(beta=0.2)([s], Context(max_length=4)) == [[1.2, 1.2, 1.0, 1.0]]  # L = L_max: the tail gets r


def test_decs_edge_cases():
    never = sample("2+3=6, no. 2+3=", [4, 10, 15])
    first = sample("5 is it, I think.", [1, 8, 17])
    later_number = sample("15 and 2.5 then 5", [2, 10, 17])
    assert redundant_from(never) is None and DECS()([never], Context(max_length=8)) == [pytest.approx(1.1)]
    assert redundant_from(first) == 1  # the answer is the first token: all the rest is redundant
    assert redundant_from(later_number) is None  # "15" and "2.5" are not "5"; its last token has no tail
    wrong = sample("2+3=5. check: 5.", [4, 6, 13, 16], correct=False)
    assert DECS()([wrong], Context(max_length=8)) == [0.0]
    after_think = Sample("p", 0, completion="2+3 is ... </think> 5", answer="5", correct=True, length=3,
                         token_ends=[3, 19, 21])
    assert redundant_from(after_think) is None  # only the reasoning (before </think>) is searched


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 3), min_size=1, max_size=12), st.integers(0, 11), st.floats(0, 0.5))
def test_decs_properties(widths, at, beta):
    """Per-token values: r(1+beta) up to the span, then one lower constant; never above r(1+beta)."""
    pieces = [" " * w for w in widths]
    at = min(at, len(pieces) - 1)
    pieces[at] = "7"
    ends = [sum(len(p) for p in pieces[: i + 1]) for i in range(len(pieces))]
    s = Sample("p", 0, completion="".join(pieces), answer="7", correct=True, length=len(pieces), token_ends=ends)
    out = DECS(beta=beta)([s], Context(max_length=16))[0]
    values = out if isinstance(out, list) else [out] * s.length
    k = redundant_from(s)
    assert k == (at + 1 if at + 1 < s.length else None)
    assert all(v == pytest.approx(1 + beta) for v in values[: k or s.length])
    assert all(v == pytest.approx(1 + beta * (1 - s.length / 16)) for v in values[k or s.length:])


def ramp(samples, ctx):
    """Per-token: later tokens earn less (a stand-in for DECS on a model that is never correct)."""
    return [[1.0 - t / max(s.length, 1) for t in range(s.length)] for s in samples]


def test_a_per_token_reward_trains_end_to_end(untrained_toy, tmp_path):
    from rl.run.tracking import read_metrics

    from tests.train.test_trainer import laconic, overrides

    out = tmp_path / "run"
    p = laconic(overrides(untrained_toy, out, "train.max_steps=2", "eval.before=false", "eval.after=false",
                          "algo.advantage=grpo", "train.log_completions=1",
                          "rewards=[{name: 'tests.algo.test_per_token:ramp'}, {name: decs, delimiter: null}]"))
    assert p.returncode == 0, p.stderr[-3000:]
    rows = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2] and rows[0]["grad_norm"] > 0
    assert 0 < rows[0]["reward/tests.algo.test_per_token:ramp"] < 1  # logged as each sample's token mean
