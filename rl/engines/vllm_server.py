"""Rollouts from running ``vllm serve`` processes (``rollout.engine: vllm-server``).

The servers are vLLM's own OpenAI-compatible server (``laconic serve MODEL`` starts one with the
flags below; ``python -m vllm.entrypoints.openai.api_server`` by hand works as well) with
``VLLM_SERVER_DEV_MODE=1``, which adds vLLM's RL routes (``/pause``, ``/resume``,
``/abort_requests``, the weight-transfer routes; ``vllm/entrypoints/rl/online/api_router.py``) and
``/collective_rpc``, and ``--logprobs-mode processed_logprobs`` (sampler log-probs after
temperature and top-p, what the trainer's ``logits / T`` forward computes).

Generation: one ``POST /v1/completions`` per prompt (a whole group: ``n`` = G), token ids in and
out, with a per-prompt seed drawn from torch's RNG, so a resumed run (RNG restored from the
checkpoint) sends the same seeds. Prompts are spread round-robin over ``urls`` (data parallel) and
all requests run concurrently (asyncio tasks over one ``httpx.AsyncClient``, a fresh one per
:meth:`VLLMServerEngine.generate`): no server waits for another, and vLLM batches what reaches it.

Timeouts and failures. A completion's reply comes only once its whole group is generated, after
it waited in vLLM's queue behind the others, so completions have no read limit (and none on
waiting for one of the client's 256 connections); connecting and sending are limited to
``timeout`` (``rollout.vllm_server_timeout``). Every other route (``/pause``, ``/resume``,
``/collective_rpc`` ``reload_weights``, ``/server_info``, ...) keeps ``timeout`` as its whole limit.
A server that dies is noticed at once: its connections are refused or dropped (retried
``retries`` times, then an error). One that stays connected but stops answering is caught by a
liveness probe: while completions are pending, ``GET /health`` of each server that holds some, every
``health_interval`` s (10), with ``timeout`` as its limit; an error, a non-200 reply or no reply
ends the call with "vLLM server URL stopped answering /health". The first failure of any request
or probe cancels everything else of that call (a cancelled request closes its connection, and
vLLM aborts a request whose client is gone) and is raised as one :class:`ServerError` naming the
URL (and route): nothing is left in flight, so a failed process exits at once.

Weight sync after every update (only trainer rank 0 talks to the servers; all ranks then meet at a
barrier): ``/pause`` -> push -> ``/reset_prefix_cache`` -> ``/resume`` on every server, where push
is

- ``nccl`` (GPU): vLLM's trainer-side NCCL weight-transfer engine
  (``vllm/distributed/weight_transfer/nccl_engine.py``), which drives ``/start_weight_update``,
  ``/update_weights`` and ``/finish_weight_update`` while broadcasting the tensors; the server runs
  with ``--weight-transfer-config '{"backend": "nccl"}'``. Written against vLLM's
  ``examples/rl/rlhf_http_nccl.py``; not run here (no GPU).
- ``disk`` (CPU, no NCCL): the trainer writes the merged state as one safetensors file into
  ``rollout.vllm_server_weight_dir`` (default: a fresh directory in ``/dev/shm``, i.e. memory) and
  every server loads it with ``POST /collective_rpc {"method": "reload_weights", "kwargs":
  {"weights_path": DIR}}``. The servers must see that directory: same machine or shared storage.

Security: ``--api-key`` guards only ``/v1``, ``/v2``, ``/inference`` and ``/cohere``; the dev routes
above answer anyone who reaches the port, which is why ``laconic serve`` binds to 127.0.0.1
(README "Rollout engines").
"""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import torch

from rl.engines.base import (Rollout, SamplingParams, cut_at_stop, eos_ids_of, is_partitioned, merged_state_items,
                             merged_state_meta, prompt_limits)

from rl.engines.vllm_http import Server, ServerError  # noqa: F401  (ServerError: this engine's error, importable here)

SYNC_MODES = ("auto", "nccl", "disk")


def draw_seeds(n: int) -> list[int]:
    """One sampling seed per request from torch's RNG: a resumed run (its RNG restored) sends the same."""
    return torch.randint(0, 2**31 - 1, (n,)).tolist()


