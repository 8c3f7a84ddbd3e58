"""Reconsidering Overthinking's redundancy penalties (rewards/redundancy.py) on hand-computed cases."""

from __future__ import annotations

import math

import pytest

from rewards import build_reward
from rewards.base import Context, Sample
from rewards.redundancy import (
    Redundancy,
    TransformersEncoder,
    adjacent_similarities,
    first_answer_end,
    internal_redundancy,
    p_internal,
    split_sentences,
    tiny_bert,
    token_counts,
    windows,
)
from rewards.registry import RewardConfigError

CTX = Context(step=1)
approx = lambda x: pytest.approx(x, abs=1e-9)  # noqa: E731


class Table:
    """A fake encoder: fixed vectors by text, and a record of what it was asked."""

    def __init__(self, vectors=None, default=(1.0, 0.0)):
        self.vectors, self.default, self.calls = dict(vectors or {}), default, []

    def encode(self, texts):
        self.calls.append(list(texts))
        return [self.vectors.get(t, self.default) for t in texts]


def S(completion, answer="12", correct=True, chars_as_tokens=True, **kw):
    """A sample whose tokens are its characters (token_ends 1, 2, ..., n), as on the toy."""
    n = len(completion)
    ends = list(range(1, n + 1)) if chars_as_tokens else None
    return Sample("p", 0, completion=completion, answer=answer, correct=correct, length=n, token_ends=ends, **kw)


# ----------------------------------------------------------------------------- the first correct solution
@pytest.mark.parametrize("cot, answer, end", [
    ("3*4 = 12, so 12.", "12", 8),                 # "= 12": '=' and ' ' may precede
    ("x+12 and 12", "12", 11),                    # '+' before: skipped while a clean match exists
    ("(12) [12] -12 ,12 .12 ?12 12", "12", 28),   # every blocked character, then the clean one
    ("0.12 or 112 or 12", "12", 17),              # a digit or '.' before: skipped
    ("123 and 12", "12", 10),                     # a digit after: no word boundary
    ("got 12.5, no: 12", "12", 6),                # '.' after is a boundary (the release's \b)
    ("we get 12,345 apples, 12345", "12345", 13),  # the thousands form, earlier
    ("we get 12345 apples, 12,345", "12345", 12),  # the plain form, earlier
    ("1234567 vs 1234,567", "1234567", 7),        # one comma only (the release's a[:-3] + ',' + a[-3:])
    ("the Answer is B.", "b", 15),                 # case-insensitive
    ("x+12", "12", 4),                             # only blocked matches: the plain first occurrence
    ("twelve", "12", None),                        # none
    ("anything", "  ", None),                      # an empty answer
])
def test_first_answer_end(cot, answer, end):
    assert first_answer_end(cot, answer) == end


def test_no_match_scores_zero_and_the_model_answer_is_searched_too():
    r = Redundancy(encoder=Table())
    assert r([S("We get twelve.</think>\\boxed{12}")], CTX) == [0.0]      # correct, never stated in the think part
    # gold \frac{1}{2}, the model's 0.5: its answer is found, "half is 0.5" (11 of 21 characters)
    s = S("half is 0.5 ok 0.5 ok</think>\\boxed{0.5}", answer="\\frac{1}{2}")
    assert r([s], CTX) == approx([0.5 * (1.0 + (1 - 0.48))])            # ERD = round(10/21, 2) = 0.48


# ----------------------------------------------------------------------------- sentences and windows
def test_split_sentences_protects_decimals_and_latex():
    assert split_sentences("It is 3.5 m. Then 2.0? Yes!") == ["It is 3.5 m.", "Then 2.0?", "Yes!"]
    assert split_sentences("A $x. y$ b. $$u. v$$ c. \\(p. q\\) d. \\[r. s\\] e.") == [
        "A $x. y$ b.", "$$u. v$$ c.", "\\(p. q\\) d.", "\\[r. s\\] e."]
    assert split_sentences("\\begin{align} a. b \\end{align} ok. end") == ["\\begin{align} a. b \\end{align} ok.", "end"]
    assert split_sentences("Wait... what?! no") == ["Wait...", "what?!", "no"]     # a run of marks ends one sentence
    assert split_sentences("$ 5. and $6.") == ["$ 5.", "and $6."]                   # '$ ' opens no span
    assert split_sentences("unclosed \\( a. b") == ["unclosed \\( a.", "b"]
    assert split_sentences("3+5=8,8+2=10.check1:3+5=8,8+2=10.A:10") == [           # the toy's checks
        "3+5=8,8+2=10.", "check1:3+5=8,8+2=10.", "A:10"]
    assert split_sentences("") == [] and split_sentences(" . ") == ["."]


