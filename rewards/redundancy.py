r"""Step-level redundancy penalties: external (after the first correct solution) and internal (within it).

"Reconsidering Overthinking: Penalizing Internal and External Redundancy in CoT Reasoning", arXiv
2508.02178 (code: HenryZhen97/Reconsidering-Overthinking, ``rllm/rewards/compress_reward.py``). A
correct completion's reasoning ("cot": the think part, or the whole completion without a delimiter)
is cut at the *first correct solution* (FCS), the first place it states the answer; what follows is
the tail::

    ERD   = round(|tail| / |cot|, 2)                      lengths in tokens
    IRD   = mean_i clip(cos(e_i, e_{i+1}), 0, 1)          e_i: embedding of sliding window i of the FCS's sentences
    p_ext = 1 - ERD
    p_int = [sig(k(1 - IRD - c)) - sig(-kc)] / [sig(k(1 - c)) - sig(-kc)]      k = 20, c = 0.3
    r     = correct_reward * 0.5 (p_int + p_ext)          (combine: mean, the release; product: the paper's Algorithm 1)

``internal`` / ``external`` switch each penalty off (with one left, r = correct_reward * p). A wrong
answer, a completion failing the gate, or one whose reasoning never states the answer gets
``wrong_reward`` (0).

* **Gate** (with a ``delimiter``): exactly one delimiter and a non-empty think part. Without one
  (the toy) the whole completion is the cot, and it must be non-empty.
* **FCS** (:func:`first_answer_end`): the first occurrence, in the lower-cased cot, of the answer
  not preceded by a digit or one of ``+-*/^<>%&|!()[],.?`` and followed by a word boundary; for
  answers longer than 3 characters also the thousands form (``12345`` -> ``12,345``), the earlier
  winning; failing both, the first plain occurrence. Searched for the model's final answer and for
  the gold answer, the earlier winning. The cot is stripped of surrounding whitespace first.
* **Sentences** (:func:`split_sentences`): split after ``.``, ``!``, ``?`` (a run of them stays
  together: ``...``), except a ``.`` between digits and anything inside a LaTeX span (``$..$``,
  ``$$..$$``, ``\[..\]``, ``\(..\)``, ``\begin{..}..\end{..}``). N sentences give windows of
  w = max(1, floor(0.1 N)) sentences at stride t = max(1, floor(0.05 N)) (:func:`windows`); fewer
  than 2 windows (N = 1 included): IRD = 0.
* **Embeddings**: mean-pooled, L2-normalised hidden states of a ``transformers`` encoder
  (:class:`TransformersEncoder`; the release: ``sentence-transformers/all-MiniLM-L6-v2``, whose
  sentence-transformers pipeline is this pooling with 256-token inputs). ``encoder:
  builtin:tiny-bert`` builds a tiny random BERT once under the laconic cache (:func:`tiny_bert`):
  offline, for tests and the toy. Repeated windows are encoded once (an LRU cache).
* **Token counts**: from ``sample.token_ends`` (``needs = {"token_offsets"}``): the FCS runs through
  the token that completes the answer (as DECS's :func:`~rewards.decs.answer_token`), the cot
  through the token that completes its last character (a trailing EOS is not counted). Without
  token positions (e.g. standalone use), characters stand in for tokens.

Choices where the sources differ (open questions):

* *Grading.* The release grades the last ``\boxed{}`` inside the think part; the paper, and laconic,
  the final answer (after the delimiter: ``s.correct`` or the verifier). Then the think part may
  never state the answer: that counts as wrong (0), as the release's failed split does, so an answer
  that skips the reasoning earns nothing. An *empty tail* (the think part ends with the answer; the
  release cannot meet it, its think part ends with ``\boxed{..}``) is no redundancy: ERD = 0
  (``empty_tail: keep``); ``empty_tail: zero`` scores it 0 as the release's code would.
* *Combination*: ``combine: mean`` (the release, default) or ``product`` (the paper's Algorithm 1).
* *Sequence or token level*: the paper and the release score whole sequences (the default). With
  ``per_token: true`` (DECS's contract) the tokens through the FCS keep ``correct_reward`` and every
  later token gets the penalised reward r (all tokens get r when nothing follows the FCS, or token
  positions are missing); a wrong answer is 0 everywhere.

>>> from rewards.base import Sample, Context
>>> class Letters:   # a stand-in encoder: one axis per first letter
...     def encode(self, texts):
...         return [[float(t[0] == "a"), float(t[0] == "b")] for t in texts]
>>> cot = "a one. a two. b three. So 12. Check: 12."      # FCS: 4 sentences; tail ". Check: 12."
>>> s = Sample("p", 0, completion=cot, answer="12", correct=True, length=len(cot))
>>> internal_redundancy(split_sentences(cot[:first_answer_end(cot, "12")]), Letters())  # cos 1, 0, 0
0.3333333333333333
>>> r = Redundancy(encoder=Letters(), delimiter=None)([s], Context())[0]   # ERD 12/40 = 0.3
>>> round(r, 4), round(0.5 * (p_internal(1 / 3) + 0.7), 4)
(0.8497, 0.8497)
"""