class VLLMServerEngine:
    """The :class:`~rl.engines.base.RolloutEngine` over one or more ``vllm serve`` processes.

    ``weight_sync``: ``auto`` (``nccl`` where CUDA is available, else ``disk``), ``nccl`` or
    ``disk`` (module docstring). ``timeout``: seconds a server may take to answer a request, except
    a completion's reply (module docstring, "Timeouts and failures"); ``retries``: extra attempts
    when a server cannot be reached; ``health_interval``: seconds between ``/health`` probes of a
    server while completions are pending there.
    """

    reads_policy = False  # the servers hold their own copy of the weights, pushed by sync_weights

    def __init__(self, urls: list[str] | str, tokenizer, *, api_key: str | None = None, timeout: float = 600.0,
                 connect_timeout: float = 0.0, retries: int = 2, eos_ids: set[int] | None = None,
                 dtype: str | torch.dtype | None = None, weight_sync: str = "auto", weight_dir: str | None = None,
                 process_index: int = 0, health_interval: float = 10.0):
        import httpx

        urls = [urls] if isinstance(urls, str) else list(urls)
        if not urls:
            raise ValueError("rollout.vllm_server_urls is empty")
        if weight_sync not in SYNC_MODES:
            raise ValueError(f"weight_sync must be one of {SYNC_MODES}, got '{weight_sync}'")
        self.tokenizer = tokenizer
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.eos_ids = set(eos_ids) if eos_ids else eos_ids_of(None, tokenizer)
        self.dtype = getattr(torch, dtype) if isinstance(dtype, str) and dtype != "auto" else dtype
        self.process_index = process_index
        self.health_interval = health_interval
        self.client = httpx.Client(limits=httpx.Limits(max_connections=256, max_keepalive_connections=64))
        api_key = api_key if api_key is not None else os.environ.get("VLLM_API_KEY")
        self.servers = [Server(u, self.client, api_key=api_key, timeout=timeout, retries=retries) for u in urls]
        self.pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="vllm-client")
        list(self.pool.map(lambda s: s.wait_ready(connect_timeout), self.servers))
        if self.dtype is None:  # push in the servers' dtype: no conversion there
            self.dtype = getattr(torch, self.servers[0].dtype)
        self.weight_sync = ("nccl" if torch.cuda.is_available() else "disk") if weight_sync == "auto" else weight_sync
        self.weight_dir = weight_dir
        self._tmp = None
        self._nccl: dict[str, object] = {}
        self.last_push_seconds: float | None = None
        self.requests_per_server = {s.url: 0 for s in self.servers}  # completions requests sent (tests, logs)

    # ------------------------------------------------------------------ RolloutEngine
    def generate(self, prompts: list[list[int]], params: SamplingParams, seeds: list[int] | None = None,
                 limits: list[int] | None = None) -> list[Rollout]:
        """``len(prompts) * params.n`` rollouts, prompt-major. Prompt ``i`` goes to server
        ``(process_index * len(prompts) + i) % len(servers)`` with seed ``seeds[i]``, by default drawn
        from torch's RNG (:func:`draw_seeds`; a caller generating from another thread draws them first).
        ``limits`` (one per prompt, capped at ``params.max_new_tokens``,
        :func:`rl.engines.base.prompt_limits`): prompt ``i``'s request asks for ``max_tokens = limits[i]``."""
        if not prompts:
            return []
        seeds = draw_seeds(len(prompts)) if seeds is None else list(seeds)
        limits = prompt_limits(limits, params, len(prompts)) or [None] * len(prompts)
        stop = sorted(self.eos_ids)
        servers = self._route(limits)
        replies = asyncio.run(self._complete_all(servers, prompts, params, seeds, stop, limits))
        rollouts = []
        for i, (prompt, server, choices) in enumerate(zip(prompts, servers, replies)):
            for c in choices:
                rollouts.append(self._rollout(i, prompt, c, server.url, params.stop))
        return rollouts

    def generate_partial(self, prompts: list[list[int]], params: SamplingParams, limits: list[int],
                         groups: list[int], needed: int, seeds: list[int] | None = None) -> list[Rollout]:
        """One completion per prompt (:meth:`rl.engines.base.PartialEngine.generate_partial`): every
        prompt is a streamed request of its own (its limit as ``max_tokens``, its seed from ``seeds`` or
        :func:`draw_seeds`), spread over the servers as in :meth:`generate`. Once ``needed`` groups are
        complete the other streams are closed, which makes vLLM abort those requests; they come back with
        the tokens and log-probs streamed so far and finish reason ``abort``. Which requests were done at
        that moment depends on the servers' timing (unlike the colocated engine, whose steps are
        deterministic). ``self.last_trace``: ``(time, requests running)`` at the start and at every finish."""
        if params.n != 1:
            raise ValueError("generate_partial writes one completion per prompt: repeat a prompt for a group")
        if not prompts:
            return []
        seeds = draw_seeds(len(prompts)) if seeds is None else list(seeds)
        servers = self._route(limits)
        sinks = [{} for _ in prompts]
        asyncio.run(self._stream_all(servers, prompts, params, seeds, sorted(self.eos_ids), limits, groups, needed, sinks))
        rollouts = []
        for i, (prompt, server, limit, c) in enumerate(zip(prompts, servers, limits, sinks)):
            if limit <= 0:
                rollouts.append(Rollout(i, list(prompt), [], "", "length", [] if params.logprobs else None))
            elif c.get("finish_reason") in ("stop", "length"):
                rollouts.append(self._rollout(i, prompt, c, server.url, params.stop))
            else:  # closed before it finished: what it had written
                ids = list(c.get("token_ids", []))
                lps = (c.get("logprobs") or {}).get("token_logprobs", [])
                rollouts.append(Rollout(i, list(prompt), ids, self.tokenizer.decode(ids, skip_special_tokens=True),
                                        "abort", [float(x) for x in lps[: len(ids)]] if params.logprobs else None))
        return rollouts

    def _route(self, limits: list[int | None]) -> list[Server]:
        """Prompt ``i``'s server, ``(process_index * len(prompts) + i) % len(servers)``, counting the requests
        each is sent (a prompt whose limit is 0 sends none)."""
        first = self.process_index * len(limits)
        servers = [self.servers[(first + i) % len(self.servers)] for i in range(len(limits))]
        for s, limit in zip(servers, limits):
            self.requests_per_server[s.url] += limit is None or limit > 0
        return servers

    async def _stream_all(self, servers, prompts, params, seeds, stop, limits, groups, needed, sinks) -> None:
        """Every request streamed at once, with :meth:`_watch`; returns once ``needed`` groups are complete
        (or every request is done), cancelling the rest. The first failure cancels everything and is raised."""
        import httpx

        members: dict[int, int] = {}
        for g in groups:
            members[g] = members.get(g, 0) + 1
        done = {g: sum(1 for g2, k in zip(groups, limits) if g2 == g and k <= 0) for g in members}
        live = [i for i, k in enumerate(limits) if k > 0]
        pool = httpx.Limits(max_connections=max(256, len(live)), max_keepalive_connections=64)
        self.last_trace = [(time.perf_counter(), len(live))]
        async with httpx.AsyncClient(limits=pool) as client, httpx.AsyncClient() as probes:
            tasks = {asyncio.ensure_future(servers[i].stream(client, prompts[i], params, seeds[i], stop, limits[i],
                                                             sinks[i])): i for i in live}
            watch = asyncio.ensure_future(self._watch(probes, [servers[i] for i in tasks.values()], list(tasks)))
            pending = set(tasks)
            try:
                while pending and sum(done[g] == members[g] for g in done) < needed:
                    finished, pending = await asyncio.wait(pending | {watch}, return_when=asyncio.FIRST_COMPLETED)
                    pending.discard(watch)
                    for t in finished:
                        if t.exception() is not None:
                            raise t.exception()
                        if t is not watch:
                            done[groups[tasks[t]]] += 1
                    self.last_trace.append((time.perf_counter(), len(pending)))
            finally:
                for t in [*tasks, watch]:
                    t.cancel()
                await asyncio.gather(*tasks, watch, return_exceptions=True)

    async def _complete_all(self, servers: list[Server], prompts, params, seeds, stop,
                            limits: list[int | None] | None = None) -> list[list[dict]]:
        """Every group's request at once, and :meth:`_watch`; the first failure cancels the rest."""
        import httpx

        limits = limits or [None] * len(prompts)
        pool = httpx.Limits(max_connections=256, max_keepalive_connections=64)
        async with httpx.AsyncClient(limits=pool) as client, httpx.AsyncClient() as probes:
            tasks = [asyncio.ensure_future(s.complete(client, p, params, seed, stop, limit))
                     for s, p, seed, limit in zip(servers, prompts, seeds, limits)]
            everything = [*tasks, asyncio.ensure_future(self._watch(probes, servers, tasks))]
            try:  # the watch returns once every request is done: FIRST_EXCEPTION = first failure or all done
                await asyncio.wait(everything, return_when=asyncio.FIRST_EXCEPTION)
                for t in everything:
                    if t.done() and not t.cancelled() and t.exception() is not None:
                        raise t.exception()
                return [t.result() for t in tasks]
            finally:
                for t in everything:
                    t.cancel()
                await asyncio.gather(*everything, return_exceptions=True)

    async def _watch(self, client, servers: list[Server], tasks: list[asyncio.Future]) -> None:
        """Every ``health_interval`` s, probe each server with requests still pending, until none are."""
        while True:
            await asyncio.wait(tasks, timeout=self.health_interval)  # early once all are done
            pending: dict[Server, int] = {}
            for s, t in zip(servers, tasks):
                if not t.done():
                    pending[s] = pending.get(s, 0) + 1
            if not pending:
                return
            probes = [asyncio.ensure_future(s.probe(client, n)) for s, n in pending.items()]
            try:
                await asyncio.gather(*probes)
            finally:
                for p in probes:
                    p.cancel()

    def _rollout(self, index: int, prompt: list[int], c: dict, url: str, stop: tuple[str, ...] = ()) -> Rollout:
        ids = list(c["token_ids"])
        if c["finish_reason"] not in ("stop", "length"):
            raise ServerError(f"vLLM server {url} finished a completion with '{c['finish_reason']}' "
                              "(aborted or paused by another client?)")
        logprobs = c["logprobs"]["token_logprobs"] if c.get("logprobs") else None
        return Rollout(index, list(prompt), ids, cut_at_stop(self.tokenizer.decode(ids, skip_special_tokens=True), stop),
                       c["finish_reason"], [float(x) for x in logprobs] if logprobs is not None else None)

    def sync_weights(self, model: torch.nn.Module) -> None:
        """Push ``model``'s weights to every server (rank 0), then a barrier for all ranks. Under ZeRO-3
        every rank reads the weights as often as rank 0 does (each bucket's gather is a collective)."""
        t0 = time.perf_counter()
        dist = torch.distributed.is_available() and torch.distributed.is_initialized()
        if not dist or torch.distributed.get_rank() == 0:
            self.pause(mode="wait")
            if self.weight_sync == "nccl":
                for s in self.servers:  # one NCCL group per server
                    self._nccl_engine(s, model).send_weights()
            else:
                path = self._write_weights(model)
                self._each(lambda s: s.request("POST", "/collective_rpc", json={
                    "method": "reload_weights", "kwargs": {"weights_path": path}}))
            self._each(lambda s: s.request("POST", "/reset_prefix_cache"))
            self.resume()
        elif is_partitioned(model):  # ZeRO-3: reading the weights gathers them, a collective: replay rank 0's passes
            for _ in range(len(self.servers) if self.weight_sync == "nccl" else 1):
                for _ in merged_state_items(model, self.dtype):
                    pass
        if dist:
            torch.distributed.barrier()  # nobody samples before the new weights are in
        self.last_push_seconds = time.perf_counter() - t0

    # ------------------------------------------------------------------ pause / abort
    def pause(self, mode: str = "keep") -> None:
        """Stop generation on every server: ``keep`` freezes running requests (they continue after
        :meth:`resume`), ``wait`` lets them finish, ``abort`` ends them (vLLM's ``/pause``)."""
        self._each(lambda s: s.request("POST", "/pause", params={"mode": mode}))

    def resume(self) -> None:
        self._each(lambda s: s.request("POST", "/resume"))

    def abort(self) -> None:
        """End every running request on every server; they come back with finish reason ``abort``."""
        self._each(lambda s: s.request("POST", "/abort_requests", json={}))

    def _each(self, fn) -> list:
        return list(self.pool.map(fn, self.servers))

    # ------------------------------------------------------------------ weight transfer
    def _write_weights(self, model: torch.nn.Module) -> str:
        """The merged state as ``model.safetensors`` in the weight directory (written to a
        temporary name, then renamed: a server never reads half a file)."""
        from safetensors.torch import save_file

        if self.weight_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="laconic-weights-",
                                                    dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
            self.weight_dir = self._tmp.name
        os.makedirs(self.weight_dir, exist_ok=True)
        state, seen = {}, set()
        for name, t in merged_state_items(model, self.dtype):
            t = t.detach().cpu()
            if t.data_ptr() in seen:  # tied weights: safetensors refuses shared storage
                t = t.clone()
            seen.add(t.data_ptr())
            state[name] = t
        tmp = os.path.join(self.weight_dir, ".model.safetensors.tmp")
        save_file(state, tmp)
        os.replace(tmp, os.path.join(self.weight_dir, "model.safetensors"))
        return os.path.abspath(self.weight_dir)

    def _nccl_engine(self, server: Server, model: torch.nn.Module):
        """vLLM's trainer-side NCCL engine for ``server``, created on first use (its NCCL group:
        this process as rank 0, the server's workers after it)."""
        if server.url not in self._nccl:
            from vllm.distributed.weight_transfer.factory import WeightTransferTrainerFactory
            from vllm.distributed.weight_transfer.nccl_engine import NCCLTrainerInitInfo

            world = server.request("GET", "/get_world_size")["world_size"]
            host = urlsplit(server.url).hostname or "127.0.0.1"
            address, port = _local_address_towards(host), _free_port()
            self._nccl[server.url] = WeightTransferTrainerFactory.trainer_init(
                NCCLTrainerInitInfo(master_address=address, master_port=port, world_size=1 + world, rank=0),
                client=_SyncClient(server), source=_MergedSource(model, self.dtype))
        engine = self._nccl[server.url]
        engine.source.model = model
        return engine

    def close(self) -> None:
        for engine in self._nccl.values():
            engine.shutdown()
        self.pool.shutdown(wait=False)
        self.client.close()
        if self._tmp is not None:
            self._tmp.cleanup()


