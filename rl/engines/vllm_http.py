"""One ``vllm serve`` process seen from the trainer: its routes as JSON over HTTP (``httpx``), with
timeouts, bounded retries on connection failures and one clear :class:`ServerError` naming the URL;
completions whole (:meth:`Server.complete`, a group per request) or streamed (:meth:`Server.stream`,
one completion that can be cut off by closing it). The engine over several of them, and the rules for
timeouts and failures, are in rl/engines/vllm_server.py.
"""

from __future__ import annotations

import asyncio
import time

from rl.engines.base import SamplingParams


class ServerError(RuntimeError):
    """A vLLM server failed or could not be reached; the message names its URL."""


def _retried():
    import httpx

    return (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError)


class Server:
    """One ``vllm serve`` process: JSON over HTTP with timeouts and bounded retries."""

    def __init__(self, url: str, client, *, api_key: str | None, timeout: float, retries: int):
        self.url = url.rstrip("/")
        self.client = client
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout = timeout
        self.retries = retries
        self.model: str | None = None  # the served model name, from /v1/models
        self.dtype: str | None = None  # the served weights' dtype, from /server_info

    def request(self, method: str, route: str, *, json=None, params=None, timeout: float | None = None):
        """The decoded JSON reply (None when empty). Connection failures are retried ``retries``
        times (1 s, 2 s, ... apart); a server that still does not answer, a timeout or an error
        status raises :class:`ServerError` naming the URL."""
        import httpx

        for attempt in range(self.retries + 1):
            try:
                r = self.client.request(method, self.url + route, json=json, params=params, headers=self.headers,
                                        timeout=timeout or self.timeout)
                break
            except _retried() as e:
                if attempt == self.retries:
                    raise self._unreachable(route, e) from None
                time.sleep(2.0**attempt)
            except httpx.TimeoutException as e:
                raise self._timed_out(route, e, timeout or self.timeout) from None
        return self._reply(route, r)

    async def arequest(self, client, method: str, route: str, *, json=None, timeout=None):
        """:meth:`request` over an ``httpx.AsyncClient`` (``timeout``: a float or an ``httpx.Timeout``)."""
        import httpx

        for attempt in range(self.retries + 1):
            try:
                r = await client.request(method, self.url + route, json=json, headers=self.headers,
                                         timeout=timeout or self.timeout)
                break
            except _retried() as e:
                if attempt == self.retries:
                    raise self._unreachable(route, e) from None
                await asyncio.sleep(2.0**attempt)
            except httpx.TimeoutException as e:
                raise self._timed_out(route, e, self.timeout) from None
        return self._reply(route, r)

    def _unreachable(self, route: str, e: Exception) -> ServerError:
        return ServerError(f"vLLM server {self.url} is unreachable ({route}: {type(e).__name__}: {e}); the "
                           "checkpoints written so far are intact: restart the server and continue with "
                           "train.resume=latest")

    def _timed_out(self, route: str, e: Exception, seconds: float) -> ServerError:
        return ServerError(f"vLLM server {self.url} did not answer {route} within {seconds:.0f} s "
                           f"({type(e).__name__}; rollout.vllm_server_timeout)")

    def _reply(self, route: str, r):
        if r.status_code == 401:
            raise ServerError(f"vLLM server {self.url} refused the API key: set VLLM_API_KEY to the server's "
                              "--api-key (`laconic serve` prints it)")
        if r.status_code == 404 and route.split("?")[0] in ("/pause", "/is_paused", "/collective_rpc"):
            raise ServerError(f"vLLM server {self.url} has no {route} route: start it with VLLM_SERVER_DEV_MODE=1 "
                              "(`laconic serve` does)")
        if r.status_code >= 400:
            raise ServerError(f"vLLM server {self.url}{route}: HTTP {r.status_code} {r.text[:500]}")
        return r.json() if r.content else None

    def wait_ready(self, timeout: float) -> None:
        """``/health`` until it answers (up to ``timeout`` s); then the served model's name and dtype,
        and clear errors when the RL routes or processed log-probs are off."""
        import httpx

        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.client.get(self.url + "/health", timeout=10).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() >= deadline:
                raise ServerError(f"no vLLM server answers at {self.url}/health; start one with `laconic serve MODEL` "
                                  "and list it in rollout.vllm_server_urls")
            time.sleep(1.0)
        self.model = self.request("GET", "/v1/models")["data"][0]["id"]
        self.request("GET", "/is_paused")  # a clear error when the RL routes are off
        config = self.request("GET", "/server_info", params={"config_format": "json"})["vllm_config"]["model_config"]
        if config.get("logprobs_mode") != "processed_logprobs":
            raise ServerError(f"vLLM server {self.url} returns {config.get('logprobs_mode')} log-probs: start it with "
                              "--logprobs-mode processed_logprobs (`laconic serve` does)")
        self.dtype = str(config["dtype"]).removeprefix("torch.")

    async def complete(self, client, prompt: list[int], params: SamplingParams, seed: int,
                       stop: list[int], limit: int | None = None) -> list[dict]:
        """One group; no read limit (module docstring: "Timeouts and failures"). ``limit``: this
        prompt's ``max_tokens`` instead of ``params.max_new_tokens``; 0 sends nothing (vLLM needs at
        least 1) and answers ``n`` empty completions with finish reason ``length``."""
        import httpx

        if limit is not None and limit <= 0:
            return [{"index": j, "token_ids": [], "finish_reason": "length",
                     "logprobs": {"token_logprobs": []} if params.logprobs else None} for j in range(params.n)]
        reply = await self.arequest(client, "POST", "/v1/completions", json=self._body(prompt, params, seed, stop, limit),
                                    timeout=httpx.Timeout(self.timeout, read=None, pool=None))
        return sorted(reply["choices"], key=lambda c: c["index"])

    def _body(self, prompt: list[int], params: SamplingParams, seed: int, stop: list[int], limit: int | None) -> dict:
        return dict(model=self.model, prompt=list(prompt), n=params.n,
                    max_tokens=params.max_new_tokens if limit is None else int(limit),
                    temperature=0.0 if params.greedy else params.temperature,
                    top_p=1.0 if params.greedy else params.top_p, seed=seed, logprobs=0 if params.logprobs else None, return_token_ids=True,
                    stop_token_ids=stop, top_k=0 if params.greedy else params.top_k,
                    min_p=0.0 if params.greedy else params.min_p, repetition_penalty=params.repetition_penalty,
                    presence_penalty=0.0, frequency_penalty=0.0,  # explicit: a model's generation_config must not apply
                    **({"stop": list(params.stop)} if params.stop else {}))

    async def stream(self, client, prompt: list[int], params: SamplingParams, seed: int, stop: list[int], limit: int,
                     sink: dict) -> dict:
        """One completion (``params.n`` = 1) streamed: ``sink`` gains its tokens (``token_ids``), log-probs
        and ``finish_reason`` as the server sends them, so a cancelled call (the connection closed: vLLM
        aborts the request) leaves in ``sink`` what was written before. Returns ``sink``."""
        import json as jsonlib

        import httpx

        body = {**self._body(prompt, params, seed, stop, limit), "stream": True}
        sink.setdefault("token_ids", [])
        sink.setdefault("logprobs", {"token_logprobs": []} if params.logprobs else None)
        sink.setdefault("finish_reason", None)
        route = "/v1/completions"
        for attempt in range(self.retries + 1):
            try:
                async with client.stream("POST", self.url + route, json=body, headers=self.headers,
                                         timeout=httpx.Timeout(self.timeout, read=None, pool=None)) as r:
                    if r.status_code >= 400:
                        await r.aread()
                        self._reply(route, r)
                    async for line in r.aiter_lines():
                        if not line.startswith("data: ") or line == "data: [DONE]":
                            continue
                        for c in jsonlib.loads(line[6:]).get("choices", []):
                            sink["token_ids"] += c.get("token_ids") or []
                            if sink["logprobs"] is not None and c.get("logprobs"):
                                sink["logprobs"]["token_logprobs"] += c["logprobs"]["token_logprobs"]
                            sink["finish_reason"] = c.get("finish_reason") or sink["finish_reason"]
                return sink
            except _retried() as e:
                if attempt == self.retries or sink["token_ids"]:
                    raise self._unreachable(route, e) from None
                await asyncio.sleep(2.0**attempt)
            except httpx.TimeoutException as e:
                raise self._timed_out(route, e, self.timeout) from None
        return sink

    async def probe(self, client, pending: int) -> None:
        """``GET /health`` within ``timeout`` s, or a :class:`ServerError`."""
        import httpx

        try:
            r = await client.get(self.url + "/health", headers=self.headers, timeout=self.timeout)
            problem = None if r.status_code == 200 else f"HTTP {r.status_code} {r.text[:200]}"
        except httpx.TimeoutException:
            problem = f"no answer within {self.timeout:.0f} s, rollout.vllm_server_timeout"
        except httpx.HTTPError as e:
            problem = f"{type(e).__name__}: {e}"
        if problem is not None:
            raise ServerError(f"vLLM server {self.url} stopped answering /health while {pending} completion "
                              f"request(s) were pending ({problem}); the checkpoints written so far are intact: "
                              "restart the server and continue with train.resume=latest")
