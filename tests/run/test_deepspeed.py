"""DeepSpeed ZeRO-2/3 under the trainer (rl/run/distributed.py).

The config patching is tested without DeepSpeed. The end-to-end runs need ``pip install deepspeed``
(skipped otherwise) and run on CPU: DeepSpeed's CPU accelerator with gloo, 2 processes, launched
with the repository's own recipes/accelerate/zero{2,3}.yaml, or with tests/run/zero3_partitioned.yaml
(ZeRO-3 with every parameter partitioned: the toy's parameters are all under DeepSpeed's persistence
threshold, so the recipe's ZeRO-3 would keep them whole). They train 2 steps next to a DDP run of the
same settings and compare metrics and final weights.

The multi-process matrix (issue 23): DDP, ZeRO-2 and ZeRO-3 with the transformers and the colocated
vLLM engine, 2 updates per rollout with entropies, KL to a reference, unequal micro-batch and head-chunk
counts per process (``train.micro_batch_tokens`` and 4-token chunks, tests/run/instrumented.py), and
tensorboard with the evaluations before and after; the server engine with 2 trainer processes is in
tests/engines/test_vllm_server.py; and the update alone, on fixed rollouts split over 2 processes, against
one process with all of them (tests/run/update_check.py).
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
HAS_VLLM = importlib.util.find_spec("vllm") is not None
PARTITIONED = ROOT / "tests" / "run" / "zero3_partitioned.yaml"


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


UNEQUAL = [*EXTRA, "train.micro_batch_tokens=48", "algo.entropy_coef=0.01"]


def launch_unequal(strategy, untrained_toy, out, *extra, env=None):
    """``train.micro_batch_tokens`` small enough that the micro-batch count of the old-log-prob pass
    (2 updates per rollout) follows each process's completion lengths (seen: 8 and 6 at step 2), and
    4-token head chunks (tests/run/instrumented.py). ``strategy``: "ddp", 2, or 3 (every parameter
    partitioned)."""
    config = {2: ROOT / "recipes" / "accelerate" / "zero2.yaml", 3: PARTITIONED}.get(strategy)
    head = LAUNCH[:3] + (["--multi_gpu"] if strategy == "ddp" else ["--config_file", str(config)])
    launcher = head + LAUNCH[3:] + [str(ROOT / "tests" / "run" / "instrumented.py")]
    p = laconic(overrides(untrained_toy, out, *UNEQUAL, *extra), env={"DS_ACCELERATOR": "cpu", **(env or {})},
                launcher=launcher, timeout=300)
    assert p.returncode == 0, p.stderr[-4000:]
    return strip_timing([json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()])


def assert_twins(a, b):
    """Two runs' metrics, step by step: the same keys and values to 1e-5 (relative) / 1e-6."""
    assert [r["step"] for r in b] == [r["step"] for r in a] == [1, 2] and b[1]["grad_norm"] > 0 and b[1]["kl"] > 0
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for k in ra:
            assert rb[k] == pytest.approx(ra[k], rel=1e-5, abs=1e-6), (ra["step"], k)


@pytest.fixture(scope="module")
def ddp_unequal_run(untrained_toy, tmp_path_factory):
    return launch_unequal("ddp", untrained_toy, tmp_path_factory.mktemp("ddp_unequal") / "run")


@pytest.mark.skipif(not HAS_DS, reason="deepspeed is not installed")
@pytest.mark.parametrize("stage", [2, 3])
def test_unequal_work_per_process_matches_ddp(stage, ddp_unequal_run, untrained_toy, tmp_path):
    """Completions of different lengths per process: different micro-batch counts in the old-log-prob
    pass (8 and 6 at step 2) and different head-chunk counts (4-token chunks). Under ZeRO-3 every forward
    and every head call gathers parameters, a collective, so the processes agree on both counts
    (``agree_max``; before, the 4-token-chunk run hung at step 1 with a load of 0.00 until killed). DDP
    broadcasts buffers in the first forward after a backward only, so its own counts are safe
    (issue 23, claim 1 refuted). Each run must end, with its DDP twin's numbers (mismatched collectives
    can also end with wrong ones)."""
    assert_twins(ddp_unequal_run, launch_unequal(stage, untrained_toy, tmp_path / f"zero{stage}"))