from __future__ import annotations

import bisect
import math
import os
import re
import string
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._util import check_choice, check_number, correct_flags
from .base import Context, Reward, Sample
from .registry import register_reward
from .verify import extract_answer

__all__ = ["Redundancy", "TransformersEncoder", "first_answer_end", "internal_redundancy", "p_internal",
           "split_sentences", "tiny_bert", "windows"]

DEFAULT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
TINY_BERT = "builtin:tiny-bert"
TINY_BERT_VERSION = "tiny-bert-v1"
BLOCKED_BEFORE = frozenset("+-*/^<>%&|!()[],.?")


# ----------------------------------------------------------------------------- the first correct solution
def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _clean_end(text: str, needle: str) -> int | None:
    """End of the first ``needle`` in ``text`` with no digit/operator before it and a word boundary after."""
    n, start = len(needle), text.find(needle)
    while start >= 0:
        end = start + n
        before_ok = start == 0 or not (text[start - 1].isdigit() or text[start - 1] in BLOCKED_BEFORE)
        after_ok = _is_word(text[end - 1]) != (end < len(text) and _is_word(text[end]))
        if before_ok and after_ok:
            return end
        start = text.find(needle, start + 1)
    return None


def first_answer_end(cot: str, answer: str) -> int | None:
    """Where the first statement of ``answer`` ends in ``cot`` (a character offset), or None.

    >>> first_answer_end("x+12 is not it; 3*4 = 12, so 12.", "12")  # "+12" is skipped
    24
    >>> first_answer_end("we get 12,345 apples", "12345")            # the thousands form
    13
    >>> first_answer_end("x+12", "12"), first_answer_end("nothing", "12")   # the plain fallback; none
    (4, None)
    """
    answer = answer.strip().lower()
    if not answer:
        return None
    lowered = cot.lower()
    text = lowered if len(lowered) == len(cot) else cot  # offsets must stay those of cot
    ends = [_clean_end(text, answer)]
    if len(answer) > 3:
        ends.append(_clean_end(text, answer[:-3] + "," + answer[-3:]))
    found = [e for e in ends if e is not None]
    if found:
        return min(found)
    start = text.find(answer)
    return None if start < 0 else start + len(answer)


# ----------------------------------------------------------------------------- sentences and windows
_BEGIN, _END = re.compile(r"\\begin\{[^{}]+\}"), re.compile(r"\\end\{[^{}]+\}")
_BRACKETS = {"\\[": "\\]", "\\(": "\\)"}
_OPENER, _MARKS = re.compile(r"\$|\\[\[(b]"), re.compile(r"[.!?]+")


def _latex_spans(text: str) -> list[tuple[int, int]]:
    r"""Spans of ``$$..$$``, ``$..$`` (not opening with whitespace), ``\[..\]``, ``\(..\)`` and
    ``\begin{..}..\end{..}``, leftmost first, each closed by its nearest closer. Linear: an opener
    whose closer is missing once is never searched for again (none can follow)."""
    spans, i, n, dead = [], 0, len(text), set()

    def close(key: str, j: int, width: int) -> int | None:
        if j < 0:
            dead.add(key)
            return None
        return j + width

    while True:
        opener = _OPENER.search(text, i)
        if opener is None:
            return spans
        i = opener.start()
        end, two = None, text[i : i + 2]
        if two == "$$" and "$$" not in dead:
            end = close("$$", text.find("$$", i + 2), 2)
        if end is None and text[i] == "$" and i + 1 < n and not text[i + 1].isspace() and "$" not in dead:
            end = close("$", text.find("$", i + 1), 1)
        if two in _BRACKETS and two not in dead:
            end = close(two, text.find(_BRACKETS[two], i + 2), 2)
        if two == "\\b" and "begin" not in dead and (m := _BEGIN.match(text, i)):
            e = _END.search(text, m.end())
            end = close("begin", e.end() if e else -1, 0)
        if end is None:
            i += 1
        else:
            spans.append((i, end))
            i = end


