"""The overthinking toy and the built-in arithmetic task (rl/tasks.py, rl/toy.py)."""

from __future__ import annotations

import itertools
import json
import random
import string

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rl.tasks import TASKS, arithmetic, arithmetic_trace, make_task_dataset, split_of
from rl.toy import (
    TAGS,
    build_model,
    build_tokenizer,
    build_untrained_toy,
    ensure_tagged_toy,
    ensure_toy,
    sft,
    sft_example,
    toy_prompt,
)


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


def test_tagged_toy_opens_with_a_tag_and_is_cached(tmp_path, monkeypatch):
    rng = random.Random(0)
    heads = [sft_example(rng, TAGS)[1][:6] for _ in range(200)]
    assert set(heads) == set(TAGS) and 60 < heads.count("[Easy]") < 140  # uniform, independent
    monkeypatch.setenv("LACONIC_CACHE", str(tmp_path))
    build_untrained_toy(tmp_path / "toy-v1")  # stands in for the trained base (sft_steps=0)
    path = ensure_tagged_toy(base_sft_steps=0, steps=2, progress=False, num_threads=1)
    info = json.loads((path / "toy_info.json").read_text())
    assert path == tmp_path / "toy-v1-tagged" and info["sft_steps"] == 2 and info["base"]["sft_steps"] == 0
    stamp = (path / "toy_info.json").stat().st_mtime_ns
    assert ensure_tagged_toy(base_sft_steps=0, steps=2, progress=False) == path
    assert (path / "toy_info.json").stat().st_mtime_ns == stamp  # reused, not rebuilt


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
