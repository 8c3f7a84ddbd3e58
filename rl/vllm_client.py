"""Rollouts from a separate vLLM server process (``rollout.engine: vllm-server``).

Start the server first (it loads the same model directory as the policy)::

    python -m rl.vllm_server --model builtin:smollm2 --dtype bfloat16 --port 8000

and point the trainer at it with ``rollout.vllm_server_url``. After every update
:meth:`VLLMServerEngine.sync_weights` sends the whole (LoRA-merged) state dict as safetensors
bytes, in parts of at most ``part_bytes``; the server applies the complete set in one
``reload_weights`` call and resets its prefix cache (rl/vllm_server.py says why not NCCL).
With several training processes only rank 0 pushes, and every rank waits at a barrier, so no
process samples from stale weights. stdlib ``urllib`` only.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import torch

from .rollout import Rollout, SamplingParams
from .vllm_engine import merged_state_items

GiB = 1 << 30


class VLLMServerEngine:
    """The :class:`~rl.rollout.RolloutEngine` over HTTP to ``python -m rl.vllm_server``."""

    def __init__(self, url: str, tokenizer, *, dtype: str | torch.dtype = "bfloat16", timeout: float = 600.0,
                 eos_ids: set[int] | None = None, part_bytes: int = GiB, connect_timeout: float = 0.0):
        from .rollout import eos_ids_of

        self.url = url.rstrip("/")
        self.tokenizer = tokenizer
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.eos_ids = set(eos_ids) if eos_ids else eos_ids_of(None, tokenizer)
        self.dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        self.timeout = timeout
        self.part_bytes = part_bytes
        self.last_push_seconds: float | None = None
        self.info = self.wait_ready(connect_timeout)
        served = self.info.get("dtype")
        if served and served != str(self.dtype).removeprefix("torch."):
            self.dtype = getattr(torch, served)  # push in the server's dtype: no conversion there

    # ------------------------------------------------------------------ HTTP
    def _request(self, route: str, data: bytes | None = None, headers: dict | None = None,
                 timeout: float | None = None) -> dict:
        req = urllib.request.Request(self.url + route, data=data, headers=headers or {},
                                     method="GET" if data is None else "POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")
            try:
                detail = json.loads(detail).get("error", detail)
            except ValueError:
                pass
            raise RuntimeError(f"vLLM server {self.url}{route}: {detail}") from None

    def wait_ready(self, timeout: float = 0.0) -> dict:
        """``/health``, retried for up to ``timeout`` seconds; a clear error when nothing answers."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self._request("/health", timeout=10)
            except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
                if time.monotonic() >= deadline:
                    raise RuntimeError(
                        f"no vLLM server answers at {self.url} ({e}); start one with "
                        "`python -m rl.vllm_server --model <the policy's model> --port <port>` "
                        "and set rollout.vllm_server_url") from None
                time.sleep(1.0)

    def _json(self, route: str, payload: dict) -> dict:
        return self._request(route, json.dumps(payload).encode(), {"Content-Type": "application/json"})

    # ------------------------------------------------------------------ RolloutEngine
    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[Rollout]:
        if not prompts:
            return []
        outs = self._json("/generate", {
            "prompts": [list(p) for p in prompts], "n": params.n, "temperature": params.temperature,
            "top_p": params.top_p, "max_tokens": params.max_new_tokens, "greedy": params.greedy,
            "stop_token_ids": sorted(self.eos_ids)})["outputs"]
        rollouts = []
        for i, (prompt, group) in enumerate(zip(prompts, outs)):
            for c in group:
                ids = c["token_ids"]
                if c["finish_reason"] not in ("stop", "length"):
                    raise RuntimeError(f"vLLM server finished a completion with '{c['finish_reason']}'")
                rollouts.append(Rollout(i, list(prompt), ids, self.tokenizer.decode(ids, skip_special_tokens=True),
                                        c["finish_reason"], c["logprobs"]))
        return rollouts

    def sync_weights(self, model: torch.nn.Module) -> None:
        t0 = time.perf_counter()
        dist = torch.distributed.is_available() and torch.distributed.is_initialized()
        if not dist or torch.distributed.get_rank() == 0:
            self.push_state(merged_state_items(model, self.dtype))
        if dist:
            torch.distributed.barrier()  # nobody samples before the new weights are in
        self.last_push_seconds = time.perf_counter() - t0

    def push_state(self, items) -> dict:
        """Send complete ``(name, tensor)`` pairs, in parts of at most ``part_bytes``."""
        from safetensors.torch import save

        parts: list[dict[str, torch.Tensor]] = [{}]
        size, seen = 0, set()
        for name, t in items:
            t = t.detach().cpu()
            if t.data_ptr() in seen:  # tied weights: safetensors refuses shared storage
                t = t.clone()
            seen.add(t.data_ptr())
            if parts[-1] and size + t.nbytes > self.part_bytes:
                parts.append({})
                size = 0
            parts[-1][name] = t.contiguous()
            size += t.nbytes
        reply = {}
        for i, part in enumerate(parts, 1):
            reply = self._request("/load_weights", save(part), {"Content-Type": "application/octet-stream",
                                                                 "X-Part": f"{i}/{len(parts)}"})
        return reply
