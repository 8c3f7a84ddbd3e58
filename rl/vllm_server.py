"""A small vLLM generation server with a weight-push route (``rollout.engine: vllm-server``).

    python -m rl.vllm_server --model PATH [--dtype bfloat16] [--port 8000] [--kv-cache-gb 1]

Rollouts then come from this separate process (on other GPUs, or another CPU process) while the
trainer pushes its weights after every update (:class:`rl.vllm_client.VLLMServerEngine`).

Why not TRL's ``trl vllm-serve``: in TRL 1.16 it is vLLM's own OpenAI server started with
``--weight-transfer-config '{"backend": "nccl"}'``, and every vLLM weight-transfer backend (NCCL,
CUDA IPC, ...) needs CUDA; TRL's colocated per-parameter ``load_weights`` also fails on vLLM's CPU
backend, which repacks weights into oneDNN handles (DESIGN.md). This server instead receives the
complete state dict as safetensors bytes over plain HTTP and applies it the way that works on CPU
and GPU alike: one ``reload_weights`` call with the whole set, then a prefix-cache reset.

Routes (JSON unless noted; one request at a time, vLLM's ``LLM`` is not thread-safe):

- ``GET /health`` -> ``{"ok": true, "model": ..., "dtype": ...}``
- ``POST /generate`` ``{"prompts": [[ids]], "n", "temperature", "top_p", "max_tokens", "greedy",
  "stop_token_ids"}`` -> ``{"outputs": [[{"token_ids", "logprobs", "finish_reason"}, ...], ...]}``
  (prompt-major, ``n`` completions each; ``logprobs``: the sampled tokens' processed log-probs)
- ``POST /load_weights`` body: safetensors bytes; headers ``X-Part: i/n`` when the state is
  split over ``n`` requests. Parts are buffered; the last one applies the complete set.
- ``POST /reset_prefix_cache``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

GiB = 1 << 30


class Server(HTTPServer):
    allow_reuse_address = True

    def __init__(self, addr, llm, info: dict):
        super().__init__(addr, Handler)
        self.llm = llm
        self.info = info
        self.parts: dict[int, dict] = {}


class Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet: one line per push only
        pass

    def _reply(self, code: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def do_GET(self):
        if self.path == "/health":
            return self._reply(200, {"ok": True, **self.server.info})
        self._reply(404, {"error": f"no route GET {self.path}"})

    def do_POST(self):
        routes = {"/generate": self._generate, "/load_weights": self._load_weights,
                  "/reset_prefix_cache": self._reset}
        route = routes.get(self.path)
        if route is None:
            self._body()
            return self._reply(404, {"error": f"no route POST {self.path}"})
        try:
            self._reply(200, route())
        except Exception as e:  # the trainer sees the message, the server keeps serving
            self._reply(500, {"error": f"{type(e).__name__}: {e}"})

    def _generate(self) -> dict:
        from .rollout import SamplingParams
        from .vllm_engine import vllm_sampling_params

        req = json.loads(self._body())
        params = SamplingParams(max_new_tokens=int(req["max_tokens"]), temperature=float(req.get("temperature", 1.0)),
                                top_p=float(req.get("top_p", 1.0)), n=int(req.get("n", 1)),
                                greedy=bool(req.get("greedy", False)))
        sp = vllm_sampling_params(params, set(req.get("stop_token_ids", ())))
        outs = self.server.llm.generate([{"prompt_token_ids": p} for p in req["prompts"]], sp, use_tqdm=False)
        result = []
        for out in outs:
            group = []
            for c in sorted(out.outputs, key=lambda c: c.index):
                ids = list(c.token_ids)
                lps = None if c.logprobs is None else [float(pos[t].logprob) for pos, t in zip(c.logprobs, ids)]
                group.append({"token_ids": ids, "logprobs": lps, "finish_reason": c.finish_reason})
            result.append(group)
        return {"outputs": result}

    def _load_weights(self) -> dict:
        from safetensors.torch import load

        part, _, total = self.headers.get("X-Part", "1/1").partition("/")
        part, total = int(part), int(total or 1)
        if part == 1:  # a new push starts: forget the parts of any push that failed half-way
            self.server.parts.clear()
        self.server.parts[part] = load(self._body())
        if len(self.server.parts) < total:
            return {"ok": True, "applied": False, "parts": len(self.server.parts)}
        t0 = time.perf_counter()
        state = {}
        for i in sorted(self.server.parts):
            state.update(self.server.parts[i])
        self.server.parts.clear()
        self.server.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": iter(state.items())})
        self.server.llm.reset_prefix_cache()
        return {"ok": True, "applied": True, "tensors": len(state), "seconds": time.perf_counter() - t0}

    def _reset(self) -> dict:
        self._body()
        self.server.llm.reset_prefix_cache()
        return {"ok": True}


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m rl.vllm_server", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="model directory (the policy's starting point) or builtin:<name>")
    p.add_argument("--dtype", default="auto", help="vLLM dtype: auto | float32 | bfloat16 | float16")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="0: any free port (printed when ready)")
    p.add_argument("--kv-cache-gb", type=float, default=None, help="KV cache size (default: 1 on CPU)")
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    p.add_argument("--max-model-len", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compile", action="store_true", help="torch.compile / CUDA graphs (slow start)")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    import torch
    from vllm import LLM

    path = args.model
    if path.startswith("builtin:"):
        from .config import ModelConfig
        from .model import resolve_model_path

        path = resolve_model_path(ModelConfig(name_or_path=path))
    kwargs = dict(model=path, dtype=args.dtype, seed=args.seed, enforce_eager=not args.compile,
                  logprobs_mode="processed_logprobs", max_model_len=args.max_model_len)
    if args.kv_cache_gb is not None or not torch.cuda.is_available():
        kwargs["kv_cache_memory_bytes"] = int((args.kv_cache_gb or 1.0) * GiB)
    else:
        kwargs["gpu_memory_utilization"] = args.gpu_memory_utilization
    llm = LLM(**kwargs)
    from .vllm_engine import quiet_reload_warnings

    quiet_reload_warnings()
    info = {"model": path, "dtype": str(llm.llm_engine.model_config.dtype).removeprefix("torch.")}
    server = Server((args.host, args.port), llm, info)
    host, port = server.server_address[:2]
    print(f"laconic vLLM server ready on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    sys.exit(main())
