"""Built-in generated tasks: problems that need no download.

A task is a generator ``fn(n, split="train", seed=0, **kwargs) -> list[dict]`` registered in
:data:`TASKS` under a name. Every problem row is a plain dict::

    {"id": "arithmetic-3f2a9c01de", "question": "3+5+2", "answer": "10",
     "difficulty": 3, "source": "arithmetic"}

The prompt text is built elsewhere from a template (the toy uses ``"Q:{question}="``).

The "arithmetic" task (the overthinking toy's task, docs/design.md): digits 0-9 joined by ``+``,
2..5 operands; the operand count is the difficulty. Its held-out split is a property of the
question itself: a question is a *test* question iff a stable hash (sha256, never Python's
salted ``hash``) of its text falls in 10% of the buckets, so train and test never overlap,
whatever the seed or size.
"""

from __future__ import annotations

import hashlib
import random
from functools import lru_cache
from itertools import product
from typing import Callable

TaskFn = Callable[..., list[dict]]

TASKS: dict[str, TaskFn] = {}

SPLITS = ("train", "test")
_BUCKETS = 1000
_TEST_BUCKETS = 100  # 10% of the buckets are held out
_ENUMERATE_LIMIT = 10**4  # count a split's pool exactly when it has at most this many questions


def register_task(name: str) -> Callable[[TaskFn], TaskFn]:
    """Decorator: register a task generator under ``name`` (a later registration replaces it)."""

    def decorate(fn: TaskFn) -> TaskFn:
        TASKS[name] = fn
        return fn

    return decorate


