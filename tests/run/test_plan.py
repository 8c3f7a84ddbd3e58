"""The memory planner (rl/run/plan.py): each formula against numbers computed by hand, and `laconic plan`."""

import pytest

from rl.cli import main
from rl.config import load_config
from rl.run.memory import (KNOWN_SHAPES, GiB, Precision, Shape, activation_bytes, kv_bytes_per_token,
                           layer_activation_bytes, logits_bytes, micro_batch_count, reference_bytes,
                           reference_forward_bytes, training_state, update_peak_bytes, vllm_activation_bytes)
from rl.run.plan import PlanError, check_run, make_plan

from tests.conftest import ROOT

# h=4, 1 layer, 2 heads of d=2 (q=4), 1 kv head (kv=2), intermediate 8, vocab 10, tied, no bias
TINY = Shape(hidden=4, layers=1, heads=2, kv_heads=1, intermediate=8, vocab=10, tied=True)
FP32 = Precision(4, 4, 4)
R1_15B = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
R1_7B = "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"


def test_params_by_hand():
    # layer: q 4*4 + k,v 2*(4*2) + o 4*4 + MLP 3*4*8 + 2 norms 2*4 = 16+16+16+96+8 = 152
    # + tied embedding 10*4 + final norm 4
    assert TINY.layer_params() == 152
    assert TINY.params() == 196
    assert Shape(4, 1, 2, 1, 8, 10, tied=False, qkv_bias=True).params() == 196 + 40 + (4 + 2 + 2)
    # the hub's parameter counts of the two R1 distills (1.78B, 7.62B)
    assert KNOWN_SHAPES[R1_15B].params() == 1_777_088_000
    assert KNOWN_SHAPES[R1_7B].params() == 7_615_616_512


def test_training_state_by_strategy():
    mixed = Precision(4, 2, 4, mixed=True)
    # DDP, fp32 weights under bf16 autocast: 4N weights, 4N grads, 8N Adam, 4N buckets + 2N casts
    assert training_state(1000, 1000, 0, 8, mixed) == {"weights": 4000, "gradients": 4000, "optimizer": 8000,
                                                       "buffers": 6000}
    # one CPU process: no buckets, no casts
    assert training_state(1000, 1000, 0, 1, FP32)["buffers"] == 0
    # LoRA: gradients and Adam for the 10 trainable parameters only
    assert training_state(1000, 10, 0, 1, FP32) == {"weights": 4000, "gradients": 40, "optimizer": 80, "buffers": 0}
    bf16 = Precision(2, 2, 2)
    z2 = training_state(8000, 8000, 2, 8, bf16)  # 2N, (2+4)N/g, 12N/g, 2 x 5e8 bf16 buckets
    assert z2 == {"weights": 16000, "gradients": 6000, "optimizer": 12000, "buffers": 2_000_000_000}
    z3 = training_state(8000, 8000, 3, 8, bf16)
    assert z3["weights"] == 2000 + 2_000_000_000 and z3["gradients"] == 6000 and z3["optimizer"] == 12000


def test_reference_bytes():
    assert reference_bytes(1000, kl=True, lora=False, ref_bytes=2) == 2000
    assert reference_bytes(1000, kl=False, lora=False, ref_bytes=2) == 0
    assert reference_bytes(1000, kl=True, lora=True, ref_bytes=2) == 0
    assert reference_bytes(1000, kl=True, lora=False, ref_bytes=2, zero=3, g=8) == 250  # sharded under ZeRO-3


def test_layer_activations_by_hand():
    # fp32, rows of width 10: norms 2*(4+4+4)*4 = 96; SDPA's q, k, v, output 4*4*4 = 64 + lse 4*2 = 8
    # + the mask converted to fp32 4*10 = 40; MLP 4*4*8 = 128
    assert layer_activation_bytes(TINY, FP32, 10) == 96 + 64 + 8 + 40 + 128
    # bf16 weights and compute: norms 2*(4+2+2)*4 = 64; 2*16 = 32 + 8 + 2*10 = 20; MLP 4*2*8 = 64
    assert layer_activation_bytes(TINY, Precision(2, 2, 2), 10) == 64 + 32 + 8 + 20 + 64