def sentences(n):
    return [f"s{i}" for i in range(n)]


@pytest.mark.parametrize("n, w, t, count", [(1, 1, 1, 1), (5, 1, 1, 5), (20, 2, 1, 19), (40, 4, 2, 19)])
def test_windows(n, w, t, count):
    ws = windows(sentences(n))
    assert len(ws) == count
    assert ws[0] == " ".join(sentences(n)[:w])
    assert ws[1:2] == ([" ".join(sentences(n)[t : t + w])] if count > 1 else [])
    assert ws[-1] == " ".join(sentences(n)[(count - 1) * t : (count - 1) * t + w])


def test_window_examples():
    assert windows(sentences(20))[:2] == ["s0 s1", "s1 s2"]
    assert windows(sentences(40))[:2] == ["s0 s1 s2 s3", "s2 s3 s4 s5"]
    assert windows(sentences(40))[-1] == "s36 s37 s38 s39"


# ----------------------------------------------------------------------------- internal redundancy
def test_ird_with_fixed_vectors():
    enc = Table({"a": (1.0, 0.0), "b": (1.0, 1.0), "c": (0.0, 2.0), "d": (-1.0, -1.0), "e": (0.0, 0.0)})
    # cos(a, b) = 1/sqrt2, cos(b, c) = 1/sqrt2, cos(c, d) = -1/sqrt2 -> 0, cos(d, e): zero vector -> 0
    assert adjacent_similarities([enc.vectors[k] for k in "abcde"]) == approx([2 ** -0.5, 2 ** -0.5, 0.0, 0.0])
    assert internal_redundancy(list("abcde"), enc) == approx(2 * 2 ** -0.5 / 4)
    assert enc.calls == [list("abcde")]        # N = 5: one-sentence windows
    assert internal_redundancy(["a"], enc) == 0.0 and internal_redundancy([], enc) == 0.0   # < 2 windows
    assert len(enc.calls) == 1                 # ... and no encoding
    assert internal_redundancy(["a", "a"], Table()) == approx(1.0)


@pytest.mark.parametrize("ird, p", [(0.0, 1.0), (0.5, 0.98198), (0.7, 0.49876), (1.0, 0.0)])
def test_p_internal(ird, p):
    assert p_internal(ird) == pytest.approx(p, abs=1e-5)


def test_p_internal_formula():
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    lo, hi = sig(-6.0), sig(14.0)
    assert p_internal(0.4) == approx((sig(20 * 0.3) - lo) / (hi - lo))
    assert p_internal(0.4, k=10, c=0.5) == approx((sig(10 * 0.1) - sig(-5)) / (sig(5) - sig(-5)))


# ----------------------------------------------------------------------------- the reward
def test_gate_wrong_and_empty_tail():
    r = Redundancy(encoder=Table())
    assert r([S("a 12.</think>x</think>\\boxed{12}")], CTX) == [0.0]    # two delimiters
    assert r([S("So 12.")], CTX) == [0.0]                               # none
    assert r([S("  \n</think>\\boxed{12}")], CTX) == [0.0]             # an empty think part
    assert r([S("So 12. ok.</think>\\boxed{13}", correct=False)], CTX) == [0.0]
    assert Redundancy(encoder=Table(), wrong_reward=-1.0)([S("x</think>1", correct=False)], CTX) == [-1.0]
    empty_tail = S("We get 12 \n</think>\\boxed{12}")                  # the stripped think part ends with 12
    assert r([empty_tail], CTX) == [1.0]                                 # keep: ERD 0, one sentence: IRD 0
    assert Redundancy(encoder=Table(), empty_tail="zero")([empty_tail], CTX) == [0.0]


