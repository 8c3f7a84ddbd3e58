"""One process of a multi-process run fails: every process must end within a minute, with one line that
names the failed rank (issue 23). On 8 GPUs the others would otherwise wait in their next collective
until ``train.ddp_timeout`` (30 minutes), holding the machines.

2 processes on gloo under ``accelerate launch`` (torchrun), with tests/run/instrumented.py: it writes each
process's pid and can make one rank's rollout server fail (``LACONIC_TEST_SERVER_ERROR``).
"""

import os
import signal
import subprocess
import sys
import time

from tests.conftest import ROOT
from tests.train.test_trainer import overrides

LAUNCH = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--multi_gpu", "--num_machines",
          "1", "--mixed_precision", "no", "--dynamo_backend", "no", str(ROOT / "tests" / "run" / "instrumented.py")]


def launch_until(model, out, env: dict, act=None, timeout: float = 300):
    """Start a 50-step run; once step 1 is logged call ``act(out)``; return (stderr, rc, seconds from
    step 1's log line to the launcher's exit)."""
    cmd = LAUNCH + ["train", str(ROOT / "recipes" / "quickstart.yaml"), *overrides(model, out, "train.max_steps=50")]
    with subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1", **env}, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, start_new_session=True) as p:
        try:
            deadline = time.monotonic() + timeout
            while not (out / "metrics.jsonl").is_file() and p.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
            t0 = time.monotonic()
            if act is not None:
                act(out)
            _, err = p.communicate(timeout=timeout)
            return err, p.returncode, time.monotonic() - t0
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)


def test_a_killed_rank_ends_every_process(untrained_toy, tmp_path):
    """SIGKILL to rank 1 after step 1 (an out-of-memory kill, a lost GPU): the launcher ends rank 0 and
    reports rank 1 as the root cause."""
    out = tmp_path / "run"
    err, rc, seconds = launch_until(untrained_toy, out, {},
                                    lambda out: os.kill(int((out / "pid-rank1").read_text()), signal.SIGKILL))
    assert rc != 0 and seconds < 60, (rc, seconds, err[-3000:])
    root = err[err.index("Root Cause"):]
    assert "rank      : 1 (local_rank: 1)" in root and "SIGKILL" in root, err[-3000:]


def test_one_ranks_server_error_ends_every_process_with_one_line(untrained_toy, tmp_path):
    """Rank 1's rollout server fails at step 2 (its third generate, after the evaluation and step 1): one
    line names rank 1 and the server, and rank 0 (which would next wait in a collective) ends too."""
    out = tmp_path / "run"
    err, rc, seconds = launch_until(untrained_toy, out, {"LACONIC_TEST_SERVER_ERROR": "1:3"})
    assert rc != 0 and seconds < 60, (rc, seconds, err[-3000:])
    lines = [line for line in err.splitlines() if "laconic:" in line]
    assert len(lines) == 1 and lines[0].endswith(
        "laconic: rank 1: vLLM server http://127.0.0.1:9 is unreachable (injected by tests/run/instrumented.py)"), lines
    assert sum(1 for _ in open(out / "metrics.jsonl")) == 1  # step 2 never completed anywhere
