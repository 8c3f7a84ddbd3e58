"""Building the overthinking toy (:mod:`rl.models.toy`): supervised training on freshly generated
pairs, an atomic save with ``toy_info.json``, and the cache that :func:`ensure_toy` reuses.

``laconic toy-model OUT --variant think`` calls :func:`build_toy`; ``model.name_or_path:
builtin:toy[-variant]`` calls :func:`ensure_toy`.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

import torch
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast, get_cosine_schedule_with_warmup

from rl.models.toy import TOY_VERSION, VERSIONS, build_model, build_tokenizer, check_variant, sft_example


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
    check_variant(variant)
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


INFO_FILE = "toy_info.json"


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
    return _save_atomically(Path(out_dir), model, tokenizer, _info(0, seed, model, check_variant(variant)))


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
    version = VERSIONS[check_variant(variant)]
    path = Path(path).expanduser() if path is not None else default_toy_path(version)
    info = read_info(path)
    if info and info.get("version") == version and info.get("sft_steps") == sft_steps:
        return path
    return build_toy(path, sft_steps=sft_steps, progress=progress, variant=variant, num_threads=num_threads)
