"""The overthinking toy and the built-in arithmetic task (rl/tasks.py, rl/models/toy.py)."""

from __future__ import annotations

import itertools
import json
import random
import re
import string
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from rl.config import ModelConfig, load_config
from rl.models.load import resolve_model_path
from rl.models.toy import (BUDGET_RANGE, BUDGET_TEMPLATE, MAX_CHECKS, TAGS, VERSIONS, build_model, build_tokenizer,
                           sft_example, toy_prompt)
from rl.models.toy_build import build_untrained_toy, ensure_toy, sft
from rl.tasks import TASKS, arithmetic, arithmetic_trace, make_task_dataset, sample_arithmetic, split_of

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


# ----------------------------------------------------------------------------- tasks


def test_trace_matches_design_example():
    assert arithmetic_trace("3+5+2", 1) == "3+5=8,8+2=10.check1:3+5=8,8+2=10.A:10"
    assert arithmetic_trace("3+5+2", 0) == "3+5=8,8+2=10.A:10"
    assert arithmetic_trace("9+9", 2) == "9+9=18.check1:9+9=18.check2:9+9=18.A:18"


def test_trace_rejects_bad_input():
    with pytest.raises(ValueError, match="not an arithmetic question"):
        arithmetic_trace("3*5", 0)
    with pytest.raises(ValueError, match="n_checks"):
        arithmetic_trace("3+5", -1)


def test_problem_rows():
    rows = make_task_dataset("arithmetic", 50, split="train", seed=3)
    assert "arithmetic" in TASKS and len(rows) == 50
    for row in rows:
        operands = [int(x) for x in row["question"].split("+")]
        assert row["answer"] == str(sum(operands))
        assert row["difficulty"] == len(operands) and 2 <= len(operands) <= 5
        assert row["source"] == "arithmetic" and row["id"].startswith("arithmetic-")
    with pytest.raises(ValueError, match="unknown task"):
        make_task_dataset("nope", 1)


def test_split_is_disjoint_deterministic_and_unique():
    test = arithmetic(300, split="test", seed=0)
    train = arithmetic(3000, split="train", seed=0)
    test_q = {r["question"] for r in test}
    assert len(test_q) == 300  # no duplicates in test
    assert not test_q & {r["question"] for r in train}
    assert all(split_of(q) == "test" for q in test_q)
    assert arithmetic(300, split="test", seed=0) == test  # deterministic
    assert arithmetic(100, split="test", seed=0) == test[:100]  # prefix-stable
    assert arithmetic(300, split="test", seed=1) != test
    assert all(split_of(r["question"]) == "train" for r in train)
    # about 10% of all questions are held out, by a stable hash (not Python's salted hash)
    three = ["+".join(d) for d in itertools.product("0123456789", repeat=3)]
    assert 70 <= sum(split_of(q) == "test" for q in three) <= 130
    assert split_of("3+5+2") == "train" and split_of("6+8") == "test"  # fixed forever
    with pytest.raises(ValueError, match="only"):
        arithmetic(200, split="test", min_operands=2, max_operands=2)


# ----------------------------------------------------------------------------- tokenizer and model


def test_tokenizer_round_trip_one_token_per_char(tokenizer):
    texts = ["Q:3+5+2=", "3+5=8,8+2=10.check1:3+5=8,8+2=10.A:10", " two  spaces ", string.printable]
    for text in texts:
        ids = tokenizer.encode(text, add_special_tokens=False)
        assert len(ids) == len(text)
        assert tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids) == text
    assert tokenizer.encode("Q:1+2=") == tokenizer.encode("Q:1+2=", add_special_tokens=False)  # no BOS
    assert tokenizer.padding_side == "left"
    assert tokenizer.decode(tokenizer.encode("A:3") + [tokenizer.eos_token_id], skip_special_tokens=True) == "A:3"