def test_activations_by_hand():
    layer = 336
    model = (4 + 4) * 4 + 2 * 4 * 2 + 10  # final norm, cos/sin, the boolean mask of width 10
    gathered = 2 * 6 * 4 * 4  # 2 rows x 6 completion tokens x r h
    # 20 tokens in 2 rows of width 10; without checkpointing every layer is kept
    assert activation_bytes(TINY, FP32, 20, 10, 6, checkpointing=False) == {
        "kept": 20 * (layer + model) + gathered, "working": 20 * layer}
    # with checkpointing only the layer inputs (4h)
    assert activation_bytes(TINY, FP32, 20, 10, 6, checkpointing=True) == {
        "kept": 20 * (16 + model) + gathered, "working": 20 * layer}
    # the reference's forward: 2rh + max(attention c(4q + 2kv + width), MLP 3ci) = 32 + max(120, 96)
    assert reference_forward_bytes(TINY, FP32, 20, 10, 6) == {"layer": 20 * 152, "gathered": gathered}


def test_packed_activations_by_hand():
    """train.packing: attention per sequence, no padding mask, keys and values not repeated."""
    # norms 96; SDPA's q 16, k and v 2 * 4 * 2 = 16, each sequence's output and their concatenation 2 * 16
    # + lse 8 (no mask); MLP 128
    assert layer_activation_bytes(TINY, FP32, 10, packed=True) == 96 + 16 + 16 + 32 + 8 + 128
    layer, model, gathered = 296, (4 + 4) * 4 + 2 * 4 * 2, 2 * 6 * 4 * 4  # no boolean mask either
    assert activation_bytes(TINY, FP32, 20, 10, 6, checkpointing=False, packed=True) == {
        "kept": 20 * (layer + model) + gathered, "working": 20 * layer}
    # the reference's forward: 2rh + max(c(3q + 2kv), 3ci) = 32 + max(64, 96)
    assert reference_forward_bytes(TINY, FP32, 20, 10, 6, packed=True) == {"layer": 20 * 128, "gathered": gathered}


def test_plan_with_packing_counts_the_packed_shapes():
    """The widest case (every row prompt + max_new_tokens) puts as many rows in a micro-batch packed or
    padded, so the tokens and micro-batch count agree; the activations lose the mask and the repeated keys
    and values, so the largest micro_batch_tokens that fits grows (DLER 1.5B: 100,352 padded)."""
    padded, packed = tiny_plan("train.micro_batch_size=2"), tiny_plan("train.micro_batch_size=2", "train.packing=true")
    assert packed.packing and (packed.tokens, packed.micro_batches()) == (padded.tokens, padded.micro_batches())
    assert packed.activations() == activation_bytes(TINY, FP32, 20, 10, 6, checkpointing=False, packed=True)
    assert packed.update()[0] < padded.update()[0]
    recipe = str(ROOT / "recipes" / "gpu" / "dler_r1_1.5b.yaml")
    cfgs = [load_config(recipe, [f"train.packing={v}"]) for v in ("false", "true")]
    plans = [make_plan(c, gpus=8, gpu_memory_gib=80, zero=0, prompt_tokens=1024) for c in cfgs]
    assert plans[0].max_micro_batch_tokens() == 100352 < plans[1].max_micro_batch_tokens()
    assert plans[1].update()[0] < plans[0].update()[0]


def test_update_peak_points_by_hand():
    state = {"weights": 100, "gradients": 50, "optimizer": 200, "buffers": 10}
    act = {"kept": 400, "working": 80}
    resident = 100 + 200 + 10 + 30 + 5
    # forward 400+60, head 400+max(60+20, 40), layers 400+20+80, end 50+80
    assert update_peak_bytes(state, 30, act, 60, 20, None, 5) == (resident + 500, "layers")
    # a large head gradient: its chunk contribution before accumulation doubles it
    assert update_peak_bytes(state, 30, act, 60, 100, None, 5) == (resident + 600, "head")
    # the reference's forward transient on top of the kept activations
    assert update_peak_bytes(state, 30, act, 60, 20, {"layer": 300, "gathered": 10}, 5) == (resident + 700, "forward")
    # all gradients at the bottom layer
    assert update_peak_bytes({**state, "gradients": 1000}, 30, act, 60, 20, None, 5) == (resident + 1080, "end")


