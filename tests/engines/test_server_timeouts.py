"""``rollout.engine=vllm-server`` timeouts and failures, against a fake server (no vLLM needed).

The fake server (pytest-httpserver's threaded werkzeug server) answers what
:class:`~rl.engines.vllm_server.VLLMServerEngine` asks at start (``/health``, ``/v1/models``,
``/is_paused``, ``/server_info``), and ``/v1/completions`` by the prompt's first token: a reply
at once, a reply after 4 s, no reply ever, HTTP 500, or a dropped connection. A request that never
gets a reply records whether the client hung up (what makes vLLM abort a request).

A test double, not a server laconic uses: a real ``vllm serve`` cannot be made to hang, fail or drop a
connection on demand; the engine against the real server is tests/engines/test_vllm_server.py.
"""

from __future__ import annotations

import json
import select
import socket
import subprocess
import sys
import textwrap
import threading
import time
from types import SimpleNamespace

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from rl.engines.base import SamplingParams
from rl.engines.vllm_server import ServerError, VLLMServerEngine
from tests.conftest import ROOT

OK, SLOW, HANG, FAIL, DROP = 1, 2, 3, 4, 5  # a prompt's first token: how the fake server answers it
SLOW_S = 4.0
PARAMS = SamplingParams(max_new_tokens=4, n=2)
TOKENIZER = SimpleNamespace(pad_token_id=0, eos_token_id=0, decode=lambda ids, skip_special_tokens=True: str(ids))
START = {"/v1/models": {"data": [{"id": "fake"}]}, "/is_paused": {"is_paused": False},
         "/server_info": {"vllm_config": {"model_config": {"logprobs_mode": "processed_logprobs",
                                                            "dtype": "torch.float32"}}}}


class Fake:
    """What the fake server saw: completion kinds received, requests whose client hung up, /health probes;
    ``health_hangs`` makes /health stop answering."""

    def __init__(self, httpd: HTTPServer):
        self.httpd = httpd
        self.received, self.hung_up, self.health_probes = [], [], 0
        self.health_hangs, self.stopping = threading.Event(), threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.port}"  # the port it bound once started

    def hang(self, request: Request, what) -> Response:
        """No reply until the client closes the connection (recorded) or teardown."""
        conn = request.environ["werkzeug.socket"]
        while not self.stopping.is_set():
            if select.select([conn], [], [], 0.05)[0] and not conn.recv(1, socket.MSG_PEEK):
                self.hung_up.append(what)
                break
        return Response(status=499)  # nobody reads it

    def health(self, request: Request) -> Response:
        self.health_probes += 1
        return self.hang(request, "/health") if self.health_hangs.is_set() else Response("{}", 200)

    def completions(self, request: Request) -> Response:
        body = json.loads(request.get_data())
        kind = body["prompt"][0]
        self.received.append(kind)
        if kind == HANG:
            return self.hang(request, kind)
        if kind == FAIL:
            return Response(json.dumps({"error": "boom"}), 500, content_type="application/json")
        if kind == DROP:
            request.environ["werkzeug.socket"].shutdown(socket.SHUT_RDWR)
            return Response(status=499)
        if kind == SLOW:
            time.sleep(SLOW_S)
        ids = [kind, 7, 0]
        return Response(json.dumps({"choices": [{"index": k, "token_ids": ids, "finish_reason": "stop",
                                                 "logprobs": {"token_logprobs": [-0.5] * len(ids)}}
                                                for k in range(body["n"])]}), 200, content_type="application/json")


@pytest.fixture
def server():
    httpd = HTTPServer(host="127.0.0.1", threaded=True)  # a hanging request must not block the others
    fake = Fake(httpd)
    for route, reply in START.items():
        httpd.expect_request(route, method="GET").respond_with_json(reply)
    httpd.expect_request("/health", method="GET").respond_with_handler(fake.health)
    httpd.expect_request("/v1/completions", method="POST").respond_with_handler(fake.completions)
    httpd.start()
    yield fake
    fake.stopping.set()
    httpd.clear()
    httpd.stop()


def engine_for(server, **kwargs):
    return VLLMServerEngine([server.url], TOKENIZER, eos_ids={0}, **kwargs)