def test_model_shape(tokenizer):
    model = build_model(tokenizer)
    n_params = sum(p.numel() for p in model.parameters())
    assert 1.0e6 <= n_params <= 1.1e6
    cfg = model.config
    assert cfg.hidden_size // cfg.num_attention_heads == 64 and cfg.head_dim == 64
    assert cfg.vocab_size == len(tokenizer) and cfg.tie_word_embeddings
    assert (cfg.eos_token_id, cfg.pad_token_id, cfg.bos_token_id) == (
        tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.bos_token_id)
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id


def test_untrained_toy_saves_reloads_and_generates(tmp_path, monkeypatch):
    path = build_untrained_toy(tmp_path / "toy")
    assert json.loads((path / "toy_info.json").read_text())["sft_steps"] == 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # temp dirs cleaned up
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert tok.decode(tok.encode(" Q:1+2= ")) == " Q:1+2= " and tok.padding_side == "left"
    enc = tok([toy_prompt("1+2"), toy_prompt("3+4+5+6")], return_tensors="pt", padding=True)
    out = model.generate(**enc, max_new_tokens=5, do_sample=True, temperature=1.0)
    assert out.shape[0] == 2 and 1 <= out.shape[1] - enc["input_ids"].shape[1] <= 5
    # a second build replaces the first in place
    assert build_untrained_toy(tmp_path / "toy", seed=1) == path
    # ensure_toy reuses a cached toy whose info matches (sft_steps=0: the untrained one)
    monkeypatch.setenv("LACONIC_CACHE", str(tmp_path))
    (tmp_path / "toy").rename(tmp_path / "toy-v1")
    assert ensure_toy(sft_steps=0) == tmp_path / "toy-v1"


def test_tagged_examples_open_with_a_uniform_tag():
    rng = random.Random(0)
    pairs = [sft_example(rng, "tagged") for _ in range(200)]
    heads = [c[:6] for _, c in pairs]
    assert set(heads) == set(TAGS) and 60 < heads.count("[Easy]") < 140  # uniform, independent
    assert all(p == toy_prompt(p[2:-1]) for p, _ in pairs)  # the plain prompt


def test_plain_examples_are_unchanged_by_the_variants():
    """The plain toy's training stream (and so builtin:toy's cache) is what it was before variants."""
    a, b = random.Random(5), random.Random(5)
    for _ in range(20):
        problem = sample_arithmetic(b, "train")
        expected = (toy_prompt(problem["question"]), arithmetic_trace(problem["question"], b.randint(0, MAX_CHECKS)))
        assert sft_example(a) == expected


def test_budget_prompt_format():
    assert toy_prompt("3+5+2", 48) == "B48Q:3+5+2=" == BUDGET_TEMPLATE.format(budget=48, question="3+5+2")
    assert toy_prompt("3+5+2") == "Q:3+5+2="
    prompt, _ = sft_example(random.Random(0), "budget")
    assert re.fullmatch(r"B\d{1,3}Q:\d(\+\d){1,4}=", prompt), prompt


def test_budget_is_the_longest_trace_that_fits(tokenizer):
    """A budget B picks the most re-checks whose trace (EOS included, in tokens) fits in B."""
    rng = random.Random(1)
    budgets, ks = [], []
    for _ in range(2000):
        prompt, completion = sft_example(rng, "budget")
        budget, question = re.fullmatch(r"B(\d+)Q:(.+)=", prompt).groups()
        budget, k = int(budget), completion.count("check")
        tokens = len(tokenizer.encode(completion, add_special_tokens=False)) + 1  # + EOS
        assert completion == arithmetic_trace(question, k)
        assert BUDGET_RANGE[0] <= budget <= BUDGET_RANGE[1]
        if k > 0:
            assert tokens <= budget, (prompt, completion)  # the trace fits (L1-Max)
        if k < MAX_CHECKS:  # ... and one more re-check would not (so |B - L| < one re-check)
            assert len(arithmetic_trace(question, k + 1)) + 1 > budget, (prompt, completion)
        budgets.append(budget)
        ks.append(k)
    assert min(budgets) < 10 and max(budgets) > 188  # below the shortest, above the longest trace
    assert all(300 < ks.count(k) < 500 for k in range(MAX_CHECKS + 1))  # k ~ U{0..4} as in the plain toy