def test_erd_in_tokens_and_its_rounding():
    # think "So 12. Done." (12 characters = tokens), FCS "So 12" (5): ERD = round(7/12, 2) = 0.58
    s = S("So 12. Done.</think>\\boxed{12}")
    assert token_counts(s, 0, 5, 12) == (12, 5, 4)
    assert Redundancy(encoder=Table(), internal=False)([s], CTX) == approx([1 - 0.58])
    s = S("12 and mo</think>\\boxed{12}")                    # 7/9 = 0.777.. -> 0.78
    assert Redundancy(encoder=Table(), internal=False)([s], CTX) == approx([1 - 0.78])
    # exact halves round to even (Python's round, as the release): 14/16 = 0.875 -> 0.88, 10/16 = 0.625 -> 0.62
    s = S("12 and more text</think>\\boxed{12}")
    assert Redundancy(encoder=Table(), internal=False)([s], CTX) == approx([1 - 0.88])
    s = S("abc 12 qrstuvwxy</think>\\boxed{12}")
    assert Redundancy(encoder=Table(), internal=False)([s], CTX) == approx([1 - 0.62])


def test_token_counts_with_multi_character_tokens_and_eos():
    # "So 12. Done." as tokens "So", " 1", "2.", " Done", "." then "</think>" and an EOS (empty)
    s = Sample("p", 0, completion="So 12. Done.</think>", answer="12", correct=True, length=7,
               token_ends=[2, 4, 6, 11, 12, 20, 20])
    assert token_counts(s, 0, 5, 12) == (5, 3, 2)      # "12" ends inside "2.": the FCS takes that token
    assert Redundancy(encoder=Table(), internal=False)([s], CTX) == approx([1 - 0.4])
    s.token_ends = None                                  # no positions: characters (7 of 12 -> 0.58)
    assert Redundancy(encoder=Table(), internal=False)([s], CTX) == approx([1 - 0.58])


def test_mean_product_and_switches():
    # FCS "a. a. a. So 12" (4 sentences, windows of 1): vectors a, a, a, S -> cos 1, 1, 0: IRD 2/3
    enc = Table({"So 12": (0.0, 1.0)})
    cot = "a. a. a. So 12. Then done."        # 26 characters; tail ". Then done." = 12: ERD 0.46
    s = S(cot + "</think>\\boxed{12}")
    p_int, p_ext = p_internal(2 / 3), 1 - 0.46
    assert Redundancy(encoder=enc)([s], CTX) == approx([0.5 * (p_int + p_ext)])
    assert Redundancy(encoder=enc, combine="product")([s], CTX) == approx([p_int * p_ext])
    assert Redundancy(encoder=enc, internal=False)([s], CTX) == approx([p_ext])
    assert Redundancy(encoder=enc, external=False)([s], CTX) == approx([p_int])
    assert Redundancy(encoder=enc, internal=False, external=False, correct_reward=2.0)([s], CTX) == [2.0]
    assert Redundancy(encoder=enc, correct_reward=2.0)([s], CTX) == approx([p_int + p_ext])


def test_batch_encodes_each_window_once():
    enc = Table()
    s1 = S("a. b. So 12. x")
    s2 = S("a. b. c. 12 y")
    Redundancy(encoder=enc, delimiter=None)([s1, s2, S("a. b. 13", correct=False)], CTX)
    assert enc.calls == [["a.", "b.", "So 12", "c.", "12"]]
    Redundancy(encoder=enc, internal=False, delimiter=None)([s1], CTX)
    assert len(enc.calls) == 1                   # internal off: nothing encoded


def test_toy_trace():
    """The toy (no delimiter): the FCS is the first chain, one sentence: IRD 0; the tail is the checks."""
    trace = "3+5=8,8+2=10.check1:3+5=8,8+2=10.A:10"          # 37 characters; "=10" ends at 12
    s = Sample("p", 0, completion=trace, answer="10", correct=True, length=38, token_ends=[*range(1, 38), 37])
    r = Redundancy(encoder=Table(), delimiter=None)
    assert r([s], CTX) == approx([0.5 * (1.0 + (1 - 0.68))])   # 25 of 37 tokens after the FCS (EOS not counted)
    short = Sample("p", 0, completion="3+5=8,8+2=10.A:10", answer="10", correct=True, length=18,
                   token_ends=[*range(1, 18), 17])
    assert r([short], CTX) == approx([0.5 * (1.0 + (1 - 0.29))])   # 5 of 17


