r"""LASER-D / LASER-DE: LASER's step reward with difficulty-aware, dynamically refreshed targets.

Liu et al., "Learn to Reason Efficiently with Adaptive Length-based Reward Shaping",
arXiv 2505.15612 (hkust-nlp/Laser). Base score and step term as in :mod:`rewards.laser`
(+1 / -0.5 / -1; correct and L <= L_T -> +alpha, alpha = 0.5, ``mode="reward"`` by default).

Difficulty bucket of a group from its accuracy acc = k/G (exact fractions)::

    easy    if acc >= 2/3;   medium if 1/3 <= acc < 2/3;   hard if acc < 1/3

(k counts the completions scored +1, i.e. correct *and* with an extractable answer, as the
released code counts ``score == 1``.)

Targets (:func:`bucket_targets`): for each bucket b, L_T(b) = the smallest candidate L such
that the fraction of the bucket's monitor responses (correct or not) with length <= L is at least
coverage(b) = 0.2 / 0.5 / 1.0 (easy / medium / hard). Candidates: ``lower_bound``, then every
multiple of ``step`` above it up to ``upper`` (and ``upper`` itself), as in the released code
(published: lower bound 1024 / 2048 / 4096 - default 4096 -, upper 16384, step 1024).
No candidate reaching the coverage -> ``fallback``, by default the longest monitor response (of
any bucket: "the longest response in the batch"). A bucket without monitor responses keeps its
previous target.

Monitor: the paper re-evaluates 500 training prompts at the start and every 20 steps. Feed those
results with :meth:`LaserD.set_monitor` (``{"easy": [lengths...], ...}``, e.g. from
:func:`monitor_lengths` of the monitor rollouts); targets refresh at once. Until a monitor was
given (and with ``batch_monitor=True``), :meth:`LaserD.update` uses the *current training batch*
as the monitor every ``monitor_every`` steps (the first update, then every 20th), so a batch is
always scored with targets from before it. Before any refresh a bucket's target is
``initial_target``, else ``ctx.max_length``, else ``upper``.

LASER-DE (``laser_de``) adds exploration: a wrong answer (with an extractable answer, score
-0.5) longer than L_T(bucket) and without n-gram repetition also gets +alpha (-0.5 -> 0).
Repetition (*open*; the released code uses an ad-hoc detector): the fraction of repeated
``repetition_ngram``-grams (default 20, over token ids when attached, else words) exceeds
``repetition_threshold`` (default 0.1); see :mod:`rewards.repetition`.

>>> bucket_targets({"easy": [100, 300, 500, 700, 900], "hard": [100, 1200]},
...                lower_bound=200, upper=1000, step=200)   # hard: no candidate covers 1200
{'easy': 200, 'hard': 1200}
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from typing import Any

from ._util import check_choice, check_number, correct_flags
from .base import Context, Reward, Sample, groups_of
from .laser import MODES, LaserScorer, step_term
from .registry import register_reward
from .repetition import UNITS, completion_tokens, has_repetition

__all__ = ["BUCKETS", "DEFAULT_COVERAGE", "LaserD", "LaserDE", "bucket_targets", "candidate_lengths",
           "difficulty_bucket", "monitor_lengths"]

BUCKETS = ("easy", "medium", "hard")
DEFAULT_COVERAGE = {"easy": 0.2, "medium": 0.5, "hard": 1.0}


def difficulty_bucket(n_correct: int, n: int) -> str:
    """``easy`` (k/n >= 2/3), ``medium`` (1/3 <= k/n < 2/3) or ``hard``; exact integer comparisons."""
    if 3 * n_correct >= 2 * n:
        return "easy"
    if 3 * n_correct >= n:
        return "medium"
    return "hard"


def candidate_lengths(lower_bound: int, upper: int, step: int) -> list[int]:
    """``lower_bound``, the multiples of ``step`` above it up to ``upper``, and ``upper``.

    >>> candidate_lengths(4096, 8192, 1024), candidate_lengths(500, 2500, 1024)
    ([4096, 5120, 6144, 7168, 8192], [500, 1024, 2048, 2500])
    """
    if step <= 0 or lower_bound < 0 or upper < lower_bound:
        raise ValueError(f"need 0 <= lower_bound <= upper and step > 0, got {lower_bound}, {upper}, {step}")
    out = [lower_bound]
    k = (lower_bound // step + 1) * step
    while k <= upper:
        out.append(k)
        k += step
    if out[-1] != upper:
        out.append(upper)
    return out


def bucket_targets(
    monitor: Mapping[str, Sequence[int]],
    coverage: Mapping[str, float] = DEFAULT_COVERAGE,
    lower_bound: int = 4096,
    upper: int = 16384,
    step: int = 1024,
    fallback: int | None = None,
) -> dict[str, int]:
    """Each bucket's target: the smallest candidate covering ``coverage[bucket]`` of its lengths.

    Buckets with no lengths are left out; ``fallback=None`` -> the longest length in ``monitor``.
    """
    candidates = candidate_lengths(int(lower_bound), int(upper), int(step))
    every = [int(x) for lengths in monitor.values() for x in lengths]
    if fallback is None and every:
        fallback = max(every)
    out: dict[str, int] = {}
    for bucket, lengths in monitor.items():
        if bucket not in coverage:
            raise ValueError(f"monitor bucket {bucket!r} has no coverage; known buckets: {sorted(coverage)}")
        c = coverage[bucket]
        if not 0 < c <= 1:
            raise ValueError(f"coverage of bucket {bucket!r} must be in (0, 1], got {c!r}")
        ordered = sorted(int(x) for x in lengths)
        if not ordered:
            continue
        need = c * len(ordered) - 1e-9
        for length in candidates:
            if bisect.bisect_right(ordered, length) >= need:
                out[bucket] = length
                break
        else:
            out[bucket] = int(fallback)  # type: ignore[arg-type]
    return out


def group_buckets(samples: list[Sample], correct: list[bool]) -> list[str]:
    """The difficulty bucket of each sample's group."""
    out = [""] * len(samples)
    for idx in groups_of(samples).values():
        b = difficulty_bucket(sum(correct[i] for i in idx), len(idx))
        for i in idx:
            out[i] = b
    return out


