"""``python tests/run/instrumented.py <laconic args>``: ``laconic`` with two test instruments.

- The chunked head cut into 4-token chunks, so that a toy-vocabulary run makes as many head calls per
  micro-batch as a 152k-vocabulary one (110 tokens a chunk) and the count differs between processes,
  as it does on GPUs.
- At every ``generate`` of the rollout engine, how many of the policy's parameter elements this process
  holds in full (under ZeRO-3 with every parameter partitioned, tests/run/zero3_partitioned.yaml: 0
  when none is gathered), written at exit to ``<train.output_dir>/gathered-rank<r>.json`` as
  ``{"total": N, "generate": [n, ...]}``.

Each process also writes its pid to ``<train.output_dir>/pid-rank<r>`` once its run is set up (for
tests that kill one rank), and ``LACONIC_TEST_SERVER_ERROR=R:N`` makes the N-th ``generate`` of rank R
raise the rollout server's error, as a server that dies under one rank's requests would.
"""

import atexit
import json
import os
import sys
from pathlib import Path

import rl.algo.logprobs as logprobs
import rl.train.loop as loop
from rl.cli import main


def recording_setup(setup):
    def wrapped(cfg):
        run = setup(cfg)
        model = run.acc.unwrap_model(run.policy)
        seen = {"total": sum(int(getattr(p, "ds_numel", p.numel())) for p in model.parameters()), "generate": []}
        generate = run.engine.generate

        fail_rank, _, fail_call = os.environ.get("LACONIC_TEST_SERVER_ERROR", "-1:0").partition(":")

        def recorded(*args, **kwargs):
            seen["generate"].append(sum(p.data.numel() for p in model.parameters()))
            if run.acc.process_index == int(fail_rank) and len(seen["generate"]) == int(fail_call):
                from rl.engines.vllm_server import ServerError

                raise ServerError("vLLM server http://127.0.0.1:9 is unreachable (injected by tests/run/instrumented.py)")
            return generate(*args, **kwargs)

        run.engine.generate = recorded
        rank = os.environ.get("RANK", "0")
        out = Path(cfg.train.output_dir) / f"gathered-rank{rank}.json"
        atexit.register(lambda: out.write_text(json.dumps(seen)))
        (Path(cfg.train.output_dir) / f"pid-rank{rank}").write_text(str(os.getpid()))
        return run
    return wrapped


if __name__ == "__main__":
    logprobs.chunk_tokens = lambda vocab_size, budget=None: 4
    loop.setup = recording_setup(loop.setup)
    sys.exit(main())