def test_update_peak_with_accumulated_gradients_by_hand():
    """issue 23, claim 7: from the second micro-batch of an optimizer step on, every point holds the
    gradients accumulated so far (the end point holds all gradients either way)."""
    state = {"weights": 100, "gradients": 50, "optimizer": 200, "buffers": 10}
    act = {"kept": 400, "working": 80}
    resident = 100 + 200 + 10 + 30 + 5
    # one micro-batch: layers 400+20+80 = 500 (as in test_update_peak_points_by_hand)
    assert update_peak_bytes(state, 30, act, 60, 20, None, 5, accumulated=0) == (resident + 500, "layers")
    # two: 50 more at forward, head and layers; end stays 50+80
    assert update_peak_bytes(state, 30, act, 60, 20, None, 5, accumulated=50) == (resident + 550, "layers")
    # the point moves: one micro-batch peaks at the end (gradients 300 + working 80 = 380 > layers 180+20+80 = 280);
    # with the 300 held: forward 300+180+60 = 540, head 300+180+80 = 560, layers 300+180+20+80 = 580, end 380
    small = {"kept": 180, "working": 80}
    big = {**state, "gradients": 300}
    assert update_peak_bytes(big, 30, small, 60, 20, None, 5) == (resident + 380, "end")
    assert update_peak_bytes(big, 30, small, 60, 20, None, 5, accumulated=300) == (resident + 580, "layers")
    # and with KL the reference's forward transient: forward 300 + 180 + 400 = 880
    assert update_peak_bytes(big, 30, small, 60, 20, {"layer": 400, "gathered": 10}, 5,
                             accumulated=300) == (resident + 880, "forward")


def test_micro_batch_count_by_hand():
    # rows of width 640: 4 rollouts, 4 a micro-batch: one; 2 a micro-batch: two
    assert micro_batch_count(4, 4, 640) == 1 and micro_batch_count(4, 2, 640) == 2
    # a token cap of 1280 allows 2 rows of 640; 1000 allows one (a row longer than the cap goes alone)
    assert micro_batch_count(4, 4, 640, 1280) == 2 and micro_batch_count(4, 4, 640, 1000) == 4
    assert micro_batch_count(5, 2, 640) == 3  # the last micro-batch holds one row


def tiny_plan(*overrides, gpus=1):
    """TINY on CPU in float32: prompts of 4 and completions of 6 tokens (rows of width 10), no KL;
    2 prompts x 2 completions a step, all in one micro-batch unless overridden."""
    cfg = load_config(None, ["rollout.max_new_tokens=6", "rollout.group_size=2", "rollout.prompts_per_step=2",
                             "train.micro_batch_size=4", "algo.kl_coef=0", *overrides])
    return make_plan(cfg, gpus=gpus, gpu_memory_gib=1, zero=0, prompt_tokens=4, device="cpu", shape=TINY)


def test_plan_cuts_a_step_as_the_trainer_does():
    one = tiny_plan()
    assert (one.step_rows, one.width, one.tokens, one.micro_batches()) == (4, 10, 40, 1)
    assert tiny_plan("train.micro_batch_size=2").micro_batches() == 2  # 4 rows, 2 a micro-batch
    assert tiny_plan("train.micro_batch_size=3").micro_batches() == 2  # 3 + 1
    assert tiny_plan("train.micro_batch_tokens=20").micro_batches() == 2  # 2 rows of 10 tokens
    two_steps = tiny_plan("train.micro_batch_size=2", "algo.updates_per_rollout=2")  # 2 steps of 2 rows
    assert (two_steps.step_rows, two_steps.micro_batches()) == (2, 1)
    assert tiny_plan("train.micro_batch_size=2", gpus=2).micro_batches() == 1  # 2 rows on each GPU


def test_plan_holds_gradients_from_the_second_micro_batch_by_hand():
    grads = 4 * 196  # fp32 gradients of TINY's 196 parameters
    head = 4 * 10 * 4  # the (tied) head's fp32 gradient, V x H
    logits = logits_bytes(TINY, FP32)

    def by_hand(tokens):  # 4N weights + 8N AdamW resident (one process: no buckets), then the points
        act = activation_bytes(TINY, FP32, tokens, 10, 6, checkpointing=False)
        points = {"forward": act["kept"] + logits, "head": act["kept"] + max(logits + head, 2 * head),
                  "layers": act["kept"] + head + act["working"], "end": grads + act["working"]}
        where = max(points, key=points.get)
        return 12 * 196 + points[where], where

    one = tiny_plan()  # one micro-batch of 40 tokens: nothing held
    assert one.states[0]["gradients"] == grads
    assert one.update() == one.update(accumulate=False) == by_hand(40)
    two = tiny_plan("train.micro_batch_size=2")  # two of 20 tokens: the gradients on top
    peak, where = by_hand(20)
    assert two.tokens == 20 and where != "end"
    assert two.update(accumulate=False) == (peak, where)
    assert two.update() == (peak + grads, where)