@pytest.mark.skipif(not HAS_DS, reason="deepspeed is not installed")
def test_zero3_weight_push_gathers_one_bucket_at_a_time(untrained_toy, tmp_path):
    """A weight push under ZeRO-3 yields exactly the model's weights while holding at most one bucket
    gathered, and generation for a vLLM engine gathers nothing (tests/run/zero3_push_check.py)."""
    import os
    import subprocess

    cmd = LAUNCH[:3] + ["--config_file", str(PARTITIONED)] + LAUNCH[3:] + [
        str(ROOT / "tests" / "run" / "zero3_push_check.py"), str(untrained_toy), str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DS_ACCELERATOR": "cpu", "PYTHONPATH": str(ROOT)}
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and p.stdout.count("ok") == 2, (p.stdout + p.stderr)[-4000:]


VLLM = ["rollout.engine=vllm", "train.report_to=[tensorboard]", "train.reference_samples=2"]


@pytest.fixture(scope="module")
def ddp_vllm_run(untrained_toy, tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp_vllm") / "run"
    return out, launch_unequal("ddp", untrained_toy, out, *VLLM)


@pytest.mark.skipif(not (HAS_DS and HAS_VLLM), reason="needs deepspeed and vllm")
@pytest.mark.parametrize("stage", [2, 3])
def test_colocated_vllm_under_zero_matches_ddp(stage, ddp_vllm_run, untrained_toy, tmp_path):
    """The colocated vLLM engine on 2 processes (one engine each, vLLM's external launcher), with the
    reference pass, tensorboard, evaluations and unequal work per process: ZeRO-2/3 end with DDP's
    numbers. Under ZeRO-3 (every parameter partitioned) no generation holds the policy gathered: vLLM
    samples from its own copy, pushed one bucket at a time."""
    ddp_out, a = ddp_vllm_run
    out = tmp_path / f"zero{stage}"
    b = launch_unequal(stage, untrained_toy, out, *VLLM)
    assert_twins(a, b)
    assert list(out.rglob("events.out.tfevents.*")) and "after" in json.loads((out / "summary.json").read_text())
    for rank in (0, 1):
        seen = json.loads((out / f"gathered-rank{rank}.json").read_text())
        # the reference pass and 2 steps, plus the evaluations before and after where the process has a prompt
        assert len(seen["generate"]) >= 3, seen
        if stage == 3:
            assert not any(seen["generate"]), seen


@pytest.fixture(scope="module")
def one_process_update(untrained_toy, tmp_path_factory):
    import os
    import subprocess

    out = tmp_path_factory.mktemp("update")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, str(ROOT / "tests" / "run" / "update_check.py"), str(untrained_toy), str(out), "one"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and "ok" in p.stdout, (p.stdout + p.stderr)[-4000:]
    return out


@pytest.mark.parametrize("strategy", ["ddp", 2, 3])
def test_two_process_update_matches_one_process_on_fixed_rollouts(strategy, one_process_update, untrained_toy):
    """The update on 8 fixed rollouts of unequal lengths (old-log-prob pass, 2 optimizer steps, KL,
    entropy bonus: tests/run/update_check.py), split over 2 processes under DDP, ZeRO-2 or ZeRO-3 (every
    parameter partitioned), leaves the weights a single process leaves with all 8: the loss is normalised
    by the step's global counts, and gradients are averaged over processes."""
    import os
    import subprocess

    if strategy != "ddp" and not HAS_DS:
        pytest.skip("deepspeed is not installed")
    config = {2: ROOT / "recipes" / "accelerate" / "zero2.yaml", 3: PARTITIONED}.get(strategy)
    head = LAUNCH[:3] + (["--multi_gpu"] if strategy == "ddp" else ["--config_file", str(config)])
    cmd = head + LAUNCH[3:] + [str(ROOT / "tests" / "run" / "update_check.py"), str(untrained_toy),
                               str(one_process_update), str(strategy)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DS_ACCELERATOR": "cpu", "PYTHONPATH": str(ROOT)}
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and p.stdout.count("ok") == 2, (p.stdout + p.stderr)[-4000:]
    import torch
    from safetensors.torch import load_file

    one = torch.load(one_process_update / "weights-one.pt")
    two = torch.load(one_process_update / f"weights-{strategy}.pt")
    start = load_file(untrained_toy / "model.safetensors")
    assert one.keys() == two.keys()
    # moved by ~2e-3 (lr 1e-3, Adam, 2 steps); the split agrees to ~1e-5 (Adam normalises tiny gradients)
    assert max((one[k] - start[k]).abs().max() for k in start) > 1e-3
    for k in one:
        assert (one[k] - two[k]).abs().max() < 5e-5, k


@pytest.mark.parametrize("strategy", ["ddp", 3])
def test_two_process_packed_update_matches_one_padded_process(strategy, one_process_update, untrained_toy):
    """``train.packing`` (tests/run/update_check.py ... packed) over 2 processes: packed rows, and each
    optimizer step's 4 rollouts dealt to the processes again by tokens (step 1 goes from 7 + 16 | 23 + 8
    tokens to 7 + 23 | 16 + 8: ``balance_processes``), with the old-log-prob pass, 2 optimizer steps, KL and
    an entropy bonus. The weights end where one padded process with all 8 rollouts leaves them: every
    rollout is trained once, in its own optimizer step; under ZeRO-3 (every parameter partitioned) the
    processes also agree on their forward and head-call counts."""
    import os
    import subprocess

    if strategy != "ddp" and not HAS_DS:
        pytest.skip("deepspeed is not installed")
    head = LAUNCH[:3] + (["--multi_gpu"] if strategy == "ddp" else ["--config_file", str(PARTITIONED)])
    tag = f"packed-{strategy}"
    cmd = head + LAUNCH[3:] + [str(ROOT / "tests" / "run" / "update_check.py"), str(untrained_toy),
                               str(one_process_update), tag, "packed"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DS_ACCELERATOR": "cpu", "PYTHONPATH": str(ROOT)}
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and p.stdout.count("ok") == 2, (p.stdout + p.stderr)[-4000:]
    import torch

    one = torch.load(one_process_update / "weights-one.pt")
    two = torch.load(one_process_update / f"weights-{tag}.pt")
    assert one.keys() == two.keys()
    for k in one:
        assert (one[k] - two[k]).abs().max() < 5e-5, k
    a = json.loads((one_process_update / "stats-one.json").read_text())
    b = json.loads((one_process_update / f"stats-{tag}.json").read_text())
    assert b["loss"] == pytest.approx(a["loss"], abs=1e-5)


@pytest.mark.skipif(not HAS_DS, reason="deepspeed is not installed")
def test_head_fp32_under_zero3_gathers_the_tied_head_and_keeps_its_gradient(untrained_toy):
    """``train.head_fp32`` under ZeRO-3 with bf16 weights, every parameter partitioned, 2 processes with
    different head-chunk counts (tests/run/zero3_head_fp32_check.py): each chunk calls the head module, whose
    ZeRO-3 hooks gather the tied weight; float32 outputs, log-probs equal to a float64 head on the same hidden
    states, and the tied weight's gradient equal to a plain bf16 copy's to bf16 precision."""
    import os
    import subprocess

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "tests" / "run" / "zero3_head_fp32_check.py"), str(untrained_toy)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DS_ACCELERATOR": "cpu", "PYTHONPATH": str(ROOT)}
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and p.stdout.count("ok") == 2, (p.stdout + p.stderr)[-4000:]
