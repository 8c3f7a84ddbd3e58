"""DeepSpeed ZeRO-2/3 under the trainer (rl/run/distributed.py).

The config patching is tested without DeepSpeed. The end-to-end runs need ``pip install deepspeed``
(skipped otherwise) and run on CPU: DeepSpeed's CPU accelerator with gloo, 2 processes, launched
with the repository's own recipes/accelerate/zero{2,3}.yaml. They train 2 steps next to a DDP run
of the same settings and compare metrics and final weights.
"""

import importlib.util
import json
import sys
import warnings

import pytest

from rl.run.distributed import patch_deepspeed_config

from tests.conftest import ROOT
from tests.train.test_trainer import laconic, overrides, strip_timing

HAS_DS = importlib.util.find_spec("deepspeed") is not None


def test_patch_fills_what_accelerate_cannot_infer():
    ds = {"zero_optimization": {"stage": 2}, "train_micro_batch_size_per_gpu": "auto",
          "gradient_accumulation_steps": "auto", "gradient_clipping": "auto"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = patch_deepspeed_config(ds, micro_batch_size=8, max_grad_norm=0.5, num_processes=4)
    assert out is ds
    assert ds["train_micro_batch_size_per_gpu"] == 8 and ds["gradient_accumulation_steps"] == 1
    assert ds["train_batch_size"] == 8 * 4 and ds["gradient_clipping"] == 0.5
    assert ds["zero_optimization"] == {"stage": 2}


def test_patch_overrides_conflicting_values_with_a_warning():
    ds = {"gradient_accumulation_steps": 4, "gradient_clipping": 1.0}
    with pytest.warns(UserWarning) as record:
        patch_deepspeed_config(ds, micro_batch_size=2, max_grad_norm=0.3, num_processes=1)
    text = " ".join(str(w.message) for w in record)
    assert "gradient_accumulation_steps=4" in text and "train.max_grad_norm=0.3" in text
    assert ds["gradient_accumulation_steps"] == 1 and ds["gradient_clipping"] == 0.3
    with warnings.catch_warnings():  # an equal clipping value is not a conflict
        warnings.simplefilter("error")
        patch_deepspeed_config({"gradient_clipping": 0.3}, micro_batch_size=2, max_grad_norm=0.3, num_processes=1)


# 2 micro-batches per optimizer step and 2 optimizer steps per rollout (accumulation boundaries),
# KL to the reference (ZeRO-3 builds it from gathered weights), a warm-up + cosine schedule (one
# scheduler step per optimizer step), and 1 eval prompt over 2 processes (one process generates
# nothing: ZeRO-3 rollouts must not wait for each other).
EXTRA = ["train.max_steps=2", "train.micro_batch_size=4", "algo.kl_coef=0.05", "algo.updates_per_rollout=2",
         "train.lr_scheduler=cosine", "train.warmup_steps=1", "eval.num_examples=1", "train.save_every=1"]
LAUNCH = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--num_machines", "1",
          "--mixed_precision", "no", "--dynamo_backend", "no"]


def final_weights(out):
    from safetensors.torch import load_file

    return load_file(out / "final" / "model.safetensors")


@pytest.fixture(scope="module")
def ddp_run(untrained_toy, tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp") / "run"
    p = laconic(overrides(untrained_toy, out, *EXTRA), launcher=LAUNCH[:3] + ["--multi_gpu"] + LAUNCH[3:] + ["-m", "rl.cli"])
    assert p.returncode == 0, p.stderr[-4000:]
    return out


@pytest.mark.skipif(not HAS_DS, reason="deepspeed is not installed")
@pytest.mark.parametrize("stage", [2, 3])
def test_zero_matches_ddp(stage, ddp_run, untrained_toy, tmp_path):
    out = tmp_path / f"zero{stage}"
    config = ROOT / "recipes" / "accelerate" / f"zero{stage}.yaml"
    launcher = LAUNCH[:3] + ["--config_file", str(config)] + LAUNCH[3:] + ["-m", "rl.cli"]
    p = laconic(overrides(untrained_toy, out, *EXTRA), env={"DS_ACCELERATOR": "cpu"}, launcher=launcher)
    assert p.returncode == 0, p.stderr[-4000:]
    a = strip_timing([json.loads(l) for l in (ddp_run / "metrics.jsonl").read_text().splitlines()])
    b = strip_timing([json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()])
    assert [r["step"] for r in b] == [1, 2]
    assert a[1]["kl"] > 0 and a[1]["grad_norm"] > 0
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for k in ra:
            assert rb[k] == pytest.approx(ra[k], rel=1e-5, abs=1e-6), (ra["step"], k)
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (ddp_run, out))
    assert sb["before"]["n"] == sb["after"]["n"] == 4 and sb["after"]["mean_tokens"] == sa["after"]["mean_tokens"]
    wa, wb, = final_weights(ddp_run), final_weights(out)
    assert wa.keys() == wb.keys()
    from transformers import AutoModelForCausalLM

    start = AutoModelForCausalLM.from_pretrained(untrained_toy).state_dict()
    for k in wa:  # moved by ~2e-3 (lr 1e-3, Adam); DDP and ZeRO agree to ~1e-5
        assert (wa[k] - wb[k]).abs().max() < 1e-4, k
    assert max((wa[k] - start[k]).abs().max() for k in wa) > 1e-3
    assert (out / "checkpoint-000002" / "trainer_state.json").exists()


