"""TRAAC's "compress and continue" rollout stage (``rollout.compress``; arXiv 2510.01581, released code
``joykirat18/TRAAC`` @0bfea0a, ``verl/workers/rollout/vllm_rollout/vllm_rollout_spmd.py``
``generate_summarization_sequences`` and ``scripts/train/model_host_qwen.py``; the arithmetic:
:mod:`rl.algo.traac`).

Between generation and the all-gather (rl/train/sampling.py ``roll_round``), on each process's groups:

1. each group's pass rate over its G completions sets its difficulty (easy / medium / hard);
2. every correct, finished completion whose thinking is closed exactly once (and opened once, unless the
   prompt opened it: ``open_tag: null``) is scored by attention: the thinking, the ``summary`` request
   ("Time is up. ...") and the close tag go through the scorer model (without the prompt, as the release's
   attention server sees them), and a_t is the attention from the last
   position to each thinking token, averaged over heads and the first half of the layers. The thinking is
   cut into steps at ``keywords``; the least important steps are evicted (:func:`rl.algo.traac.evicted`);
3. the policy continues from prompt + the kept thinking tokens + the close tag (at most
   ``rollout.max_new_tokens`` in all: the release caps the batch at the longest prefix, here each request
   has its own limit). The compressed rollout is the kept thinking and close tag plus the new answer, and
   *all* its tokens are trained, the prefix too (the release's response mask; AdaptThink's forced
   prefixes are masked instead): the prefix is the current policy's own text, so its ratio is against
   the trainer's old log-prob like any sampled token;
4. each group becomes G drawn (seeded by ``train.seed``, the step and the group) from its originals and their
   compressed versions; a completion with nothing evicted has no compressed version.

The scorer: ``attention_model: initial`` is the frozen starting model (the release's separate server
holds the hub weights), ``policy`` the current policy's weights, copied in before every round (the
release's README says "policy model"). It runs the thinking once with the model's default attention and a
KV cache, then the last position alone with eager attention, so no ``[T, T]`` attention matrix is formed;
it is one more copy of the weights on the device, which ``laconic plan`` does not count.

The release splits steps on the BPE token strings (``split: release``); laconic's default ``split: words``
matches the keywords as words in the decoded text (rl/algo/traac.py says why).
"""

from __future__ import annotations

import dataclasses
import random
import statistics
import time
from typing import Any

import torch

from rl.algo.traac import (DEFAULTS, KEYWORDS, difficulty, evicted, step_importance, step_starts_release,
                           step_starts_words, uniformity)
from rl.engines.base import Rollout, SamplingParams, merged_state_items
from rl.facts import delimiter_span, make_samples


def token_pieces(tokenizer, ids: list[int]) -> list[str]:
    """Each token decoded on its own (their concatenation is the text the offsets refer to)."""
    return tokenizer.batch_decode([[t] for t in ids], skip_special_tokens=False)