def make_task_dataset(name: str, n: int, split: str = "train", seed: int = 0, **kwargs) -> list[dict]:
    """Generate ``n`` problems of the registered task ``name`` (extra kwargs go to the task)."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; registered tasks: {sorted(TASKS)}")
    return TASKS[name](n, split=split, seed=seed, **kwargs)


# ----------------------------------------------------------------------------- helpers


def _digest(question: str) -> str:
    """Stable hex digest of a question (sha256 of its UTF-8 text)."""
    return hashlib.sha256(question.encode("utf-8")).hexdigest()


def split_of(question: str) -> str:
    """The split a question belongs to: ``"test"`` for ~10% of questions, else ``"train"``."""
    bucket = int(_digest(question)[:8], 16) % _BUCKETS
    return "test" if bucket < _TEST_BUCKETS else "train"


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


# ----------------------------------------------------------------------------- arithmetic


def arithmetic_problem(question: str) -> dict:
    """The problem row for an arithmetic question such as ``"3+5+2"``."""
    operands = _parse_operands(question)
    return {
        "id": "arithmetic-" + _digest(question)[:10],
        "question": question,
        "answer": str(sum(operands)),
        "difficulty": len(operands),
        "source": "arithmetic",
    }


def _parse_operands(question: str) -> list[int]:
    """Operands of ``"3+5+2"`` as ints; a clear error for anything else."""
    parts = question.split("+")
    if len(parts) < 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"not an arithmetic question (digits joined by '+'): {question!r}")
    return [int(p) for p in parts]


def arithmetic_trace(question: str, n_checks: int) -> str:
    """The verbose reasoning trace for ``question`` with ``n_checks`` numbered re-checks.

    The step chain adds one operand at a time; each re-check repeats the chain; the trace ends
    with ``A:<answer>`` (the EOS token is appended on the tokenizer side, not here).

    >>> arithmetic_trace("3+5+2", 1)
    '3+5=8,8+2=10.check1:3+5=8,8+2=10.A:10'
    >>> arithmetic_trace("7+4", 0)
    '7+4=11.A:11'
    """
    if n_checks < 0:
        raise ValueError(f"n_checks must be >= 0, got {n_checks}")
    operands = _parse_operands(question)
    steps, total = [], operands[0]
    for x in operands[1:]:
        steps.append(f"{total}+{x}={total + x}")
        total += x
    chain = ",".join(steps) + "."
    checks = "".join(f"check{i}:{chain}" for i in range(1, n_checks + 1))
    return f"{chain}{checks}A:{total}"


@lru_cache(maxsize=None)
def _pool_size(n_operands: int, split: str) -> float:
    """How many distinct questions with ``n_operands`` lie in ``split`` (inf when not counted)."""
    if 10**n_operands > _ENUMERATE_LIMIT:
        return float("inf")
    return sum(
        split_of("+".join(digits)) == split for digits in product("0123456789", repeat=n_operands)
    )


def _draw_question(rng: random.Random, n_operands: int, split: str) -> str:
    """A uniformly random question of ``n_operands`` digits from ``split`` (rejection sampling)."""
    while True:
        question = "+".join(str(rng.randrange(10)) for _ in range(n_operands))
        if split_of(question) == split:
            return question


def sample_arithmetic(
    rng: random.Random, split: str = "train", min_operands: int = 2, max_operands: int = 5
) -> dict:
    """One random problem of ``split``: operand count uniform, then digits uniform."""
    _check_split(split)
    n_operands = rng.randint(min_operands, max_operands)
    return arithmetic_problem(_draw_question(rng, n_operands, split))


@register_task("arithmetic")
def arithmetic(
    n: int, split: str = "train", seed: int = 0, min_operands: int = 2, max_operands: int = 5
) -> list[dict]:
    """``n`` addition problems of digits 0-9 with ``min_operands..max_operands`` operands.

    Deterministic in ``(split, seed)``; a smaller ``n`` gives a prefix of a larger one. The
    operand count (difficulty) is uniform. ``train`` may repeat questions; ``test`` never does:
    once the test pool of an operand count is used up (2 operands hold only ~10 test
    questions) the remaining draws go to the other counts, so small counts are then rarer.
    """
    _check_split(split)
    if not 2 <= min_operands <= max_operands:
        raise ValueError(f"need 2 <= min_operands <= max_operands, got {min_operands}, {max_operands}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(f"arithmetic-{split}-{seed}")
    if split == "train":
        return [sample_arithmetic(rng, split, min_operands, max_operands) for _ in range(n)]
    return _unique_problems(rng, n, split, range(min_operands, max_operands + 1))


def _unique_problems(rng: random.Random, n: int, split: str, operand_counts: range) -> list[dict]:
    """``n`` distinct problems of ``split``, operand count uniform over the counts not used up."""
    available = sum(_pool_size(k, split) for k in operand_counts)
    if n > available:
        raise ValueError(f"asked for {n} unique {split} problems; only {available} exist")
    seen: set[str] = set()
    used = {k: 0 for k in operand_counts}
    rows = []
    while len(rows) < n:
        k = rng.choice([k for k in operand_counts if used[k] < _pool_size(k, split)])
        question = _draw_question(rng, k, split)
        if question in seen:
            continue
        seen.add(question)
        used[k] += 1
        rows.append(arithmetic_problem(question))
    return rows


# ----------------------------------------------------------------------------- sums (word problems)

_NAMES = ("Mia", "Leo", "Ava", "Sam", "Zoe", "Ben", "Ivy", "Max", "Emma", "Noah", "Lily", "Omar")
_ITEMS = ("apples", "stickers", "marbles", "books", "coins", "shells", "pencils", "cards", "stamps", "cookies")


def sums_question(operands: list[int], phrasing: str = "word", name: str = "Mia", item: str = "apples") -> str:
    """The question text of a sum: ``"12 + 7 + 5"`` (``plain``) or a word problem (``word``).

    >>> sums_question([12, 7], "plain")
    '12 + 7'
    >>> sums_question([12, 7, 5], "word", "Leo", "marbles")
    'Leo has 12 marbles. Leo gets 7 more marbles, and then 5 more. How many marbles does Leo have now?'
    """
    if phrasing == "plain":
        return " + ".join(map(str, operands))
    if phrasing != "word":
        raise ValueError(f"phrasing must be 'word' or 'plain', got {phrasing!r}")
    first, second, *rest = operands
    then = "".join(f", and then {x} more" for x in rest)
    return f"{name} has {first} {item}. {name} gets {second} more {item}{then}. How many {item} does {name} have now?"


@register_task("sums")
def sums(
    n: int, split: str = "train", seed: int = 0, min_operands: int = 2, max_operands: int = 2,
    min_value: int = 1, max_value: int = 9, phrasing: str = "word", split_by: str = "question",
) -> list[dict]:
    """``n`` sums of ``min_operands..max_operands`` integers in ``min_value..max_value``, phrased
    as word problems (``phrasing="word"``: "Mia has 12 apples. Mia gets 7 more apples. How many
    apples does Mia have now?") or as ``"12 + 7"`` (``plain``).

    A task for a small real model (SmolLM2-135M-Instruct, ``recipes/smollm2/sums.yaml``, whose
    setting the defaults are: two digits 1-9 as word problems): free-form answers checked by
    math-verify. The split is the arithmetic task's hash rule. ``split_by="question"`` (default)
    applies it to the question text, so small numbers still give hundreds of held-out word
    problems (the same sum may then appear in both splits under other names and items);
    ``split_by="sum"`` applies it to the canonical sum ``"12+7"``, so a sum is held out whatever
    its phrasing, name or item (the operand count is then uniform over the counts whose test pool
    is not used up). ``test`` never repeats a question (with ``split_by="sum"``, a sum).
    """
    _check_split(split)
    if not 2 <= min_operands <= max_operands:
        raise ValueError(f"need 2 <= min_operands <= max_operands, got {min_operands}, {max_operands}")
    if not 0 <= min_value <= max_value:
        raise ValueError(f"need 0 <= min_value <= max_value, got {min_value}, {max_value}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    sums_question([1, 1], phrasing)  # a bad phrasing fails before any drawing
    if split_by not in ("sum", "question"):
        raise ValueError(f"split_by must be 'sum' or 'question', got {split_by!r}")
    if split_by == "question":
        return _sums_by_question(n, split, seed, min_operands, max_operands, min_value, max_value, phrasing)
    rng = random.Random(f"sums-{split}-{seed}-{min_value}-{max_value}")
    values = range(min_value, max_value + 1)
    pools = {k: _sums_pool(k, values, split) for k in range(min_operands, max_operands + 1)}
    if split == "test" and n > sum(pools.values()):
        raise ValueError(f"asked for {n} unique {split} sums; only {sum(pools.values())} exist")
    seen: set[str] = set()
    used = {k: 0 for k in pools}
    rows = []
    while len(rows) < n:
        k = rng.choice([k for k in pools if split == "train" or used[k] < pools[k]])
        operands = [rng.choice(values) for _ in range(k)]
        canonical = "+".join(map(str, operands))
        if split_of(canonical) != split or (split == "test" and canonical in seen):
            continue
        seen.add(canonical)
        used[k] += 1
        rows.append(_sums_row(operands, sums_question(operands, phrasing, rng.choice(_NAMES), rng.choice(_ITEMS))))
    return rows


def _sums_row(operands: list[int], question: str) -> dict:
    return {"id": "sums-" + _digest(question)[:10], "question": question, "answer": str(sum(operands)),
            "difficulty": len(operands), "source": "sums"}


@lru_cache(maxsize=None)
def _sums_pool(n_operands: int, values: range, split: str) -> float:
    """How many distinct sums of ``n_operands`` values lie in ``split`` (inf when not counted)."""
    if len(values) ** n_operands > _ENUMERATE_LIMIT:
        return float("inf")
    return sum(split_of("+".join(map(str, ops))) == split for ops in product(values, repeat=n_operands))


def _sums_by_question(n: int, split: str, seed: int, min_operands: int, max_operands: int, min_value: int,
                      max_value: int, phrasing: str) -> list[dict]:
    """:func:`sums` with the split decided by the question text (``split_by="question"``)."""
    rng = random.Random(f"sums-q-{split}-{seed}-{min_value}-{max_value}")
    values = range(min_value, max_value + 1)
    people = len(_NAMES) * len(_ITEMS) if phrasing == "word" else 1
    pool = sum(people * len(values) ** k for k in range(min_operands, max_operands + 1))
    if split == "test" and n > pool // 20:  # ~10 % of the pool is test; rejection needs slack
        raise ValueError(f"asked for {n} unique {split} sums; at most {pool // 20} can be drawn")
    seen: set[str] = set()
    rows = []
    while len(rows) < n:
        operands = [rng.choice(values) for _ in range(rng.randint(min_operands, max_operands))]
        question = sums_question(operands, phrasing, rng.choice(_NAMES), rng.choice(_ITEMS))
        if split_of(question) != split or (split == "test" and question in seen):
            continue
        seen.add(question)
        rows.append(_sums_row(operands, question))
    return rows