def test_largest_micro_batch_tokens_past_the_step_down():
    """A smaller micro_batch_tokens means more micro-batches, so held gradients: the peak grows with
    the tokens but drops where one micro-batch takes the whole step. Here the gradients (3.2 MB) outweigh
    the activations of 512 tokens, so 2 micro-batches of 512 tokens do not fit where one of 1024 does."""
    wide = Shape(hidden=4, layers=1, heads=2, kv_heads=1, intermediate=8, vocab=100_000, tied=False)
    cfg = load_config(None, ["rollout.max_new_tokens=200", "rollout.group_size=2", "rollout.prompts_per_step=2",
                             "train.micro_batch_size=4", "train.micro_batch_tokens=512", "algo.kl_coef=0"])
    plan = make_plan(cfg, gpus=1, gpu_memory_gib=1, zero=0, prompt_tokens=56, device="cpu", shape=wide)
    assert (plan.width, plan.step_rows, plan.tokens, plan.micro_batches()) == (256, 4, 512, 2)
    assert plan.states[0]["gradients"] > plan.update(1024)[0] - plan.update(512, accumulate=False)[0]
    plan.total = plan.update(1024)[0] / 0.9  # usable: exactly one micro-batch of the 4 rows
    assert plan.update(1024)[0] <= plan.usable < plan.update(512)[0]
    assert plan.max_micro_batch_tokens() == 1024  # more tokens would not fit, fewer accumulate
    assert plan.failure().endswith("set train.micro_batch_tokens=1024 (the largest that fits)")
    assert "512 tokens a micro-batch, 2 a step" in plan.failure()


def test_logits_chunk_by_hand():
    # chunk_tokens(151936) = 64 MiB // (4 * 151936) = 110 tokens; the head's output + 2 fp32 buffers
    v = Shape(64, 1, 4, 2, 128, 151936, False)
    assert logits_bytes(v, FP32) == 110 * 151936 * 12
    assert logits_bytes(v, Precision(2, 2, 2)) == 110 * 151936 * 10


def test_logits_chunk_with_the_fp32_head_by_hand():
    # train.head_fp32: a float32 head output (12 bytes a logit in all); bf16 weights add the chunk's float32
    # copy of the head (4VH) and its float32 gradient (4VH); under DDP's autocast the head is float32 already,
    # the bf16 KL reference's copy (4VH) is counted; in float32 nothing is copied
    v = Shape(64, 1, 4, 2, 128, 151936, False)
    assert logits_bytes(v, Precision(2, 2, 2), head_fp32=True) == 110 * 151936 * 12 + 8 * 151936 * 64
    assert logits_bytes(v, Precision(4, 2, 4, mixed=True), head_fp32=True) == 110 * 151936 * 12 + 4 * 151936 * 64
    assert logits_bytes(v, FP32, head_fp32=True) == logits_bytes(v, FP32)
    # R1-Distill-Qwen-7B under ZeRO-2 (1 GiB chunks): 2.5 -> 7.1 GiB, 4.06 of them the copy and its gradient
    off, on = (make_plan(gpu_recipe("dler_r1_7b", f"train.head_fp32={f}"), gpus=8, gpu_memory_gib=80, zero=2,
                         prompt_tokens=1024) for f in ("false", "true"))
    assert on.logits - off.logits == 1765 * 152064 * 2 + 8 * 152064 * 3584  # 1,765 tokens a chunk at V = 152,064
    assert round(off.logits / GiB, 1) == 2.5 and round(on.logits / GiB, 1) == 7.1