@pytest.mark.skipif(not HAS_DS, reason="deepspeed is not installed")
def test_zero3_reference_is_sharded(untrained_toy, tmp_path):
    """Under ZeRO-3 the KL reference is a DeepSpeed engine with partitioned parameters, and scores
    like a plain copy of the weights (tests/run/zero3_reference_check.py, 2 processes)."""
    import os
    import subprocess

    config = ROOT / "recipes" / "accelerate" / "zero3.yaml"
    cmd = LAUNCH[:3] + ["--config_file", str(config)] + LAUNCH[3:] + [
        str(ROOT / "tests" / "run" / "zero3_reference_check.py"), str(untrained_toy), str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DS_ACCELERATOR": "cpu", "PYTHONPATH": str(ROOT)}
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and p.stdout.count("ok") == 2, (p.stdout + p.stderr)[-4000:]


@pytest.mark.skipif(not HAS_DS, reason="deepspeed is not installed")
def test_zero3_with_a_chunked_head_and_unequal_work_per_process(ddp_run, untrained_toy, tmp_path):
    """4-token chunks (tests/run/small_chunks.py): each process calls the head once per chunk, and
    ZeRO-3 gathers the head's weights on each call, a collective. The processes' completions differ in
    length, so their chunk counts differ (and so do their micro-batch counts in the old-log-prob pass,
    with 2 updates per rollout); the run must still end, with DDP's numbers."""
    out = tmp_path / "zero3_chunks"
    config = ROOT / "recipes" / "accelerate" / "zero3.yaml"
    launcher = LAUNCH[:3] + ["--config_file", str(config)] + LAUNCH[3:] + [str(ROOT / "tests" / "run" / "small_chunks.py")]
    p = laconic(overrides(untrained_toy, out, *EXTRA), env={"DS_ACCELERATOR": "cpu"}, launcher=launcher, timeout=300)
    assert p.returncode == 0, p.stderr[-4000:]
    a = strip_timing([json.loads(l) for l in (ddp_run / "metrics.jsonl").read_text().splitlines()])
    b = strip_timing([json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()])
    assert [r["step"] for r in b] == [1, 2] and b[1]["grad_norm"] > 0
    for ra, rb in zip(a, b):
        for k in ra:
            assert rb[k] == pytest.approx(ra[k], rel=1e-5, abs=1e-6), (ra["step"], k)


UNEQUAL = [*EXTRA, "train.micro_batch_tokens=48", "algo.entropy_coef=0.01"]


def launch_unequal(strategy, untrained_toy, out):
    """``train.micro_batch_tokens`` small enough that the micro-batch count of the old-log-prob pass
    (2 updates per rollout) follows each process's completion lengths (seen: 8 and 6 at step 2), and
    4-token head chunks (tests/run/small_chunks.py)."""
    head = (LAUNCH[:3] + ["--multi_gpu"] if strategy == "ddp" else
            LAUNCH[:3] + ["--config_file", str(ROOT / "recipes" / "accelerate" / "zero3.yaml")])
    launcher = head + LAUNCH[3:] + [str(ROOT / "tests" / "run" / "small_chunks.py")]
    p = laconic(overrides(untrained_toy, out, *UNEQUAL), env={"DS_ACCELERATOR": "cpu"}, launcher=launcher, timeout=300)
    assert p.returncode == 0, p.stderr[-4000:]
    return strip_timing([json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()])


@pytest.mark.skipif(not HAS_DS, reason="deepspeed is not installed")
def test_unequal_micro_batch_counts_in_the_no_grad_pass(untrained_toy, tmp_path):
    """The old-log-prob pass runs each process's own micro-batch count (8 and 6 here). That is safe only
    because no collective depends on it: ZeRO-3 scores inside ``full_weights`` (weights gathered, hooks
    lifted) and DDP broadcasts buffers in the first forward after a backward only. The run must end on
    every process, with its DDP twin's numbers (mismatched collectives can also end with wrong ones)."""
    a = launch_unequal("ddp", untrained_toy, tmp_path / "ddp")
    b = launch_unequal(3, untrained_toy, tmp_path / "zero3")
    assert [r["step"] for r in b] == [1, 2] and b[1]["grad_norm"] > 0
    for ra, rb in zip(a, b):
        for k in ra:
            assert rb[k] == pytest.approx(ra[k], rel=1e-5, abs=1e-6), (ra["step"], k)