def split_sentences(text: str) -> list[str]:
    r"""Sentences of ``text``: split after runs of ``.!?``, not at decimal points or inside LaTeX.

    >>> split_sentences("Pi is 3.14. Is $x. y$ fine? Yes!! \\[a. b\\] ok... end")
    ['Pi is 3.14.', 'Is $x. y$ fine?', 'Yes!!', '\\[a. b\\] ok...', 'end']
    """
    spans = _latex_spans(text)
    starts = [a for a, _ in spans]
    out, start, n = [], 0, len(text)
    for m in _MARKS.finditer(text):  # a run of marks never straddles a span's edge ($ \ ] ) } are not marks)
        a, b = m.span()
        k = bisect.bisect_right(starts, a) - 1
        if k >= 0 and spans[k][1] > a:
            continue
        if b - a == 1 and text[a] == "." and 0 < a and b < n and text[a - 1].isdigit() and text[b].isdigit():
            continue
        out.append(text[start:b])
        start = b
    out.append(text[start:])
    return [s.strip() for s in out if s.strip()]


def windows(sentences: Sequence[str], window_ratio: float = 0.1, stride_ratio: float = 0.05) -> list[str]:
    """Sliding windows: w = max(1, floor(ratio * N)) sentences joined by a space, every t sentences.

    >>> windows(["a", "b", "c"])
    ['a', 'b', 'c']
    """
    n = len(sentences)
    w, t = max(1, int(window_ratio * n)), max(1, int(stride_ratio * n))
    return [" ".join(sentences[i : i + w]) for i in range(0, n - w + 1, t)]


def _encode(encoder: Any, texts: list[str]) -> list[Sequence[float]]:
    return list(encoder.encode(texts) if hasattr(encoder, "encode") else encoder(texts))


def _unit_rows(vectors: Sequence[Sequence[float]]) -> Any:
    """The vectors as float64 rows of unit length (a zero vector stays zero)."""
    import torch

    rows = torch.tensor([list(v) for v in vectors], dtype=torch.float64)
    return torch.nn.functional.normalize(rows, dim=-1) if len(rows) else rows


def adjacent_similarities(vectors: Sequence[Sequence[float]]) -> list[float]:
    """``clip(cos(v_i, v_{i+1}), 0, 1)`` for consecutive vectors (a zero vector: similarity 0)."""
    if len(vectors) < 2:
        return []
    m = _unit_rows(vectors)
    return (m[:-1] * m[1:]).sum(-1).clamp(0.0, 1.0).tolist()


def internal_redundancy(sentences: Sequence[str], encoder: Any, window_ratio: float = 0.1,
                        stride_ratio: float = 0.05) -> float:
    """IRD: the mean clipped cosine similarity of consecutive windows (0 with fewer than 2 windows)."""
    texts = windows(sentences, window_ratio, stride_ratio)
    if len(texts) < 2:
        return 0.0
    sims = adjacent_similarities(_encode(encoder, texts))
    return math.fsum(sims) / len(sims)


def p_internal(ird: float, k: float = 20.0, c: float = 0.3) -> float:
    """The normalised sigmoid: 1 at IRD 0, ~0.5 at IRD 1 - c, 0 at IRD 1.

    >>> [round(p_internal(x), 4) for x in (0.0, 0.5, 0.7, 1.0)]
    [1.0, 0.982, 0.4988, 0.0]
    """
    sig = lambda x: 1.0 / (1.0 + math.exp(-x))  # noqa: E731
    lo, hi = sig(-k * c), sig(k * (1.0 - c))
    return (sig(k * (1.0 - min(1.0, max(0.0, ird)) - c)) - lo) / (hi - lo)