def wait_for(condition, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def test_completion_slower_than_the_timeout_succeeds(server):
    """A group that takes 4 s on a server whose timeout is 2 s: completions have no read limit.
    Before (the timeout was every request's read limit) this raised "did not answer
    /v1/completions within 2 s"."""
    engine = engine_for(server, timeout=2.0)
    rollouts = engine.generate([[SLOW], [OK]], PARAMS)
    assert [(r.prompt_index, r.completion_ids) for r in rollouts] == [(0, [SLOW, 7, 0])] * 2 + [(1, [OK, 7, 0])] * 2
    engine.close()


def test_one_failed_request_cancels_the_others(server):
    """One group never answers, another gets HTTP 500: one ServerError naming the URL and route,
    at once, and the hanging request's connection is closed (vLLM aborts such a request). Before,
    generate() waited on the hanging request for the whole timeout (30 s here, 600 s by default)."""
    engine = engine_for(server, timeout=30.0, retries=0)
    t0 = time.monotonic()
    with pytest.raises(ServerError, match=f"^vLLM server {server.url}/v1/completions: HTTP 500"):
        engine.generate([[HANG], [FAIL]], PARAMS)
    assert time.monotonic() - t0 < 10
    assert wait_for(lambda: server.hung_up == [HANG]), server.hung_up
    engine.close()


def test_a_dropped_connection_is_retried_then_fails(server):
    """A connection dropped without a reply is retried (``retries`` = 1: once, 1 s later), then
    fails the call at once although another request hangs."""
    engine = engine_for(server, timeout=30.0, retries=1)
    t0 = time.monotonic()
    with pytest.raises(ServerError, match=f"^vLLM server {server.url} is unreachable \\(/v1/completions: "):
        engine.generate([[HANG], [DROP]], PARAMS)
    assert time.monotonic() - t0 < 10
    assert server.received.count(DROP) == 2
    assert wait_for(lambda: server.hung_up == [HANG]), server.hung_up
    engine.close()


def test_a_server_that_stops_answering_health_is_reported(server):
    """A completion pending on a server whose /health stops answering: one ServerError naming the
    URL after at most ``health_interval`` + ``timeout`` (0.2 + 2 s here). Before, nothing probed
    the server: the completion failed only at the read timeout."""
    engine = engine_for(server, timeout=2.0, health_interval=0.2)
    server.health_hangs.set()
    t0 = time.monotonic()
    with pytest.raises(ServerError, match=f"^vLLM server {server.url} stopped answering /health"):
        engine.generate([[HANG], [OK]], PARAMS)
    assert time.monotonic() - t0 < 10
    assert wait_for(lambda: set(server.hung_up) == {HANG, "/health"}), server.hung_up
    engine.close()


def test_a_healthy_server_is_probed_while_a_completion_is_pending(server):
    """/health answers while a 4 s group is pending: the probes (every 0.2 s) let it finish."""
    engine = engine_for(server, timeout=5.0, health_interval=0.2)
    probes = server.health_probes
    assert [r.completion_ids for r in engine.generate([[SLOW]], PARAMS)] == [[SLOW, 7, 0]] * 2
    assert server.health_probes - probes >= 3  # ~18 in 4 s; fewer when the machine is busy
    engine.close()


def test_the_process_exits_after_a_failure(server, tmp_path):
    """A process whose generate() failed while another request hangs (no read limit) exits at
    once, without close(): no worker is left blocked on a socket. Before, generate() itself waited
    out the hanging request's 600 s timeout (and a thread pool worker blocks interpreter exit)."""
    script = textwrap.dedent(f"""
        import sys, time
        from types import SimpleNamespace
        from rl.engines.base import SamplingParams
        from rl.engines.vllm_server import ServerError, VLLMServerEngine

        tok = SimpleNamespace(pad_token_id=0, eos_token_id=0, decode=lambda ids, skip_special_tokens=True: "")
        engine = VLLMServerEngine([sys.argv[1]], tok, eos_ids={{0}}, retries=0)  # default timeout: 600 s
        t0 = time.monotonic()
        try:
            engine.generate([[{HANG}], [{FAIL}]], SamplingParams(max_new_tokens=4, n=2))
        except ServerError as e:
            print(f"{{time.monotonic() - t0:.1f}} s: {{e}}", flush=True)
    """)
    err = open(tmp_path / "stderr.txt", "w+")
    proc = subprocess.Popen([sys.executable, "-c", script, server.url], cwd=ROOT, stdout=subprocess.PIPE, stderr=err,
                            text=True)
    killer = threading.Timer(180, proc.kill)  # a hang fails the test instead of stalling the suite
    killer.start()
    try:
        line = proc.stdout.readline()  # after the imports (slow on a loaded machine) and generate()
        raised = time.monotonic()
        assert proc.wait(timeout=20) == 0, (line, (tmp_path / "stderr.txt").read_text()[-3000:])
    finally:
        killer.cancel()
        proc.kill() if proc.poll() is None else None
        proc.communicate()
        err.close()
    print(f"exited {time.monotonic() - raised:.1f} s after generate() raised: {line.strip()}")
    seconds, message = line.strip().split(" s: ", 1)
    assert float(seconds) < 10 and message.startswith(f"vLLM server {server.url}/v1/completions: HTTP 500")
