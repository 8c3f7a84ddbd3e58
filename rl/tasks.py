"""Built-in generated tasks: problems that need no download.

A task is a generator ``fn(n, split="train", seed=0, **kwargs) -> list[dict]`` registered in
:data:`TASKS` under a name. Every problem row is a plain dict::

    {"id": "arithmetic-3f2a9c01de", "question": "3+5+2", "answer": "10",
     "difficulty": 3, "source": "arithmetic"}

The prompt text is built elsewhere from a template (the toy uses ``"Q:{question}="``).

The "arithmetic" task (the overthinking toy's task, DESIGN.md): digits 0-9 joined by ``+``,
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