# ----------------------------------------------------------------------------- the encoder
def tiny_bert(path: str | os.PathLike | None = None) -> Path:
    """A tiny random BERT (2 layers, width 32) and a character-level WordPiece tokenizer, built once
    (seed 0) into ``path`` (default ``$LACONIC_CACHE/tiny-bert-v1`` or ``~/.cache/laconic/...``)."""
    if path is None:
        cache = os.environ.get("LACONIC_CACHE") or Path.home() / ".cache" / "laconic"
        path = Path(cache).expanduser() / TINY_BERT_VERSION
    path = Path(path)
    if (path / "config.json").is_file():
        return path
    import tempfile

    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    chars = [c for c in string.printable if not c.isspace() and not c.isupper()]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *("##" + c for c in chars if c.isalnum())]
    tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = BertModel(config, add_pooling_layer=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        os.replace(tmp, path)
    except OSError:  # another process built it first
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return path


class TransformersEncoder:
    """Mean-pooled, L2-normalised embeddings from a ``transformers`` model, loaded on first use and in
    eval mode without gradients; repeated texts come from an LRU cache of ``cache_size`` entries."""

    def __init__(self, name_or_path: str = DEFAULT_ENCODER, device: str = "cpu", max_seq_length: int = 256,
                 batch_size: int = 64, cache_size: int = 100_000):
        self.name_or_path, self.device = name_or_path, device
        self.max_seq_length, self.batch_size, self.cache_size = max_seq_length, batch_size, cache_size
        self.cache: OrderedDict[str, list[float]] = OrderedDict()
        self.model = self.tokenizer = None

    def load(self) -> None:
        from transformers import AutoModel, AutoTokenizer

        path = str(tiny_bert()) if self.name_or_path == TINY_BERT else self.name_or_path
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).to(self.device).eval()

    def encode(self, texts: Sequence[str]) -> list[list[float]]:
        import torch

        missing = sorted({t for t in texts if t not in self.cache}, key=lambda t: (len(t), t))  # fixed batches
        if missing and self.model is None:
            self.load()
        for i in range(0, len(missing), self.batch_size):
            batch = missing[i : i + self.batch_size]
            enc = self.tokenizer(batch, padding=True, truncation=True, max_length=self.max_seq_length,
                                 return_tensors="pt").to(self.device)
            with torch.no_grad():
                hidden = self.model(**enc).last_hidden_state.float()
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            for text, row in zip(batch, torch.nn.functional.normalize(pooled, dim=-1).cpu().tolist()):
                self.cache[text] = row
        out = []
        for t in texts:
            self.cache.move_to_end(t)
            out.append(self.cache[t])
        while len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)
        return out