def attention_row(model, ids: list[int], device) -> list[float]:
    """Attention from the last of ``ids`` to every position, averaged over heads and the first half of the
    layers: the prefix through the model's own attention with a KV cache, the last token alone with eager
    attention (``output_attentions``), so memory stays linear in the length."""
    n_layers = model.config.num_hidden_layers
    previous = model.config._attn_implementation
    with torch.no_grad():
        past = model(input_ids=torch.tensor([ids[:-1]], device=device), use_cache=True).past_key_values
        model.set_attn_implementation("eager")
        try:
            out = model(input_ids=torch.tensor([ids[-1:]], device=device), past_key_values=past, use_cache=True,
                        output_attentions=True)
        finally:
            model.set_attn_implementation(previous)
    rows = torch.stack([out.attentions[layer][0, :, -1, :].float() for layer in range(max(n_layers // 2, 1))])
    return rows.mean(dim=(0, 1)).cpu().tolist()


@dataclasses.dataclass
class Compressor:
    options: dict[str, Any]
    model_path: str
    scorer: Any = None

    @classmethod
    def build(cls, options: dict[str, Any] | None, model_path: str) -> Compressor | None:
        return None if options is None else cls({**DEFAULTS, **options}, model_path)

    def _scorer(self, run):
        if self.scorer is None:
            from transformers import AutoModelForCausalLM

            dtype = torch.bfloat16 if run.acc.device.type == "cuda" else torch.float32
            self.scorer = AutoModelForCausalLM.from_pretrained(
                self.model_path, dtype=dtype, trust_remote_code=run.cfg.model.trust_remote_code).to(run.acc.device).eval()
        if self.options["attention_model"] == "policy":  # every process takes part (ZeRO-3 gathers per bucket)
            state = dict(merged_state_items(run.acc.unwrap_model(run.policy)))
            got = self.scorer.load_state_dict(state, strict=False)
            tied = {"lm_head.weight"} if getattr(self.scorer.config, "tie_word_embeddings", False) else set()
            if got.unexpected_keys or set(got.missing_keys) - tied:
                raise ValueError(f"rollout.compress.attention_model=policy: the policy's weights do not fit the scorer "
                                 f"(missing {sorted(set(got.missing_keys) - tied)[:3]}, unexpected {got.unexpected_keys[:3]})")
        return self.scorer

    def spans(self, tokenizer, r: Rollout) -> tuple[int, int, int] | None:
        """``(think_start, close_start, close_end)`` token positions, or None when the thinking is not opened
        and closed exactly once."""
        o = self.options
        if r.text.count(o["close_tag"]) != 1 or (o["open_tag"] is not None and r.text.count(o["open_tag"]) != 1):
            return None
        close = delimiter_span(r.completion_ids, r.text, o["close_tag"], tokenizer)
        start = 0
        if o["open_tag"] is not None:
            opened = delimiter_span(r.completion_ids, r.text, o["open_tag"], tokenizer)
            if opened is None:
                return None
            start = opened[1]
        if close is None or close[0] <= start:
            return None
        return start, close[0], close[1]

    def steps(self, tokenizer, think: list[int]) -> list[int]:
        keywords = self.options["keywords"] or KEYWORDS
        if self.options["split"] == "release":
            return step_starts_release(tokenizer.convert_ids_to_tokens(think), keywords)
        pieces = token_pieces(tokenizer, think)
        ends, total = [], 0
        for p in pieces:
            total += len(p)
            ends.append(total)
        return step_starts_words(ends, "".join(pieces), keywords)

    def apply(self, run, step: int, prompts: list, rollouts: list[Rollout], samples: list, offset: int,
              params: SamplingParams) -> tuple[list[Rollout], list, dict[str, float]]:
        """This round's rollouts and samples with each group re-drawn from its originals and their compressed
        versions (group-major, as ``generate`` returns them), and ``compress/*`` metrics."""
        t0 = time.perf_counter()
        o, tok = self.options, run.tokenizer
        scorer = self._scorer(run)
        groups: dict[int, list[int]] = {}
        for i, r in enumerate(rollouts):
            groups.setdefault(r.prompt_index, []).append(i)
        level = {g: difficulty(statistics.fmean(float(bool(samples[i].correct)) for i in idx)) for g, idx in groups.items()}
        summary = tok.encode(o["summary"], add_special_tokens=False) if o["summary"] else []
        requests, shares, uniform = [], [], []
        for r, s in zip(rollouts, samples):
            span = self.spans(tok, r) if s.correct and r.finish_reason == "stop" else None
            if span is None:
                continue
            start, close0, close1 = span
            think = list(r.completion_ids[start:close0])
            starts = self.steps(tok, think)
            ids = list(r.completion_ids[:close0]) + summary + list(r.completion_ids[close0:close1])
            row = attention_row(scorer, ids, run.acc.device)[start:close0]
            importance = step_importance(row, starts)
            uniform.append(uniformity(importance))
            drop = evicted(importance, level[r.prompt_index], rho=o["rho"], max_evict=o["max_evict"],
                           uniform=o["uniformity"])
            if not drop:
                continue
            bounds, dropped = starts + [len(think)], set(drop)
            kept = [t for k, (a, b) in enumerate(zip(bounds, bounds[1:])) if k not in dropped for t in think[a:b]]
            prefix = list(r.completion_ids[:start]) + kept + list(r.completion_ids[close0:close1])
            limit = min(params.max_new_tokens, prompts[r.prompt_index].meta.get("max_new_tokens", params.max_new_tokens))
            room = limit - len(prefix)  # the prompt's own limit (per-prompt limits), minus the prefix
            if room <= 0:
                continue
            requests.append((r, prefix, room))
            shares.append(1.0 - len(kept) / max(len(think), 1))
        compressed: list[Rollout] = []
        if requests:
            one = dataclasses.replace(params, n=1)
            out = run.engine.generate([list(r.prompt_ids) + prefix for r, prefix, _ in requests], one,
                                      limits=[room for _, _, room in requests])
            for (r, prefix, _), new in zip(requests, out):
                ids = prefix + list(new.completion_ids)
                compressed.append(Rollout(r.prompt_index, list(r.prompt_ids), ids,
                                          tok.decode(ids, skip_special_tokens=True), new.finish_reason, None))
        extra = make_samples(compressed, prompts, offset, tok, run.cfg.data.delimiter) if compressed else []
        for s in extra:
            s.meta["compressed"] = True
        by_group: dict[int, list[tuple[Rollout, Any]]] = {g: [(rollouts[i], samples[i]) for i in idx] for g, idx in groups.items()}
        for r, s in zip(compressed, extra):
            by_group[r.prompt_index].append((r, s))
        new_rollouts, new_samples, kept_compressed = [], [], 0
        for g in sorted(by_group):
            pool = by_group[g]
            size = len(groups[g])
            rng = random.Random(run.cfg.train.seed * 1_000_003 + step * 7_919 + offset + g)
            chosen = rng.sample(range(len(pool)), size) if len(pool) > size else list(range(size))
            for k in chosen:
                new_rollouts.append(pool[k][0])
                new_samples.append(pool[k][1])
                kept_compressed += k >= size
        stats = {"compress/scored": float(len(uniform)), "compress/made": float(len(compressed)),
                 "compress/uniformity": statistics.fmean(uniform) if uniform else 1.0,
                 "compress/in_batch": float(kept_compressed), "time/compress": time.perf_counter() - t0,
                 "compress/evicted_share": statistics.fmean(shares) if shares else 0.0}
        return new_rollouts, new_samples, stats