def test_per_token_credit():
    """per_token: the FCS's tokens keep correct_reward, every later token gets the penalised reward."""
    s = Sample("p", 0, completion="3+5=8,8+2=10.A:10", answer="10", correct=True, length=18,
               token_ends=[*range(1, 18), 17])
    r = 0.5 * (1.0 + (1 - 0.29))                                  # 0.855
    out = Redundancy(encoder=Table(), delimiter=None, per_token=True)([s], CTX)
    assert out == [[1.0] * 12 + [pytest.approx(r)] * 6]           # "3+5=8,8+2=10" is 12 tokens
    wrong = Sample("p", 0, completion="3+5=8,8+2=11.A:11", answer="10", correct=False, length=18)
    no_pos = Sample("p", 0, completion="3+5=8,8+2=10.A:10", answer="10", correct=True, length=18)
    end = Sample("p", 0, completion="so 10", answer="10", correct=True, length=2, token_ends=[3, 5])
    out = Redundancy(encoder=Table(), delimiter=None, per_token=True)([wrong, no_pos, end], CTX)
    assert out == [0.0, pytest.approx(r), 1.0]     # wrong: 0; no positions: the scalar; nothing after the FCS
    built = build_reward({"name": "redundancy", "per_token": True, "delimiter": None})[1]
    assert built.per_token and built.needs == {"token_offsets"}


def test_registry_and_validation():
    name, reward, weight = build_reward({"name": "redundancy", "combine": "product", "internal": False})
    assert (name, type(reward).__name__, weight, reward.combine) == ("redundancy", "Redundancy", 1.0, "product")
    assert reward.encoder.model is None               # building loads nothing
    for bad in ({"combine": "sum"}, {"empty_tail": "drop"}, {"k": 0}, {"c": 2}, {"delimiter": ""}, {"encoder": 3}):
        with pytest.raises(RewardConfigError):
            build_reward({"name": "redundancy", **bad})


# ----------------------------------------------------------------------------- a real (tiny) transformers encoder
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_bert(tmp_path_factory.mktemp("enc") / "tiny-bert")


def test_tiny_bert_encoder_is_deterministic_and_normalised(tiny):
    texts = ["3+5=8,8+2=10.", "check1:3+5=8,8+2=10.", "A:10", "Wait, let me verify $x^2$ again."]
    a = TransformersEncoder(str(tiny), batch_size=2).encode(texts)
    b = TransformersEncoder(str(tiny), batch_size=2).encode(texts)
    assert a == b
    assert all(len(v) == 32 and abs(math.fsum(x * x for x in v) - 1) < 1e-5 for v in a)
    assert tiny_bert(tiny) == tiny                       # built once, then reused


def test_tiny_bert_encoder_caches_windows(tiny):
    enc = TransformersEncoder(str(tiny))
    first = enc.encode(["a b", "c d"])
    enc.model = None                                     # a cached text needs no model
    assert enc.encode(["c d", "a b", "c d"]) == [first[1], first[0], first[1]]
    enc.cache_size = 1
    enc.encode(["a b"])
    assert list(enc.cache) == ["a b"]                    # LRU: the least recent dropped


def test_reward_with_the_tiny_encoder(tiny, monkeypatch):
    monkeypatch.setenv("LACONIC_CACHE", str(tiny.parent))
    monkeypatch.setattr("rewards.redundancy.TINY_BERT_VERSION", tiny.name)
    early = S("Check 12. Check 12. Check 12. Check 12. 12</think>\\boxed{12}")  # FCS "Check 12": one sentence
    assert Redundancy(encoder="builtin:tiny-bert")([early], CTX) == approx([0.5 * (1 + 1 - round(34 / 42, 2))])
    loop = "Check again. " * 5 + "So 12. done"                  # FCS: 6 sentences, 5 identical windows then "So 12"
    enc = TransformersEncoder("builtin:tiny-bert")
    ird = internal_redundancy(split_sentences(loop[: loop.index("12") + 2]), enc)
    cos = adjacent_similarities(enc.encode(["Check again.", "So 12"]))[0]
    assert ird == pytest.approx((4 + cos) / 5, abs=1e-6)
    got = Redundancy(encoder="builtin:tiny-bert", external=False, delimiter=None)([S(loop)], CTX)
    assert got == [pytest.approx(p_internal(ird), abs=1e-6)]