def test_unknown_variant_is_named():
    with pytest.raises(ValueError, match="unknown toy variant 'tags'.*plain, tagged, budget"):
        sft_example(random.Random(0), "tags")
    with pytest.raises(ValueError, match="unknown toy variant"):
        ensure_toy(variant="tags")


def test_variants_are_cached_by_version(tmp_path, monkeypatch):
    """Each variant has its own cache directory; a toy of another version there is rebuilt."""
    monkeypatch.setenv("LACONIC_CACHE", str(tmp_path))
    assert len(set(VERSIONS.values())) == len(VERSIONS)
    assert VERSIONS["tagged"] != "toy-v1-tagged"  # v1 (150 steps on top of the toy) must not be reused
    stale = build_untrained_toy(tmp_path / VERSIONS["tagged"], variant="tagged")
    info = json.loads((stale / "toy_info.json").read_text())
    (stale / "toy_info.json").write_text(json.dumps(info | {"version": "toy-v1-tagged", "sft_steps": 1}))
    path = ensure_toy(sft_steps=1, variant="tagged", progress=False, num_threads=1)
    assert path == stale
    info = json.loads((path / "toy_info.json").read_text())
    assert info["version"] == VERSIONS["tagged"] and info["variant"] == "tagged"  # rebuilt
    stamp = (path / "toy_info.json").stat().st_mtime_ns
    assert ensure_toy(sft_steps=1, variant="tagged", progress=False) == path
    assert (path / "toy_info.json").stat().st_mtime_ns == stamp  # reused, not rebuilt
    # builtin:toy-budget resolves to its own cache, built when missing (2 SFT steps here)
    cfg = ModelConfig(name_or_path="builtin:toy-budget", toy_sft_steps=2)
    with monkeypatch.context() as m:
        m.setenv("OMP_NUM_THREADS", "1")
        budget = Path(resolve_model_path(cfg, progress=False))
    info = json.loads((budget / "toy_info.json").read_text())
    assert budget == tmp_path / VERSIONS["budget"] and (info["variant"], info["sft_steps"]) == ("budget", 2)
    with pytest.raises(ValueError, match="builtin:toy-budget"):
        resolve_model_path(ModelConfig(name_or_path="builtin:toy-nope"))


@pytest.mark.parametrize("name", ["l1_exact", "l1_max"])
def test_l1_toy_recipes_state_the_budget_where_the_budget_toy_reads_it(name):
    cfg = load_config(ROOT / "recipes" / "toy" / f"{name}.yaml", [])
    assert cfg.model.name_or_path == "builtin:toy-budget"
    assert cfg.data.prompt_template == BUDGET_TEMPLATE
    low, high = cfg.data.length_budget
    assert BUDGET_RANGE[0] <= low <= high <= min(BUDGET_RANGE[1], cfg.rollout.max_new_tokens)
    assert low <= cfg.eval.length_budget <= high


def test_adactrl_toy_recipe_uses_the_tagged_toy():
    cfg = load_config(ROOT / "recipes" / "toy" / "adactrl.yaml", [])
    assert cfg.model.name_or_path == "builtin:toy-tagged"
    assert [r["name"] for r in cfg.rewards] == ["adactrl"]


def test_short_sft_lowers_loss(tokenizer):
    model = build_model(tokenizer, seed=0)
    metrics = sft(model, tokenizer, steps=30, batch_size=16, lr=3e-3, progress=False, num_threads=1)
    assert len(metrics["losses"]) == 30
    assert metrics["initial_loss"] > 4.0  # ~ln(104) at random init
    assert metrics["final_loss"] < metrics["initial_loss"] - 1.5, metrics["losses"]
    assert not model.training


def test_micro_batches_keep_the_batch_loss(tokenizer):
    """Length-sorted micro-batches compute the same token-mean loss as one padded batch."""
    runs = []
    for micro in (1, 3):
        model = build_model(tokenizer, seed=0)
        runs.append(
            sft(model, tokenizer, steps=2, batch_size=12, progress=False, micro_batches=micro, num_threads=1)
        )
    assert runs[0]["losses"] == pytest.approx(runs[1]["losses"], rel=1e-4)
