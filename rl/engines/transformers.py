"""The transformers engine (``rollout.engine: transformers``): sampling from the training policy
itself, no second copy of the weights, nothing to sync.
"""

from __future__ import annotations

import time

import torch

from rl.engines.base import Rollout, SamplingParams, cut_at_stop, eos_ids_of, prompt_limits


class TransformersEngine:
    """Batched sampling from the training model itself, prompts left-padded.

    Two decoders, the same sampling rule (:func:`sample_next`: repetition penalty, temperature,
    min-p, top-k, top-p, vLLM's order; greedy takes the argmax of the penalised logits) and the
    same processed log-probs; stop strings end a completion with the token that completes one, its
    text cut before it (vLLM's rule, :func:`stop_at`):

    - ``drop_finished=True`` (default, ``rollout.drop_finished``): laconic's own loop over a
      ``DynamicCache`` that removes a completion's row from the batch (and its KV cache) as soon
      as it emits EOS, so the work follows the tokens actually generated, not ``rows x longest``.
    - ``drop_finished=False``: ``model.generate``, which keeps finished rows in every forward
      pass until the longest completion ends (bit-exact with runs made before the loop existed).
    """

    reads_policy = True  # ZeRO-3: generation needs the policy's weights gathered (rl.run.distributed.rollout_weights)

    def __init__(self, model: torch.nn.Module, tokenizer, batch_size: int = 256, drop_finished: bool = True):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.drop_finished = drop_finished
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.eos_ids = eos_ids_of(model, tokenizer)
        self.synced_gpus = None  # None: transformers decides; False where weights are gathered (rl/run/distributed.py)

    def sync_weights(self, model: torch.nn.Module) -> None:
        self.model = model  # same object: nothing to copy

    @torch.no_grad()
    def generate(self, prompts: list[list[int]], params: SamplingParams,
                 limits: list[int] | None = None) -> list[Rollout]:
        """``params.n`` completions per prompt, prompt-major; with ``limits`` (one per prompt, capped at
        ``params.max_new_tokens``, :func:`rl.engines.base.prompt_limits`) each row stops at its own
        limit (finish reason ``length``), always in laconic's own decoder (``model.generate`` has one
        limit per call, so ``drop_finished=False`` does not apply to such a call)."""
        limits = prompt_limits(limits, params, len(prompts))
        expanded = [(i, p) for i, p in enumerate(prompts) for _ in range(params.n)]
        out: list[Rollout] = []
        was_training = self.model.training
        self.model.eval()
        try:
            for start in range(0, len(expanded), self.batch_size):
                batch = expanded[start : start + self.batch_size]
                out.extend(self._generate_batch(batch, params, None if limits is None else [limits[i] for i, _ in batch]))
        finally:
            self.model.train(was_training)
        return out

    @torch.no_grad()
    def generate_partial(self, prompts: list[list[int]], params: SamplingParams, limits: list[int],
                         groups: list[int], needed: int) -> list[Rollout]:
        """One completion per prompt (:meth:`rl.engines.base.PartialEngine.generate_partial`): prompt
        ``i`` writes at most ``limits[i]`` tokens; decoding stops once ``needed`` groups (``groups[i]``
        labels prompt ``i``) have all their completions finished, and the others come back with finish
        reason ``abort`` (tokens so far; none when their batch of ``batch_size`` had not started)."""
        if params.n != 1:
            raise ValueError("generate_partial writes one completion per prompt: repeat a prompt for a group")
        members: dict[int, int] = {}
        for g in groups:
            members[g] = members.get(g, 0) + 1
        finished: dict[int, int] = {g: 0 for g in members}
        self.last_trace = []
        out: list[Rollout] = []
        was_training = self.model.training
        self.model.eval()
        try:
            for start in range(0, len(prompts), self.batch_size):
                idx = list(range(start, min(start + self.batch_size, len(prompts))))
                if sum(finished[g] == members[g] for g in finished) >= needed:  # this batch never starts
                    out.extend(Rollout(i, list(prompts[i]), [], "", "abort", [] if params.logprobs else None) for i in idx)
                    continue

                def until(done: list[bool], idx=idx) -> bool:
                    count = dict(finished)
                    for i, d in zip(idx, done):
                        count[groups[i]] += d
                    return sum(count[g] == members[g] for g in count) >= needed

                batch = self._generate_batch([(i, prompts[i]) for i in idx], params, [limits[i] for i in idx], until)
                for i, r in zip(idx, batch):
                    finished[groups[i]] += r.finish_reason != "abort"
                out.extend(batch)
        finally:
            self.model.train(was_training)
        return out

    def _generate_batch(self, batch: list[tuple[int, list[int]]], params: SamplingParams,
                        limits: list[int] | None = None, until=None) -> list[Rollout]:
        width = max(len(p) for _, p in batch)
        input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (_, p) in enumerate(batch):
            input_ids[row, width - len(p) :] = torch.tensor(p)
            attention[row, width - len(p) :] = 1
        device = next(self.model.parameters()).device
        aborted: set[int] = set()
        if limits is not None or until is not None:  # per-row limits, generate_partial: always laconic's own loop
            tokens, logprobs, aborted = self._decode(input_ids.to(device), attention.to(device), params, limits, until)
        else:
            decode = self._decode if self.drop_finished else self._hf_generate
            tokens, logprobs = decode(input_ids.to(device), attention.to(device), params)[:2]
        rollouts = []
        for row, (prompt_index, prompt) in enumerate(batch):
            ids = tokens[row]
            if row in aborted:
                rollouts.append(Rollout(prompt_index, list(prompt), ids, self.tokenizer.decode(ids, skip_special_tokens=True),
                                        "abort", logprobs[row]))
                continue
            stop = next((k for k, t in enumerate(ids) if t in self.eos_ids), None)
            n = len(ids) if stop is None else stop + 1
            ids = ids[:n]
            cut, text = stop_at(ids, params.stop, self.tokenizer) if params.stop else (None, None)
            if cut is not None:
                ids, n, stop = ids[:cut], cut, cut - 1
            rollouts.append(
                Rollout(
                    prompt_index=prompt_index,
                    prompt_ids=list(prompt),
                    completion_ids=ids,
                    text=text if cut is not None else self.tokenizer.decode(ids, skip_special_tokens=True),
                    finish_reason="length" if stop is None else "stop",
                    logprobs=logprobs[row][:n],
                )
            )
        return rollouts

    def _hf_generate(self, input_ids, attention, params: SamplingParams) -> tuple[list[list[int]], list[list[float]]]:
        width = input_ids.shape[1]
        sampling = {} if params.greedy else dict(temperature=params.temperature, top_p=params.top_p,
                                                  top_k=params.top_k, min_p=params.min_p or None)
        if params.repetition_penalty != 1.0:  # transformers' own processor would count the left padding as seen
            from transformers import LogitsProcessorList

            pad = (attention == 0).sum(-1)
            sampling["logits_processor"] = LogitsProcessorList([_SeenPenalty(params.repetition_penalty, pad)])
        # stop strings: cut afterwards (generate's stop_strings also match across the prompt's end, vLLM's do not)
        gen = self.model.generate(
            input_ids=input_ids,
            attention_mask=attention,
            max_new_tokens=params.max_new_tokens,
            do_sample=not params.greedy,
            pad_token_id=self.pad_id,
            eos_token_id=sorted(self.eos_ids),
            output_scores=True,
            return_dict_in_generate=True,
            **sampling,
            **({} if self.synced_gpus is None else {"synced_gpus": self.synced_gpus}),
        )
        new_tokens = gen.sequences[:, width:].cpu()
        # scores: one [B, V] tensor of processed logits per generated position
        scores = torch.stack(gen.scores, dim=1).float()  # [B, T, V]
        logprobs = torch.log_softmax(scores, dim=-1).gather(-1, new_tokens.unsqueeze(-1).to(scores.device))
        return new_tokens.tolist(), logprobs.squeeze(-1).cpu().tolist()

    def _decode(self, input_ids, attention, params: SamplingParams, limits: list[int] | None = None,
                until=None) -> tuple[list[list[int]], list[list[float]], set[int]]:
        """Sample up to ``max_new_tokens`` per row; a row leaves the batch once it emits EOS
        (in batches: rows are dropped when at least an eighth of the batch has finished, since
        every drop copies the KV cache; until then a finished row's tokens are discarded).

        ``limits``: a limit per row instead (a row that reaches its own ends as ``length``);
        ``until(done)`` (``done``: per row, finished or not) is asked after every token and ends the
        loop when it says so: the rows still running are returned as the third value (aborted).
        With ``until``, ``self.last_trace`` gets ``(time, rows running)`` per token step.

        Positions are counted over real tokens (``cumsum(mask) - 1``), as in training
        (:func:`rl.train.update.make_batch`) and in ``generate``; the cache keeps the left padding,
        masked out by ``attention``.
        """
        from transformers import DynamicCache

        B = input_ids.shape[0]
        tokens: list[list[int]] = [[] for _ in range(B)]
        logprobs: list[list[float]] = [[] for _ in range(B)]
        eos = torch.tensor(sorted(self.eos_ids), device=input_ids.device)
        rows = torch.arange(B)  # batch row -> index into tokens/logprobs
        position = (attention.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=self.model.config)
        logits = self.model(input_ids=input_ids, attention_mask=attention, position_ids=position,
                            past_key_values=cache, use_cache=True, logits_to_keep=1).logits[:, -1]
        next_position = position[:, -1:] + 1
        alive = torch.ones(B, dtype=torch.bool, device=input_ids.device)
        seen = None  # [B, V] the tokens of prompt and completion so far (repetition penalty)
        if params.repetition_penalty != 1.0:
            V = logits.shape[-1]
            seen = torch.zeros(B, V + 1, dtype=torch.bool, device=input_ids.device)
            seen.scatter_(1, input_ids.masked_fill(attention == 0, V), True)  # left padding -> column V, dropped
            seen = seen[:, :V]
        limit = torch.tensor(limits if limits is not None else [params.max_new_tokens] * B, device=input_ids.device)
        alive = alive & (limit > 0)
        written = torch.zeros(B, dtype=torch.long, device=input_ids.device)  # tokens per batch row
        trace = self.last_trace if until is not None else []  # generate_partial's, over its batches
        for t in range(int(limit.max()) if B else 0):
            trace.append((time.perf_counter(), int(alive.sum())))
            token, logp = sample_next(logits.float(), params, seen)
            ended = []
            for r, tok, lp, a in zip(rows.tolist(), token.tolist(), logp.tolist(), alive.tolist()):
                if a:
                    tokens[r].append(tok)
                    logprobs[r].append(lp)
                ended.append(bool(params.stop) and a and any(
                    x in self.tokenizer.decode(tokens[r][-_window(params.stop):], skip_special_tokens=True)
                    for x in params.stop))
            if seen is not None:
                seen[torch.arange(len(token), device=seen.device), token] = True
            written = written + alive.long()
            alive = alive & ~torch.isin(token, eos) & ~torch.tensor(ended, dtype=torch.bool, device=alive.device)
            alive = alive & (written < limit)
            if not bool(alive.any()):
                break
            if until is not None:
                done = [True] * B
                for r, a in zip(rows.tolist(), alive.tolist()):
                    done[r] = not a
                if until(done):
                    return tokens, logprobs, {r for r, a in zip(rows.tolist(), alive.tolist()) if a}
            finished = len(alive) - int(alive.sum())
            if finished and finished >= len(alive) // 8:  # each compaction copies the cache: batch them
                keep = alive.nonzero().squeeze(1)
                cache.batch_select_indices(keep)
                rows, token, attention, next_position = rows[keep.cpu()], token[keep], attention[keep], next_position[keep]
                alive, written, limit = alive[keep], written[keep], limit[keep]
                if seen is not None:
                    seen = seen[keep]
            attention = torch.cat([attention, attention.new_ones((attention.shape[0], 1))], dim=1)
            logits = self.model(input_ids=token.unsqueeze(1), attention_mask=attention, position_ids=next_position,
                                past_key_values=cache, use_cache=True).logits[:, -1]
            next_position = next_position + 1
        return tokens, logprobs, set()