class _SyncClient:
    """vLLM's ``VLLMWeightSyncClient`` protocol over our :class:`Server` (timeouts, retries, errors
    that name the URL) instead of vLLM's plain ``requests`` one."""

    def __init__(self, server: Server):
        self.server = server

    def init_weight_transfer_engine(self, init_info: dict) -> None:
        self.server.request("POST", "/init_weight_transfer_engine", json={"init_info": init_info})

    def start_weight_update(self) -> None:
        self.server.request("POST", "/start_weight_update")

    def update_weights(self, update_info) -> None:
        self.server.request("POST", "/update_weights", json={"update_info": update_info})

    def finish_weight_update(self, weight_version: str | None = None) -> None:
        self.server.request("POST", "/finish_weight_update",
                            json=None if weight_version is None else {"weight_version": weight_version})


class _MergedSource:
    """A vLLM ``WeightSource``: the policy's merged state (:func:`merged_state_items`), re-read
    on every push; ``metadata()`` once, from the parameters' shapes (names, dtypes and shapes never
    change)."""

    def __init__(self, model: torch.nn.Module, dtype: torch.dtype | None):
        self.model, self.dtype, self._meta = model, dtype, None

    def metadata(self):
        from vllm.distributed.weight_transfer.base import ParamMeta

        if self._meta is None:  # without gathering anything (ZeRO-3)
            self._meta = [ParamMeta(n, dtype, shape) for n, dtype, shape in merged_state_meta(self.model, self.dtype)]
        return self._meta

    def __iter__(self):
        return iter(merged_state_items(self.model, self.dtype))


def _local_address_towards(host: str) -> str:
    """This machine's address on the route to ``host`` (where the server's NCCL workers connect)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((host, 9))  # UDP: no packet is sent
        return s.getsockname()[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]