def test_vllm_terms_by_hand():
    assert kv_bytes_per_token(KNOWN_SHAPES[R1_15B]) == 2 * 28 * 2 * 128 * 2
    assert kv_bytes_per_token(KNOWN_SHAPES[R1_7B]) == 2 * 28 * 4 * 128 * 2
    # bf16 x (4h + q + 2kv + 3i) per token + 3 fp32 logits rows per sequence
    assert vllm_activation_bytes(TINY, 100, 3) == 100 * 2 * (16 + 4 + 4 + 24) + 3 * 3 * 4 * 10


def gpu_recipe(name="dler_r1_7b", *overrides):
    return load_config(f"recipes/gpu/{name}.yaml", list(overrides))


def test_plan_7b_zero2_phases():
    cfg = gpu_recipe()
    plan = make_plan(cfg, gpus=8, gpu_memory_gib=80, zero=2, prompt_tokens=1024)
    n = 7_615_616_512
    st = plan.states[2]
    assert (st["weights"], st["optimizer"]) == (2 * n, 12 * n / 8)
    assert plan.reference == 2 * n  # bf16 reference on every GPU (kl_coef 5e-4)
    assert plan.tokens == 2 * (1024 + 4000)  # micro_batch_size 2 binds before micro_batch_tokens 16384
    peak, where = plan.update()
    act = plan.activations()
    resident = st["weights"] + st["optimizer"] + st["buffers"] + 2 * n + plan.overhead
    # 512 prompts x 16 completions / 8 GPUs = 1024 rollouts a step, 2 a micro-batch: the gradient
    # partitions are held from the second micro-batch on; a 1 GiB logits chunk (the GPU default) in
    # backward, 2.5 GiB with its float32 copies, outweighs the top layer's working set (2.3 GiB)
    assert plan.micro_batches() == 512
    assert plan.logits > act["working"]
    assert where == "head" and peak == pytest.approx(resident + st["gradients"] + act["kept"] + plan.logits
                                                     + plan.head_grad)
    assert plan.update(accumulate=False) == (pytest.approx(resident + st["gradients"] + act["working"]), "end")
    v = plan.vllm
    assert v["max_model_len"] == 1024 + 16384  # the eval limit is the longer one
    # the planned vLLM share fills what training leaves, so the rollout phase ends within the usable memory
    assert plan.rollout_peak() <= plan.usable < plan.rollout_peak() + 0.01 * plan.total
    assert v["kv_cache"] == pytest.approx(v["utilization"] * 80 * GiB - v["weights"] - v["activations"])
    assert plan.failure() is None


def test_plan_names_phase_and_knob():
    cfg = gpu_recipe("dler_r1_1.5b", "train.micro_batch_size=64", "train.micro_batch_tokens=null", "rollout.max_new_tokens=16384")
    plan = make_plan(cfg, gpus=8, gpu_memory_gib=80, zero=0, prompt_tokens=1024)
    msg = plan.failure()
    best = plan.max_micro_batch_tokens()
    assert msg.startswith("update phase needs") and f"train.micro_batch_tokens={best}" in msg
    fitted = make_plan(gpu_recipe("dler_r1_1.5b", "train.micro_batch_size=64", "rollout.max_new_tokens=16384",
                                  f"train.micro_batch_tokens={best}"), gpus=8, gpu_memory_gib=80, zero=0, prompt_tokens=1024)
    assert fitted.update_peak() <= fitted.usable
    too_big = make_plan(gpu_recipe("dler_r1_1.5b", "train.micro_batch_size=64", "rollout.max_new_tokens=16384",
                                   f"train.micro_batch_tokens={best + 4096}"), gpus=8, gpu_memory_gib=80, zero=0,
                        prompt_tokens=1024)
    assert too_big.update_peak() > too_big.usable
    # the 7B's training state alone exceeds 80 GiB under DDP: the knob is the ZeRO stage
    plan = make_plan(gpu_recipe(), gpus=8, gpu_memory_gib=80, zero=0, prompt_tokens=1024)
    assert "use ZeRO-2" in plan.failure()
    # a recipe-set vLLM share too small for one max_model_len sequence: the rollout phase
    plan = make_plan(gpu_recipe("dler_r1_7b", "rollout.vllm_gpu_memory_utilization=0.22"), gpus=8,
                     gpu_memory_gib=80, zero=2, prompt_tokens=1024)
    assert plan.failure().startswith("rollout phase: vLLM's KV cache")
    # a fixed KV cache that leaves no room: the rollout phase, and the recipe's own knob
    plan = make_plan(gpu_recipe("dler_r1_7b", "rollout.vllm_kv_cache_gb=60"), gpus=8, gpu_memory_gib=80, zero=2,
                     prompt_tokens=1024)
    assert plan.vllm["kv_cache"] == 60 * GiB
    assert plan.failure().startswith("rollout phase needs") and "lower rollout.vllm_kv_cache_gb" in plan.failure()