# ----------------------------------------------------------------------------- the reward
@register_reward("redundancy")
class Redundancy(Reward):
    """Correct answers scored by ``p_int`` (internal) and ``p_ext`` (external redundancy), see above."""

    name = "redundancy"
    needs = frozenset({"token_offsets"})

    def __init__(self, internal: bool = True, external: bool = True, combine: str = "mean", k: float = 20.0,
                 c: float = 0.3, window_ratio: float = 0.1, stride_ratio: float = 0.05, empty_tail: str = "keep",
                 per_token: bool = False, encoder: Any = DEFAULT_ENCODER, device: str = "cpu",
                 batch_size: int = 64, max_seq_length: int = 256, correct_reward: float = 1.0,
                 wrong_reward: float = 0.0, delimiter: str | None = "</think>"):
        self.internal, self.external = bool(internal), bool(external)
        self.per_token = bool(per_token)  # per-token values: the trainer refuses normalize_then_sum with them
        self.combine = check_choice(self.name, "combine", combine, ("mean", "product"))
        self.empty_tail = check_choice(self.name, "empty_tail", empty_tail, ("keep", "zero"))
        self.k = float(check_number(self.name, "k", k, low=0.0, low_open=True))
        self.c = float(check_number(self.name, "c", c, low=0.0, high=1.0))
        self.window_ratio = float(check_number(self.name, "window_ratio", window_ratio, low=0.0, high=1.0))
        self.stride_ratio = float(check_number(self.name, "stride_ratio", stride_ratio, low=0.0, high=1.0))
        self.correct_reward = float(check_number(self.name, "correct_reward", correct_reward))
        self.wrong_reward = float(check_number(self.name, "wrong_reward", wrong_reward))
        if delimiter is not None and (not isinstance(delimiter, str) or not delimiter):
            raise ValueError(f"reward '{self.name}': delimiter must be a non-empty string or null, got {delimiter!r}")
        self.delimiter = delimiter
        if isinstance(encoder, str):  # loaded on first use: building the reward downloads nothing
            encoder = TransformersEncoder(encoder, device=device, batch_size=int(check_number(
                self.name, "batch_size", batch_size, low=1, integer=True)), max_seq_length=int(check_number(
                    self.name, "max_seq_length", max_seq_length, low=1, integer=True)))
        elif not (hasattr(encoder, "encode") or callable(encoder)):
            raise ValueError(f"reward '{self.name}': encoder must be a model name or path, or an object with "
                             f"encode(texts), got {encoder!r}")
        self.encoder = encoder

    def split(self, s: Sample) -> tuple[int, int, int] | None:
        """``(cot_start, fcs_end, cot_end)`` character offsets in ``s.completion``, or None when the
        gate fails or the reasoning never states the answer."""
        text = s.completion or ""
        if self.delimiter is None:
            cut = len(text)
        elif text.count(self.delimiter) != 1:
            return None
        else:
            cut = text.index(self.delimiter)
        raw = text[:cut]
        cot = raw.strip()
        if not cot:
            return None
        start = len(raw) - len(raw.lstrip())
        answers = {a.strip() for a in (extract_answer(text, self.delimiter), s.answer) if a and a.strip()}
        ends = [e for e in (first_answer_end(cot, a) for a in answers) if e is not None]
        return (start, start + min(ends), start + len(cot)) if ends else None

    def __call__(self, samples: list[Sample], ctx: Context) -> list[float | list[float]]:
        flags = correct_flags(samples, self.delimiter)
        out: list[float | list[float]] = [self.wrong_reward] * len(samples)
        parts: dict[int, tuple[int, int, int]] = {}
        for i, s in enumerate(samples):
            cut = self.split(s) if flags[i] else None
            if cut is not None and not (cut[1] == cut[2] and self.empty_tail == "zero"):
                parts[i] = cut
        ird = self.internal_degrees(samples, parts) if self.internal else {}
        for i, (start, fcs_end, end) in parts.items():
            s = samples[i]
            n_cot, n_fcs, answer_token = token_counts(s, start, fcs_end, end)
            erd = round((n_cot - n_fcs) / n_cot, 2) if n_cot > 0 else 0.0
            r = self.correct_reward * self.combined(p_internal(ird.get(i, 0.0), self.k, self.c), 1.0 - erd)
            k = answer_token + 1 if answer_token is not None else s.length
            if self.per_token and 0 < k < s.length:
                out[i] = [self.correct_reward] * k + [r] * (s.length - k)
            else:
                out[i] = r
        return out

    def combined(self, p_int: float, p_ext: float) -> float:
        if self.internal and self.external:
            return 0.5 * (p_int + p_ext) if self.combine == "mean" else p_int * p_ext
        return p_int if self.internal else p_ext if self.external else 1.0

    def internal_degrees(self, samples: list[Sample], parts: dict[int, tuple[int, int, int]]) -> dict[int, float]:
        """IRD of each sample's FCS, all windows of the batch encoded in one call."""
        texts = {i: windows(split_sentences(samples[i].completion[start:fcs_end]), self.window_ratio,
                            self.stride_ratio) for i, (start, fcs_end, _) in parts.items()}
        texts = {i: t for i, t in texts.items() if len(t) >= 2}
        unique = list(dict.fromkeys(w for t in texts.values() for w in t))
        if not unique:
            return {}
        import torch

        m, row = _unit_rows(_encode(self.encoder, unique)), {w: j for j, w in enumerate(unique)}
        left, right, owner = [], [], []  # every pair of consecutive windows, and whose it is
        for n, t in enumerate(texts.values()):
            idx = [row[w] for w in t]
            left += idx[:-1]
            right += idx[1:]
            owner += [n] * (len(t) - 1)
        sims = (m[torch.tensor(left)] * m[torch.tensor(right)]).sum(-1).clamp(0.0, 1.0)
        owner_t = torch.tensor(owner)
        total = torch.zeros(len(texts), dtype=sims.dtype).index_add_(0, owner_t, sims)
        count = torch.zeros(len(texts), dtype=sims.dtype).index_add_(0, owner_t, torch.ones_like(sims))
        return dict(zip(texts, (total / count).tolist()))


def token_counts(s: Sample, start: int, fcs_end: int, end: int) -> tuple[int, int, int | None]:
    """``(cot tokens, FCS tokens, index of the token completing the answer)`` from ``s.token_ends``;
    characters (and no token index) when token positions are missing or do not match ``s.length``."""
    ends = s.token_ends
    if ends is None or len(ends) != s.length or not ends:
        return end - start, fcs_end - start, None
    first = bisect.bisect_right(ends, start)  # the first token ending inside the cot

    def through(pos: int) -> int:  # index of the token that completes the character before pos
        return min(bisect.bisect_left(ends, pos), len(ends) - 1)

    n_cot = max(through(end) + 1 - first, 0)
    answer_token = through(fcs_end)
    return n_cot, min(max(answer_token + 1 - first, 0), n_cot), answer_token