def monitor_lengths(samples: list[Sample], correct: list[bool] | None = None,
                    delimiter: str | None = "</think>") -> dict[str, list[int]]:
    """``{bucket: [lengths of every completion of the groups in that bucket]}`` for monitor rollouts."""
    if correct is None:
        correct = correct_flags(samples, delimiter)
    out: dict[str, list[int]] = {b: [] for b in BUCKETS}
    for s, b in zip(samples, group_buckets(samples, correct)):
        out[b].append(int(s.length))
    return out


@register_reward("laser_d")
class LaserD(Reward):
    """LASER-D: LASER's step reward with per-bucket targets refreshed from a monitor."""

    name = "laser_d"
    explore = False

    def __init__(
        self,
        alpha: float = 0.5,
        mode: str = "reward",
        lower_bound: int = 4096,
        upper: int = 16384,
        step: int = 1024,
        coverage: Mapping[str, float] | None = None,
        monitor_every: int = 20,
        batch_monitor: bool = True,
        initial_target: int | None = None,
        correct_score: float = 1.0,
        wrong_score: float = -0.5,
        no_answer_score: float = -1.0,
        require_think: bool = False,
        delimiter: str | None = "</think>",
        patterns: Sequence[str] | None = None,
        fallback_last_number: bool = False,
    ):
        n = self.name
        self.alpha = float(check_number(n, "alpha", alpha))
        self.mode = check_choice(n, "mode", mode, MODES)
        self.lower_bound = check_number(n, "lower_bound", lower_bound, low=0, integer=True)
        self.upper = check_number(n, "upper", upper, low=self.lower_bound, integer=True)
        self.step = check_number(n, "step", step, low=0, low_open=True, integer=True)
        self.coverage = dict(DEFAULT_COVERAGE if coverage is None else coverage)
        for b in BUCKETS:
            check_number(n, f"coverage[{b!r}]", self.coverage.get(b), low=0.0, low_open=True, high=1.0)
        self.monitor_every = check_number(n, "monitor_every", monitor_every, low=1, integer=True)
        self.batch_monitor = bool(batch_monitor)
        if initial_target is not None:
            check_number(n, "initial_target", initial_target, low=0, integer=True)
        self.initial_target = initial_target
        self.scorer = LaserScorer(n, correct_score, wrong_score, no_answer_score, require_think, delimiter,
                                  patterns, fallback_last_number)
        self.targets: dict[str, int] = {}
        self.updates = 0  # update() calls so far
        self.external = False  # a monitor was given with set_monitor: the batch is no longer used

    # ------------------------------------------------------------------ targets

    def target(self, bucket: str, ctx: Context | None = None) -> int:
        if bucket in self.targets:
            return self.targets[bucket]
        if self.initial_target is not None:
            return self.initial_target
        if ctx is not None and ctx.max_length is not None:
            return int(ctx.max_length)
        return self.upper

    def refresh(self, monitor: Mapping[str, Sequence[int]]) -> dict[str, int]:
        """Recompute targets from monitor lengths; buckets without lengths keep theirs."""
        for b, lengths in monitor.items():
            if b not in BUCKETS:
                raise ValueError(f"reward '{self.name}': unknown monitor bucket {b!r}; expected {BUCKETS}")
            for x in lengths:
                check_number(self.name, f"monitor length in {b!r}", x, low=0)
        new = bucket_targets(monitor, self.coverage, self.lower_bound, self.upper, self.step)
        self.targets.update(new)
        return new

    def set_monitor(self, lengths_by_bucket: Mapping[str, Sequence[int]]) -> dict[str, int]:
        """Monitor-set results (``{"easy": [...], "medium": [...], "hard": [...]}``): refresh now.

        Call it between steps (not between scoring and :meth:`update` of one step). From then on
        the training batch is no longer used as the monitor."""
        self.external = True
        return self.refresh(lengths_by_bucket)

    def observe_monitor(self, samples: list[Sample], ctx: Context) -> dict[str, int]:
        """Trainer hook: rollouts of the monitor set (G per prompt) -> refreshed targets."""
        correct = [k == "correct" for k in self.scorer.outcomes(samples)]
        return self.set_monitor(monitor_lengths(samples, correct))

    # ------------------------------------------------------------------ scoring

    def _wrong_bonus(self, s: Sample, target: int) -> float:
        return 0.0

    def __call__(self, samples: list[Sample], ctx: Context) -> list[float]:
        outcomes = self.scorer.outcomes(samples)
        buckets = group_buckets(samples, [k == "correct" for k in outcomes])
        out = []
        for s, kind, b in zip(samples, outcomes, buckets):
            r = self.scorer.scores[kind]
            target = self.target(b, ctx)
            if kind == "correct":
                r += step_term(s.length, target, self.alpha, self.mode)
            elif kind == "wrong":
                r += self._wrong_bonus(s, target)
            out.append(r)
        return out

    def update(self, samples: list[Sample], ctx: Context) -> None:
        if self.batch_monitor and not self.external and self.updates % self.monitor_every == 0:
            correct = [k == "correct" for k in self.scorer.outcomes(samples)]
            self.refresh(monitor_lengths(samples, correct))
        self.updates += 1

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        return {"targets": dict(self.targets), "updates": self.updates, "external": int(self.external)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        unknown = set(state) - {"targets", "updates", "external"}
        if unknown:
            raise ValueError(f"reward '{self.name}': unexpected state entries {sorted(unknown)}")
        targets = dict(state.get("targets", {}))
        for b, v in targets.items():
            if b not in BUCKETS:
                raise ValueError(f"reward '{self.name}': unknown bucket {b!r} in state")
            check_number(self.name, f"targets[{b!r}]", v, low=0, integer=True)
        self.targets = {b: int(v) for b, v in targets.items()}
        self.updates = int(check_number(self.name, "updates", state.get("updates", 0), low=0, integer=True))
        self.external = bool(state.get("external", 0))


@register_reward("laser_de")
class LaserDE(LaserD):
    """LASER-DE: LASER-D plus +alpha for long, non-repetitive wrong answers (exploration)."""

    name = "laser_de"
    explore = True

    def __init__(
        self,
        repetition_ngram: int = 20,
        repetition_threshold: float = 0.1,
        repetition_unit: str = "auto",
        **laser_d: Any,
    ):
        """Takes every :class:`LaserD` parameter too."""
        super().__init__(**laser_d)
        self.repetition_ngram = check_number(self.name, "repetition_ngram", repetition_ngram, low=1, integer=True)
        self.repetition_threshold = float(check_number(self.name, "repetition_threshold", repetition_threshold,
                                                       low=0.0, high=1.0))
        self.repetition_unit = check_choice(self.name, "repetition_unit", repetition_unit, UNITS)

    def _wrong_bonus(self, s: Sample, target: int) -> float:
        if s.length <= target:
            return 0.0
        tokens = completion_tokens(s, self.repetition_unit)
        return 0.0 if has_repetition(tokens, self.repetition_ngram, self.repetition_threshold) else self.alpha