def sample_next(logits: torch.Tensor, params: SamplingParams,
                seen: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One token per row of ``logits`` ``[B, V]`` and its processed log-prob, in vLLM's order:

    1. repetition penalty (``seen`` ``[B, V]``: the tokens of prompt and completion so far): a seen
       token's logit is divided by the penalty when positive, multiplied when negative;
    2. greedy: the argmax, with ``log_softmax`` of the penalised logits; else ``z = logits / temperature``;
    3. min-p: tokens with ``p < min_p * p_max`` dropped; 4. top-k: all but the k largest dropped;
    5. top-p: the smallest set of most likely tokens whose probability reaches ``top_p`` kept (at
       least one; transformers' ``TopPLogitsWarper`` rule);

    dropped tokens are set to -inf; the token is drawn from ``softmax(z)`` and its log-prob is
    ``log_softmax(z)`` at it, i.e. renormalised over the kept set, as vLLM's processed log-probs.

    >>> tok, lp = sample_next(torch.tensor([[0.0, 2.0, 1.0]]), SamplingParams(8, greedy=True))
    >>> tok.tolist(), round(lp.item(), 4)
    ([1], -0.4076)
    >>> tok, _ = sample_next(torch.tensor([[0.0, 2.0, 1.0]]), SamplingParams(8, greedy=True, repetition_penalty=4.0),
    ...                      seen=torch.tensor([[False, True, False]]))   # 2 / 4 = 0.5 < 1
    >>> tok.tolist()
    [2]
    >>> _, lp = sample_next(torch.tensor([[0.0, 2.0, 1.0]]), SamplingParams(8, top_k=1))
    >>> lp.item()
    0.0
    """
    if seen is not None and params.repetition_penalty != 1.0:
        logits = penalise(logits, seen, params.repetition_penalty)
    if params.greedy:
        token = logits.argmax(-1)
        return token, torch.log_softmax(logits, -1).gather(-1, token.unsqueeze(-1)).squeeze(-1)
    z = logits / params.temperature
    if params.min_p > 0.0:
        p = z.softmax(-1)
        z = z.masked_fill(p < params.min_p * p.max(-1, keepdim=True).values, float("-inf"))
    if 0 < params.top_k < z.shape[-1]:
        kth = z.topk(params.top_k, dim=-1).values[..., -1:]
        z = z.masked_fill(z < kth, float("-inf"))
    if params.top_p < 1.0:
        sorted_z, order = torch.sort(z, descending=False, dim=-1)
        cumulative = sorted_z.softmax(-1).cumsum(-1)
        drop_sorted = cumulative <= 1 - params.top_p
        drop_sorted[..., -1] = False  # keep the most likely token
        z = z.masked_fill(drop_sorted.scatter(-1, order, drop_sorted), float("-inf"))
    logp = torch.log_softmax(z, -1)
    token = torch.multinomial(logp.exp(), 1).squeeze(-1)
    return token, logp.gather(-1, token.unsqueeze(-1)).squeeze(-1)


def penalise(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """The repetition penalty (CTRL, arXiv 1909.05858; vLLM's and transformers' rule): a seen token's
    logit divided by ``penalty`` when positive, multiplied when negative."""
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalised, logits)


class _SeenPenalty:
    """``model.generate``'s repetition penalty over the real tokens only: the first ``pad[i]``
    positions of row i are its left padding."""

    def __init__(self, penalty: float, pad: torch.Tensor):
        self.penalty, self.pad = penalty, pad

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        V = scores.shape[-1]
        real = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0) >= self.pad.to(input_ids.device).unsqueeze(1)
        seen = torch.zeros(input_ids.shape[0], V + 1, dtype=torch.bool, device=scores.device)
        seen.scatter_(1, input_ids.masked_fill(~real, V), True)
        return penalise(scores, seen[:, :V], self.penalty)


def _window(stop: tuple[str, ...]) -> int:
    """Tokens enough to hold any stop string (a token is at least one character) and one more."""
    return max(len(s) for s in stop) + 1


def stop_at(ids: list[int], stop: tuple[str, ...], tokenizer) -> tuple[int | None, str | None]:
    """vLLM's stop strings on token ids: ``(k, text)`` where the ``k`` first ids are the completion
    (the k-th completes the first stop string to appear) and ``text`` its decoded text cut before
    that string; ``(None, None)`` when none appears. Each step decodes a window of the last few ids
    only, so the scan is linear in the completion's length."""
    w = _window(stop)
    for k in range(1, len(ids) + 1):
        tail = tokenizer.decode(ids[max(0, k - w):k], skip_special_tokens=True)
        if any(s in tail for s in stop):
            return k, cut_at_stop(tokenizer.decode(ids[:k], skip_special_tokens=True), stop)
    return None, None
