"""Per-prompt generation limits in ``generate`` (``limits=``): the transformers engine (untrained toy,
greedy: a completion cut at its limit k is the first k tokens of the uncut one, finish reason
``length``) and the vLLM server engine's requests (a fake server: each prompt's request carries its
own ``max_tokens``). The vLLM engines against real vLLM: tests/engines/test_vllm.py and
tests/engines/test_vllm_server.py."""

from __future__ import annotations

import json
import threading
from http.server import ThreadingHTTPServer

import pytest

from rl.engines.base import SamplingParams, prompt_limits

from tests.engines.test_server_timeouts import TOKENIZER, Handler

QUESTIONS = ["Q:1+2=", "Q:3+4+5=", "Q:9+9+9+9=", "Q:7+0="]
GREEDY = SamplingParams(max_new_tokens=12, greedy=True)


def check_cut(full, cut, limits, n=1):
    """``cut`` (generated with ``limits``) against ``full`` (without): prefix, finish reason, log-probs."""
    assert [r.prompt_index for r in cut] == [r.prompt_index for r in full]
    shortened = 0
    for f, c in zip(full, cut):
        k = limits[c.prompt_index]
        if f.length > k:
            assert c.completion_ids == f.completion_ids[:k] and c.finish_reason == "length"
            if c.logprobs is not None:
                assert c.logprobs == pytest.approx(f.logprobs[:k], abs=1e-4)
            shortened += 1
        else:
            assert (c.completion_ids, c.finish_reason) == (f.completion_ids, f.finish_reason)
    return shortened


def test_prompt_limits_helper():
    p = SamplingParams(max_new_tokens=10)
    assert prompt_limits(None, p, 2) is None
    assert prompt_limits([10, 30], p, 2) is None  # none below the step's limit: the usual path
    assert prompt_limits([3, 30, -2], p, 3) == [3, 10, 0]
    with pytest.raises(ValueError, match="2 generation limits for 3 prompts"):
        prompt_limits([1, 2], p, 3)


@pytest.fixture(scope="module")
def toy(untrained_toy):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(untrained_toy)
    return AutoModelForCausalLM.from_pretrained(untrained_toy), tok


@pytest.mark.parametrize("drop_finished", [True, False])
def test_transformers_engine_honours_each_prompts_limit(toy, drop_finished):
    from rl.engines.transformers import TransformersEngine

    model, tok = toy
    engine = TransformersEngine(model, tok, batch_size=3, drop_finished=drop_finished)  # batches split groups
    prompts = [tok(q)["input_ids"] for q in QUESTIONS]
    params = SamplingParams(max_new_tokens=12, greedy=True, n=2)
    full = engine.generate(prompts, params)
    limits = [3, 12, 7, 1]
    cut = engine.generate(prompts, params, limits=limits)
    assert check_cut(full, cut, limits) >= 4, "no completion reached its limit: the test is vacuous"
    assert all(r.length <= k for r, k in zip(cut, [k for k in limits for _ in range(2)]))
    same = engine.generate(prompts, params, limits=[12, 50, 12, 12])  # none below the step's: unchanged
    assert [(r.completion_ids, r.finish_reason) for r in same] == [(r.completion_ids, r.finish_reason) for r in full]
    zero = engine.generate(prompts[:2], params, limits=[0, 2])
    assert [(r.completion_ids, r.finish_reason) for r in zero[:2]] == [([], "length")] * 2
    assert [r.length for r in zero[2:]] == [2, 2]


class LimitHandler(Handler):
    """tests/engines/test_server_timeouts.py's fake server, its completions honouring ``max_tokens``
    (5 tokens unless fewer are asked for: then finish reason ``length``), each request body recorded."""

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.bodies.append(body)
        ids = [body["prompt"][0], 7, 7, 7, 0][: body["max_tokens"]]
        reason = "length" if body["max_tokens"] < 5 else "stop"
        self.reply({"choices": [{"index": k, "token_ids": ids, "finish_reason": reason,
                                 "logprobs": {"token_logprobs": [-0.5] * len(ids)}} for k in range(body["n"])]})


@pytest.fixture
def limit_server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), LimitHandler)
    httpd.daemon_threads, httpd.bodies, httpd.health_probes = True, [], 0
    httpd.health_hangs, httpd.stopping = threading.Event(), threading.Event()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.stopping.set()
    httpd.shutdown()
    httpd.server_close()


def test_server_engine_sends_each_prompts_limit(limit_server):
    from rl.engines.vllm_server import VLLMServerEngine

    engine = VLLMServerEngine([limit_server.url], TOKENIZER, eos_ids={0})
    params = SamplingParams(max_new_tokens=8, n=2)
    out = engine.generate([[1], [2], [3], [4]], params, limits=[3, 8, 20, 0])
    sent = sorted((b["prompt"][0], b["max_tokens"]) for b in limit_server.bodies)
    assert sent == [(1, 3), (2, 8), (3, 8)]  # capped at the step's limit; a 0 limit sends nothing
    assert [(r.prompt_index, r.completion_ids, r.finish_reason) for r in out] == (
        [(0, [1, 7, 7], "length")] * 2 + [(1, [2, 7, 7, 7, 0], "stop")] * 2 + [(2, [3, 7, 7, 7, 0], "stop")] * 2
        + [(3, [], "length")] * 2)
    assert all(r.logprobs == [-0.5] * r.length for r in out)
    limit_server.bodies.clear()
    engine.generate([[1], [2]], params)  # no limits: the step's
    assert sorted(b["max_tokens"] for b in limit_server.bodies) == [8, 8]
    engine.close()
