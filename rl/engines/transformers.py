"""The transformers engine (``rollout.engine: transformers``): sampling from the training policy
itself, no second copy of the weights, nothing to sync.
"""

from __future__ import annotations

import torch

from rl.engines.base import Rollout, SamplingParams, eos_ids_of


class TransformersEngine:
    """Batched sampling from the training model itself, prompts left-padded.

    Two decoders, the same sampling rule (logits / temperature, then nucleus ``top_p``, no top-k;
    greedy takes the argmax) and the same processed log-probs:

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
    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[Rollout]:
        expanded = [(i, p) for i, p in enumerate(prompts) for _ in range(params.n)]
        out: list[Rollout] = []
        was_training = self.model.training
        self.model.eval()
        try:
            for start in range(0, len(expanded), self.batch_size):
                out.extend(self._generate_batch(expanded[start : start + self.batch_size], params))
        finally:
            self.model.train(was_training)
        return out

    def _generate_batch(self, batch: list[tuple[int, list[int]]], params: SamplingParams) -> list[Rollout]:
        width = max(len(p) for _, p in batch)
        input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (_, p) in enumerate(batch):
            input_ids[row, width - len(p) :] = torch.tensor(p)
            attention[row, width - len(p) :] = 1
        device = next(self.model.parameters()).device
        decode = self._decode if self.drop_finished else self._hf_generate
        tokens, logprobs = decode(input_ids.to(device), attention.to(device), params)
        rollouts = []
        for row, (prompt_index, prompt) in enumerate(batch):
            ids = tokens[row]
            stop = next((k for k, t in enumerate(ids) if t in self.eos_ids), None)
            n = len(ids) if stop is None else stop + 1
            ids = ids[:n]
            rollouts.append(
                Rollout(
                    prompt_index=prompt_index,
                    prompt_ids=list(prompt),
                    completion_ids=ids,
                    text=self.tokenizer.decode(ids, skip_special_tokens=True),
                    finish_reason="length" if stop is None else "stop",
                    logprobs=logprobs[row][:n],
                )
            )
        return rollouts

    def _hf_generate(self, input_ids, attention, params: SamplingParams) -> tuple[list[list[int]], list[list[float]]]:
        width = input_ids.shape[1]
        sampling = {} if params.greedy else dict(temperature=params.temperature, top_p=params.top_p, top_k=0)
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

    def _decode(self, input_ids, attention, params: SamplingParams) -> tuple[list[list[int]], list[list[float]]]:
        """Sample up to ``max_new_tokens`` per row; a row leaves the batch once it emits EOS
        (in batches: rows are dropped when at least an eighth of the batch has finished, since
        every drop copies the KV cache; until then a finished row's tokens are discarded).

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
        for t in range(params.max_new_tokens):
            token, logp = sample_next(logits.float(), params)
            for r, tok, lp, a in zip(rows.tolist(), token.tolist(), logp.tolist(), alive.tolist()):
                if a:
                    tokens[r].append(tok)
                    logprobs[r].append(lp)
            alive = alive & ~torch.isin(token, eos)
            if t == params.max_new_tokens - 1 or not bool(alive.any()):
                break
            finished = len(alive) - int(alive.sum())
            if finished and finished >= len(alive) // 8:  # each compaction copies the cache: batch them
                keep = alive.nonzero().squeeze(1)
                cache.batch_select_indices(keep)
                rows, token, attention, next_position = rows[keep.cpu()], token[keep], attention[keep], next_position[keep]
                alive = alive[keep]
            attention = torch.cat([attention, attention.new_ones((attention.shape[0], 1))], dim=1)
            logits = self.model(input_ids=token.unsqueeze(1), attention_mask=attention, position_ids=next_position,
                                past_key_values=cache, use_cache=True).logits[:, -1]
            next_position = next_position + 1
        return tokens, logprobs


def sample_next(logits: torch.Tensor, params: SamplingParams) -> tuple[torch.Tensor, torch.Tensor]:
    """One token per row of ``logits`` ``[B, V]`` and its processed log-prob.

    Greedy: the argmax, with ``log_softmax(logits)``. Sampling: ``z = logits / temperature``; with
    ``top_p < 1`` the smallest set of most likely tokens whose probability reaches ``top_p`` is
    kept (at least one; the rule of transformers' ``TopPLogitsWarper``) and the rest set to -inf;
    the token is drawn from ``softmax(z)`` and its log-prob is ``log_softmax(z)`` at it, i.e.
    renormalised over the kept set, as vLLM's processed log-probs.

    >>> tok, lp = sample_next(torch.tensor([[0.0, 2.0, 1.0]]), SamplingParams(8, greedy=True))
    >>> tok.tolist(), round(lp.item(), 4)
    ([1], -0.4076)
    """
    if params.greedy:
        token = logits.argmax(-1)
        return token, torch.log_softmax(logits, -1).gather(-1, token.unsqueeze(-1)).squeeze(-1)
    z = logits / params.temperature
    if params.top_p < 1.0:
        sorted_z, order = torch.sort(z, descending=False, dim=-1)
        cumulative = sorted_z.softmax(-1).cumsum(-1)
        drop_sorted = cumulative <= 1 - params.top_p
        drop_sorted[..., -1] = False  # keep the most likely token
        z = z.masked_fill(drop_sorted.scatter(-1, order, drop_sorted), float("-inf"))
    logp = torch.log_softmax(z, -1)
    token = torch.multinomial(logp.exp(), 1).squeeze(-1)
    return token, logp.gather(-1, token.unsqueeze(-1)).squeeze(-1)
