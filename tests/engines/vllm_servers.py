"""Helpers for the tests against real ``laconic serve`` processes (tests/engines/test_vllm_server.py):
a server on a free port in its own process group, the quickstart config pointed at servers, and a
training run in this process with a hook after every weight push."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import torch

from tests.conftest import ROOT
from tests.train.test_trainer import overrides

KEY = "laconic-test-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``laconic serve MODEL`` on a free port, in its own process group."""

    def __init__(self, model, log_dir, name: str):
        self.model, self.port = str(model), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log_dir / f"{name}.log"
        self.proc = None

    def start(self) -> ServerProcess:
        cmd = [sys.executable, "-m", "rl.cli", "serve", self.model, "--port", str(self.port), "--api-key", KEY,
               "--dtype", "float32", "--kv-cache-memory-bytes", str(256 << 20), "--max-num-seqs", "64"]
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                         env={**os.environ, "OMP_NUM_THREADS": "1"})
        return self

    def wait(self, timeout: float = 480) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if httpx.get(self.url + "/health", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1)
        self.stop()
        pytest.fail(f"vLLM server {self.url} did not start:\n" + self.log.read_text()[-3000:])

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
        except ProcessLookupError:
            pass


def config(model, out, urls, *extra):
    from rl.config import load_config

    return load_config(ROOT / "recipes" / "quickstart.yaml", overrides(
        model, out, "train.max_steps=3", "train.save_every=1", "eval.before=false", "eval.after=false",
        "rollout.engine=vllm-server", f"rollout.vllm_server_urls=[{','.join(urls)}]", *extra))


def train_with(cfg, monkeypatch, after_push=None):
    """``rl.train.loop.train`` in this process; ``after_push(engine, model, n)`` runs after every
    weight push (n = 1 for the push at start), outside the training RNG stream."""
    from rl.engines.vllm_server import VLLMServerEngine
    from rl.train.loop import train

    monkeypatch.setenv("VLLM_API_KEY", KEY)
    original = VLLMServerEngine.sync_weights
    pushes = []

    def sync_weights(self, model):
        original(self, model)
        pushes.append(self)
        if after_push is not None:
            with torch.random.fork_rng(devices=[]):
                after_push(self, model, len(pushes))

    monkeypatch.setattr(VLLMServerEngine, "sync_weights", sync_weights)
    train(cfg)
    return pushes
