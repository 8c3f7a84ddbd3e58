"""The overthinking toy: a ~1.05M-parameter Llama that reasons verbosely about tiny sums.

docs/design.md, "The overthinking toy". The model is supervised on the arithmetic task
(:mod:`rl.tasks`) with traces carrying k ~ U{0..4} numbered re-checks, so its completions
vary widely in length and an RL run can teach it to skip the redundant checks::

    prompt      Q:3+5+2=
    completion  3+5=8,8+2=10.check1:3+5=8,8+2=10.A:10</s>

Tokenizer: one token per character (all printable ASCII, whitespace included) plus the
specials ``<pad> <s> </s> <unk>``; left padding; no BOS is prepended (the toy never needs
one: every prompt starts with ``Q:``), EOS is appended to training completions only.

Three variants share one SFT recipe (:func:`sft`, 500 steps from scratch) and differ only in
the training pairs (:func:`sft_example`):

``plain``   (``builtin:toy``)        the prompt and trace above.
``tagged``  (``builtin:toy-tagged``) the completion opens with ``[Easy]`` or ``[Hard]``, drawn
            uniformly and independently of the problem and of k: AdaCtrl's cold start
            (arXiv 2505.18822), which first teaches the format and leaves it to RL to learn
            which tag to write. ``toy-v2-tagged``; v1 continued a trained toy for 150 steps at
            lr 6e-4 and fell to 67 % accuracy with misspelt tags.
``budget``  (``builtin:toy-budget``) the prompt states a token budget, ``B48Q:3+5+2=``: the cold
            start that L1 / LCPO (arXiv 2503.04697) gets from its base model's instruction
            following. See :func:`budget_example` for what a budget means.
``think``   (``builtin:toy-think``)  the first pass is a one-shot answer, right on easy problems
            and often wrong on hard ones, and a re-check is the step-by-step chain, so
            re-checking pays on hard problems only (:mod:`rl.toy_think`).

Everything here runs offline on CPU: :func:`ensure_toy` builds a variant into a cache directory
the first time (5-7 minutes on one idle core) and reuses it afterwards.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import string
import tempfile
import time
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
from transformers import get_cosine_schedule_with_warmup

from rl.tasks import arithmetic_trace, sample_arithmetic
from rl.toy_think import think_example, think_traces

TOY_VERSION = "toy-v1"
# the cache directory and toy_info.json "version" of each variant; bump one to rebuild its caches
VERSIONS = {"plain": TOY_VERSION, "tagged": "toy-v2-tagged", "budget": "toy-v1-budget", "think": "toy-v3-think",
            "think-tagged": "toy-v3-think-tagged", "think-budget": "toy-v3-think-budget"}
VARIANTS = tuple(VERSIONS)
TAGS = ("[Easy]", "[Hard]")  # AdaCtrl's difficulty tags (rewards/adactrl.py)
PROMPT_TEMPLATE = "Q:{question}="
BUDGET_TEMPLATE = "B{budget}Q:{question}="  # the budget toy's prompt; rl/data.py fills {budget}
BUDGET_RANGE = (8, 200)  # budgets seen in SFT: below the shortest trace (10) to above the longest (188)
MAX_CHECKS = 4
SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>")
INFO_FILE = "toy_info.json"


# ----------------------------------------------------------------------------- tokenizer


def build_tokenizer() -> PreTrainedTokenizerFast:
    """A character-level tokenizer: every printable ASCII character is exactly one token."""
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for ch in string.printable:  # digits, letters, punctuation, space, \t \n \r \x0b \x0c
        vocab.setdefault(ch, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()  # without it decoded text would be joined by spaces
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        padding_side="left",
        clean_up_tokenization_spaces=False,
        model_max_length=256,
    )


def toy_prompt(question: str, budget: int | None = None) -> str:
    """The toy's prompt text for an arithmetic question: ``Q:3+5+2=``, or with a token budget
    (the budget toy) ``B48Q:3+5+2=``."""
    if budget is None:
        return PROMPT_TEMPLATE.format(question=question)
    return BUDGET_TEMPLATE.format(budget=budget, question=question)


# ----------------------------------------------------------------------------- model


def build_model(tokenizer: PreTrainedTokenizerFast, seed: int = 0) -> LlamaForCausalLM:
    """A randomly initialised 4-layer Llama (hidden 128, 2 heads of 64, MLP 512, tied)."""
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=64,  # vLLM's CPU attention accepts 32/64/80/96/112/128
        max_position_embeddings=256,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    gen = model.generation_config
    gen.bos_token_id = tokenizer.bos_token_id
    gen.eos_token_id = tokenizer.eos_token_id
    gen.pad_token_id = tokenizer.pad_token_id
    return model


# ----------------------------------------------------------------------------- SFT


def _check_variant(variant: str) -> str:
    if variant not in VERSIONS:
        raise ValueError(f"unknown toy variant {variant!r} (available: {', '.join(VARIANTS)})")
    return variant


def trace_tokens(question: str, n_checks: int) -> int:
    """Tokens of the completion with ``n_checks`` re-checks, EOS included (one per character)."""
    return len(arithmetic_trace(question, n_checks)) + 1


def budget_example(rng: random.Random, question: str, n_checks: int, traces: list[str] | None = None) -> int:
    """The budget stated with the trace of ``question`` that has ``n_checks`` re-checks.

    A budget B means "the longest trace that fits in B tokens": the trace has the most re-checks
    (at most 4) whose length L(k) (tokens, EOS included) is <= B, and no re-checks when even
    L(0) > B. So B is drawn uniformly from the budgets that pick exactly this k::

        B ~ U{ L(k), ..., L(k+1) - 1 }          with L(0) replaced by 8   for k = 0
                                                 and L(5) - 1 by 200      for k = 4

    Every trace then fits its budget (L <= B, L1-Max's sense), and sits within one re-check of
    it (L1-Exact's sense: |B - L| < L(k+1) - L(k), 14..38 tokens). k stays U{0..4}, as in the
    plain toy, and budgets span ``BUDGET_RANGE``: 8 lies below the shortest trace ("1+2=3.A:3"
    and EOS, 10 tokens), 200 above the longest (188). ``traces``: the question's traces for
    k = 0..4 when they are not the plain toy's (toy-think's).
    """
    def length(k: int) -> int:
        return len(traces[k]) + 1 if traces is not None else trace_tokens(question, k)

    low = length(n_checks) if n_checks > 0 else BUDGET_RANGE[0]
    high = length(n_checks + 1) - 1 if n_checks < MAX_CHECKS else BUDGET_RANGE[1]
    return rng.randint(low, high)


def sft_example(rng: random.Random, variant: str = "plain") -> tuple[str, str]:
    """One fresh train-split ``(prompt, completion)`` pair with k ~ U{0..4} re-checks.

    ``tagged``: the completion opens with one of :data:`TAGS`, drawn uniformly, independent of the
    problem and of k. ``budget``: the prompt states a budget (:func:`budget_example`). ``think*``:
    toy-think's traces (:func:`rl.toy_think.think_example`), alone or with the tag / budget; a
    wrong one-shot answer the model must not learn to write is appended to the prompt (no loss).
    """
    _check_variant(variant)
    problem = sample_arithmetic(rng, "train")
    question, k = problem["question"], rng.randint(0, MAX_CHECKS)  # think*: drawn too (same stream), unused
    hidden, traces = "", None
    if variant.startswith("think"):  # hidden: a wrong one-shot answer the model sees but is not trained on
        hidden, completion, k = think_example(rng, question, MAX_CHECKS)
        traces = think_traces(question, MAX_CHECKS) if variant.endswith("budget") else None
    else:
        completion = arithmetic_trace(question, k)
    if variant.endswith("tagged"):
        tag = rng.choice(TAGS)
        hidden, completion = (tag + hidden, completion) if hidden else ("", tag + completion)
    budget = budget_example(rng, question, k, traces) if variant.endswith("budget") else None
    return toy_prompt(question, budget) + hidden, completion


def collate_sft(
    pairs: list[tuple[str, str]], tokenizer: PreTrainedTokenizerFast
) -> dict[str, torch.Tensor]:
    """Right-pad ``prompt + completion + EOS`` to the batch's longest; label only completions.

    Right padding keeps position ids 0..L-1 valid without passing them explicitly.
    """
    rows, labels = [], []
    for prompt, completion in pairs:
        p_ids = tokenizer.encode(prompt, add_special_tokens=False)
        c_ids = tokenizer.encode(completion, add_special_tokens=False) + [tokenizer.eos_token_id]
        rows.append(p_ids + c_ids)
        labels.append([-100] * len(p_ids) + c_ids)
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id
    return {
        "input_ids": torch.tensor([r + [pad] * (width - len(r)) for r in rows]),
        "attention_mask": torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows]),
        "labels": torch.tensor([lab + [-100] * (width - len(lab)) for lab in labels]),
    }


def sft_micro_batches(
    pairs: list[tuple[str, str]], tokenizer: PreTrainedTokenizerFast, n_micro: int
) -> list[dict[str, torch.Tensor]]:
    """Sort one batch by length and cut it into ``n_micro`` separately padded micro-batches.

    Completions span ~10..190 tokens, so one padded batch is mostly padding; length-sorted
    micro-batches cut the work about in half. The step's gradient is unchanged when the
    summed token losses of all micro-batches are divided by the batch's token count.
    """
    pairs = sorted(pairs, key=lambda pc: len(pc[0]) + len(pc[1]))  # one token per character
    size = math.ceil(len(pairs) / n_micro)
    return [collate_sft(pairs[i : i + size], tokenizer) for i in range(0, len(pairs), size)]


def _summed_token_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum of next-token cross-entropies over the labelled (completion) positions."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
        batch["labels"][:, 1:].reshape(-1),
        ignore_index=-100,
        reduction="sum",
    )


def _train_step(model, micro: list[dict[str, torch.Tensor]]) -> tuple[float, int]:
    """Accumulate gradients of the batch's token-mean loss; return it and the batch's tokens."""
    total = sum(int((m["labels"][:, 1:] != -100).sum()) for m in micro)
    loss = 0.0
    for m in micro:
        loss_sum = _summed_token_loss(model, m)
        (loss_sum / total).backward()
        loss += loss_sum.item() / total
    return loss, sum(int(m["attention_mask"].sum()) for m in micro)


def _default_threads() -> int:
    """Torch threads for SFT: ``$OMP_NUM_THREADS`` when set, else the usable cores, at most 8.

    Deterministic on purpose (a load-average guess picked 1 thread right after a pip install and
    made the build 1.5x slower). On a 2-core machine shared with another busy process, two threads
    ran 5-7x slower than one: pass ``num_threads=1`` there (the tests do).
    """
    if os.environ.get("OMP_NUM_THREADS", "").isdigit() and int(os.environ["OMP_NUM_THREADS"]) > 0:
        return int(os.environ["OMP_NUM_THREADS"])
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


def sft(
    model: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    steps: int = 500,
    batch_size: int = 64,
    lr: float = 2.5e-3,
    warmup: int | None = None,
    seed: int = 0,
    progress: bool = True,
    num_threads: int | None = None,
    micro_batches: int = 4,
    variant: str = "plain",
) -> dict:
    """Supervised training on freshly generated train problems; loss on completion tokens only.

    AdamW (weight decay 0.01) with linear warmup (default 5% of ``steps``) then cosine decay.
    The loss is the token-mean over the whole batch, computed in ``micro_batches``
    length-sorted pieces (:func:`sft_micro_batches`) to save padding.
    ``num_threads`` defaults to the usable cores (:func:`_default_threads`); the previous torch
    setting is restored afterwards. ``variant``: which pairs, see :func:`sft_example`.
    Returns ``{"steps", "initial_loss", "final_loss" (mean of the last 10 steps), "losses"
    (per-token mean of each step), "seconds", "tokens" (non-pad tokens seen)}``.
    """
    from tqdm.auto import tqdm

    if min(steps, batch_size, micro_batches) < 1:
        raise ValueError(
            f"steps, batch_size, micro_batches must be >= 1, got {steps}, {batch_size}, {micro_batches}"
        )
    _check_variant(variant)
    warmup = max(1, steps // 20) if warmup is None else warmup
    rng = random.Random(f"sft-{seed}")
    torch.manual_seed(seed)
    old_threads = torch.get_num_threads()
    torch.set_num_threads(num_threads or _default_threads())
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    scheduler = get_cosine_schedule_with_warmup(optimizer, warmup, steps)
    model.train()
    losses, tokens, start = [], 0, time.perf_counter()
    try:
        bar = tqdm(range(steps), desc=f"toy SFT ({variant})", disable=not progress)
        for _ in bar:
            pairs = [sft_example(rng, variant) for _ in range(batch_size)]
            loss, n_tokens = _train_step(model, sft_micro_batches(pairs, tokenizer, micro_batches))
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss)
            tokens += n_tokens
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
    finally:
        torch.set_num_threads(old_threads)
        model.eval()
    return {
        "steps": steps,
        "initial_loss": losses[0],
        "final_loss": sum(losses[-10:]) / len(losses[-10:]),
        "losses": losses,
        "seconds": time.perf_counter() - start,
        "tokens": tokens,
    }


# ----------------------------------------------------------------------------- saving


def _save_atomically(out_dir: Path, model, tokenizer, info: dict) -> Path:
    """Save model, tokenizer and ``toy_info.json`` into a temp dir beside ``out_dir``, then rename.

    An existing ``out_dir`` is replaced; a reader never sees a half-written directory.
    """
    out_dir = Path(out_dir).expanduser().resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
            os.replace(out_dir, old / "toy")
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _info(steps: int, seed: int, model, variant: str) -> dict:
    return {
        "version": VERSIONS[variant],
        "variant": variant,
        "sft_steps": steps,
        "seed": seed,
        "params": sum(p.numel() for p in model.parameters()),
    }


def build_toy(
    out_dir: str | os.PathLike,
    sft_steps: int = 500,
    seed: int = 0,
    progress: bool = True,
    variant: str = "plain",
    num_threads: int | None = None,
) -> Path:
    """Build the tokenizer and model, run :func:`sft` on ``variant``'s pairs, save both into ``out_dir``."""
    tokenizer = build_tokenizer()
    model = build_model(tokenizer, seed=seed)
    metrics = sft(model, tokenizer, steps=sft_steps, seed=seed, progress=progress, variant=variant,
                  num_threads=num_threads)
    info = _info(sft_steps, seed, model, variant) | {
        "final_loss": metrics["final_loss"],
        "seconds": round(metrics["seconds"], 1),
    }
    return _save_atomically(Path(out_dir), model, tokenizer, info)


def build_untrained_toy(out_dir: str | os.PathLike, seed: int = 0, variant: str = "plain") -> Path:
    """Save a randomly initialised toy (no SFT) the same way: for fast tests."""
    tokenizer = build_tokenizer()
    model = build_model(tokenizer, seed=seed)
    return _save_atomically(Path(out_dir), model, tokenizer, _info(0, seed, model, _check_variant(variant)))


def default_toy_path(version: str = TOY_VERSION) -> Path:
    """``$LACONIC_CACHE/<version>``, or ``~/.cache/laconic/<version>`` (e.g. ``toy-v1``)."""
    cache = os.environ.get("LACONIC_CACHE") or Path.home() / ".cache" / "laconic"
    return Path(cache).expanduser() / version


def read_info(path: str | os.PathLike) -> dict | None:
    """The ``toy_info.json`` of a toy directory, or None when there is none."""
    try:
        return json.loads((Path(path) / INFO_FILE).read_text())
    except (OSError, ValueError):
        return None


def ensure_toy(
    path: str | os.PathLike | None = None,
    sft_steps: int = 500,
    progress: bool = True,
    variant: str = "plain",
    num_threads: int | None = None,
) -> Path:
    """The path of a trained toy, building it first unless a matching one is cached there.

    ``path`` defaults to ``default_toy_path(VERSIONS[variant])``. A cached toy matches when its
    ``toy_info.json`` has the variant's version and ``sft_steps``.
    """
    version = VERSIONS[_check_variant(variant)]
    path = Path(path).expanduser() if path is not None else default_toy_path(version)
    info = read_info(path)
    if info and info.get("version") == version and info.get("sft_steps") == sft_steps:
        return path
    return build_toy(path, sft_steps=sft_steps, progress=progress, variant=variant, num_threads=num_threads)