def test_cli_plan_exit_codes(capsys):
    assert main(["plan", "recipes/gpu/dler_r1_7b.yaml"]) == 0  # ZeRO-2 from the recipe's launch line
    out = capsys.readouterr().out
    assert "ZeRO-2" in out and out.rstrip().endswith("fits") and "largest train.micro_batch_tokens" in out
    assert main(["plan", "recipes/gpu/dler_r1_7b.yaml", "--zero", "0"]) == 1
    assert "DOES NOT FIT: update phase" in capsys.readouterr().out
    # a model that another recipe trains (runs/gpu/dler_r1_7b/final): planned with that recipe's shapes
    assert main(["plan", "recipes/gpu/da_dler_r1_7b.yaml", "--accelerate-config", "recipes/accelerate/zero3.yaml"]) == 0
    assert "7.62B parameters" in capsys.readouterr().out
    assert main(["plan", "recipes/gpu/dler_r1_7b.yaml", "model.name_or_path=/nonexistent/model"]) == 2
    assert "no shapes for '/nonexistent/model'" in capsys.readouterr().err


def fake_gpu(monkeypatch, gib=80):
    """A CUDA-looking torch and an 8-process DDP accelerator, for check_run's GPU path."""
    import types

    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda _: types.SimpleNamespace(total_memory=gib * GiB))
    printed = []
    acc = types.SimpleNamespace(distributed_type=types.SimpleNamespace(value="MULTI_GPU"), num_processes=8,
                                device="cuda:0", print=printed.append)
    return acc, printed


def test_check_run_sizes_vllm_on_gpu(monkeypatch):
    acc, printed = fake_gpu(monkeypatch)
    cfg = gpu_recipe("dler_r1_1.5b")
    plan = check_run(cfg, acc, prompt_tokens=300)
    r = cfg.rollout
    assert r.vllm_dtype == "bfloat16" and r.vllm_max_model_len == 300 + 16384
    assert r.vllm_gpu_memory_utilization == plan.vllm["utilization"] and 0 < r.vllm_gpu_memory_utilization <= 0.9
    assert printed and printed[0].startswith("memory plan")
    # a recipe's own share is kept
    cfg = gpu_recipe("dler_r1_1.5b", "rollout.vllm_gpu_memory_utilization=0.4", "rollout.vllm_max_model_len=20000")
    check_run(cfg, acc, prompt_tokens=300)
    assert (cfg.rollout.vllm_gpu_memory_utilization, cfg.rollout.vllm_max_model_len) == (0.4, 20000)


def test_check_run_stops_with_one_line(monkeypatch):
    acc, _ = fake_gpu(monkeypatch, gib=24)
    with pytest.raises(PlanError, match=r"^update phase needs .* GiB of 21.6 GiB usable per GPU .*: use ZeRO-2"):
        check_run(gpu_recipe("dler_r1_1.5b"), acc, prompt_tokens=300)


def test_check_run_is_a_no_op_on_cpu():
    cfg = gpu_recipe()
    assert check_run(cfg, acc=None, prompt_tokens=100) is None
    assert cfg.rollout.vllm_gpu_memory_utilization is None and cfg.rollout.vllm_dtype == "auto"


def test_plan_error_is_a_config_error():
    from rl.config import ConfigError

    assert issubclass(PlanError, ConfigError)


@pytest.mark.parametrize("recipe", sorted(p.stem for p in (ROOT / "recipes" / "gpu").glob("*.yaml")))
def test_every_gpu_recipe_fits_8x80(recipe, capsys):
    """issue 13: every GPU recipe passes `laconic plan` at 8 x 80 GB (strategy from its launch line)."""
    assert main(["plan", f"recipes/gpu/{recipe}.yaml", "--gpu-memory", "80", "--gpus", "8"]) == 0, capsys.readouterr().out
