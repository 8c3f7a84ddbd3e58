"""DLER update-selective merging (rl/models/merge.py, scripts/merge_updates.py):
θ_merged = θ_base + λ · mask_top-k%(Δ) ⊙ Δ with Δ = θ_tuned − θ_base; and long-to-short merging
(task arithmetic, TIES, DARE) of one or more task vectors."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rl.models.merge import INFO_FILE, merge_updates, n_keep
from rl.models.task_vectors import merge_task_vectors

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "merge_updates.py"


def t(*rows) -> torch.Tensor:
    return torch.tensor(rows if len(rows) > 1 else rows[0], dtype=torch.float32)


# ---------------------------------------------------------------- hand-computed


def test_hand_computed_single_tensor():
    base = {"w": torch.zeros(2, 3)}
    tuned = {"w": t([1.0, -5.0, 2.0], [0.5, -3.0, 4.0])}
    merged, stats = merge_updates(base, tuned, top_k=0.5, scale=0.7)
    # ceil(0.5 * 6) = 3 largest |Δ|: -5, 4, -3; each scaled by 0.7
    torch.testing.assert_close(merged["w"], t([0.0, -3.5, 0.0], [0.0, -2.1, 2.8]))
    assert stats["n_kept"] == 3 and stats["n_params"] == 6 and stats["kept_fraction"] == 0.5
    assert stats["per_tensor"]["w"]["kept"] == 3
    assert stats["mean_abs_delta_kept"] == pytest.approx((5 + 4 + 3) / 3)
    assert stats["mean_abs_delta_dropped"] == pytest.approx((1 + 2 + 0.5) / 3)
    assert stats["delta_energy_kept"] == pytest.approx(50 / (50 + 1 + 4 + 0.25))


def test_nonzero_base_adds_scaled_update():
    base = {"w": t([1.0, 1.0, 1.0, 1.0])}
    tuned = {"w": t([3.0, 0.0, 1.5, -9.0])}  # Δ = [2, -1, 0.5, -10]
    merged, _ = merge_updates(base, tuned, top_k=0.5, scale=0.5)
    torch.testing.assert_close(merged["w"], t([2.0, 1.0, 1.0, -4.0]))


def test_per_tensor_and_global_scope_differ():
    base = {"a": torch.ones(4), "b": torch.zeros(4)}
    tuned = {"a": t([11.0, 21.0, 31.0, 41.0]), "b": t([1.0, 2.0, 3.0, 4.0])}  # Δa = 10..40, Δb = 1..4
    per_tensor, s1 = merge_updates(base, tuned, top_k=0.5, scale=0.5, scope="tensor")
    # each tensor keeps its own 2 largest
    torch.testing.assert_close(per_tensor["a"], t([1.0, 1.0, 16.0, 21.0]))
    torch.testing.assert_close(per_tensor["b"], t([0.0, 0.0, 1.5, 2.0]))
    glob, s2 = merge_updates(base, tuned, top_k=0.5, scale=0.5, scope="global")
    # 4 of 8 overall: all of a's updates, none of b's
    torch.testing.assert_close(glob["a"], t([6.0, 11.0, 16.0, 21.0]))
    torch.testing.assert_close(glob["b"], torch.zeros(4))
    assert s1["n_kept"] == s2["n_kept"] == 4
    assert s2["per_tensor"]["a"]["kept"] == 4 and s2["per_tensor"]["b"]["kept"] == 0


def test_ties_keep_exactly_ceil_k_in_index_order():
    base = {"w": torch.zeros(5)}
    tuned = {"w": t([1.0, 1.0, 1.0, 1.0, 1.0])}
    merged, stats = merge_updates(base, tuned, top_k=0.5, scale=1.0)  # ceil(2.5) = 3
    assert merged["w"].tolist() == [1.0, 1.0, 1.0, 0.0, 0.0]
    assert stats["n_kept"] == 3
    # global ties: state-dict order first, then flat index
    base2 = {"a": torch.zeros(2), "b": torch.zeros(2)}
    tuned2 = {"a": t([1.0, 1.0]), "b": t([1.0, 2.0])}
    merged2, _ = merge_updates(base2, tuned2, top_k=0.5, scale=1.0, scope="global")
    assert merged2["a"].tolist() == [1.0, 0.0] and merged2["b"].tolist() == [0.0, 2.0]


def test_n_keep_rounding():
    assert n_keep(0.3, 10) == 3  # not 4 from 0.3 * 10 = 3.0000000000000004
    assert n_keep(0.25, 6) == 2
    assert n_keep(0.0, 10) == 0 and n_keep(1.0, 10) == 10
    assert n_keep(1e-9, 10) == 1


# ---------------------------------------------------------------- limits, dtypes, buffers


def _random_pair(seed: int = 0) -> tuple[dict, dict]:
    g = torch.Generator().manual_seed(seed)
    base = {"x": torch.randn(7, 5, generator=g) * 1e4, "y": torch.randn(13, generator=g)}
    tuned = {k: v + torch.randn(v.shape, generator=g) * 1e-3 for k, v in base.items()}
    return base, tuned


@pytest.mark.parametrize("scope", ["tensor", "global"])
def test_full_update_is_tuned_and_zero_is_base(scope):
    base, tuned = _random_pair()
    merged, stats = merge_updates(base, tuned, top_k=1.0, scale=1.0, scope=scope)
    for k in base:
        assert torch.equal(merged[k], tuned[k])  # exact, even where b + (t - b) would round
    assert stats["kept_fraction"] == 1.0
    for kwargs in ({"top_k": 0.0, "scale": 0.7}, {"top_k": 0.5, "scale": 0.0}):
        merged, _ = merge_updates(base, tuned, scope=scope, **kwargs)
        for k in base:
            assert torch.equal(merged[k], base[k])


def test_inputs_not_modified():
    base, tuned = _random_pair()
    before = {k: (v.clone(), tuned[k].clone()) for k, v in base.items()}
    merge_updates(base, tuned)
    for k, (b, tu) in before.items():
        assert torch.equal(base[k], b) and torch.equal(tuned[k], tu)


def test_dtype_preserved_and_int_buffers_copied():
    base = {"w": torch.zeros(4, dtype=torch.bfloat16), "steps": torch.tensor(3), "ids": torch.arange(4)}
    tuned = {"w": t([1.0, 2.0, 3.0, 4.0]), "steps": torch.tensor(7), "ids": torch.arange(4) * 2}
    merged, stats = merge_updates(base, tuned, top_k=0.5, scale=0.5)
    assert merged["w"].dtype == torch.bfloat16
    assert merged["w"].tolist() == [0.0, 0.0, 1.5, 2.0]
    assert merged["steps"].dtype == torch.int64 and merged["steps"].item() == 7
    assert merged["ids"].tolist() == [0, 2, 4, 6]
    assert sorted(stats["copied_non_floating"]) == ["ids", "steps"] and stats["n_tensors"] == 1


def test_tied_weights_merged_once():
    emb_b, emb_t = torch.zeros(2, 2), t([1.0, 2.0], [3.0, 4.0])
    base = {"emb": emb_b, "other": torch.zeros(2), "head": emb_b}
    tuned = {"emb": emb_t, "other": t([5.0, 0.5]), "head": emb_t}
    merged, stats = merge_updates(base, tuned, top_k=0.5, scale=1.0, scope="global")
    assert list(merged) == ["emb", "other", "head"]
    assert merged["head"] is merged["emb"]
    assert stats["n_tensors"] == 2 and stats["n_params"] == 6 and stats["n_kept"] == 3
    assert stats["tied_aliases"] == {"head": "emb"}
    assert merged["emb"].tolist() == [[0.0, 0.0], [3.0, 4.0]] and merged["other"].tolist() == [5.0, 0.0]


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"top_k": 1.5}, "top_k"),
        ({"top_k": -0.1}, "top_k"),
        ({"top_k": float("nan")}, "top_k"),
        ({"scale": float("inf")}, "scale"),
        ({"scope": "layer"}, "scope"),
    ],
)
def test_bad_arguments(kwargs, name):
    base, tuned = _random_pair()
    with pytest.raises(ValueError, match=name):
        merge_updates(base, tuned, **kwargs)


def test_shape_and_key_mismatch_name_the_key():
    base = {"layer.w": torch.zeros(2, 3), "b": torch.zeros(2)}
    with pytest.raises(ValueError, match=r"layer\.w"):
        merge_updates(base, {"layer.w": torch.zeros(3, 2), "b": torch.zeros(2)})
    with pytest.raises(ValueError, match=r"only in base \['b'\].*only in tuned \['c'\]"):
        merge_updates(base, {"layer.w": torch.zeros(2, 3), "c": torch.zeros(2)})


def test_non_finite_update_rejected():
    with pytest.raises(ValueError, match="w"):
        merge_updates({"w": torch.zeros(3)}, {"w": t([1.0, float("nan"), 0.0])})


# ---------------------------------------------------------------- end to end on tiny models


def _tiny_llama(seed: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=32,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(cfg)


def _save_tokenizer(path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<unk>", "<eos>"] + [f"w{i}" for i in range(30)])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="<eos>").save_pretrained(path)


def _expected(base_sd: dict, tuned_sd: dict, top_k: float, scale: float) -> dict:
    """The rule by hand, per tensor: θ_b + λ · Δ on the ceil(k·n) largest |Δ|."""
    out = {}
    for k, b in base_sd.items():
        d = (tuned_sd[k] - b).flatten()
        idx = torch.topk(d.abs(), math.ceil(top_k * d.numel())).indices
        e = b.clone().flatten()
        e[idx] = e[idx] + scale * d[idx]
        out[k] = e.view_as(b)
    return out


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("merge")
    base = _tiny_llama(0)
    tuned = _tiny_llama(0)
    with torch.no_grad():
        g = torch.Generator().manual_seed(1)
        for p in tuned.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.01)
    base.save_pretrained(root / "base")
    tuned.save_pretrained(root / "tuned")
    _save_tokenizer(root / "tuned")
    return root, base.state_dict(), tuned.state_dict()


def test_merge_model_dirs_end_to_end(model_dirs):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rl.models.merge import merge_model_dirs

    root, base_sd, tuned_sd = model_dirs
    out = root / "merged"
    info = merge_model_dirs(root / "base", root / "tuned", out, top_k=0.25, scale=0.7)
    merged = AutoModelForCausalLM.from_pretrained(out).state_dict()
    expected = _expected(base_sd, tuned_sd, 0.25, 0.7)
    assert set(merged) == set(expected)
    for k, e in expected.items():
        torch.testing.assert_close(merged[k], e, rtol=0, atol=1e-7, msg=k)
        assert not torch.equal(merged[k], base_sd[k]) and not torch.equal(merged[k], tuned_sd[k])
    assert torch.equal(merged["lm_head.weight"], merged["model.embed_tokens.weight"])  # still tied

    saved = json.loads((out / INFO_FILE).read_text())
    assert saved == json.loads(json.dumps(info))
    assert (saved["top_k"], saved["scale"], saved["scope"], saved["lora"]) == (0.25, 0.7, "tensor", False)
    assert saved["base"] == str(root / "base") and saved["tuned"] == str(root / "tuned")
    stats = saved["stats"]
    assert stats["tied_aliases"] == {"lm_head.weight": "model.embed_tokens.weight"}
    assert stats["n_tensors"] == len(expected) - 1
    assert stats["n_kept"] == sum(math.ceil(0.25 * v["numel"]) for v in stats["per_tensor"].values())
    assert AutoTokenizer.from_pretrained(out).eos_token == "<eos>"
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no temp dirs left

    with pytest.raises(FileExistsError):  # never clobbers without overwrite
        merge_model_dirs(root / "base", root / "tuned", out)
    merge_model_dirs(root / "base", root / "tuned", out, top_k=0.0, overwrite=True, dtype="bfloat16")
    again = AutoModelForCausalLM.from_pretrained(out)
    assert again.dtype == torch.bfloat16
    for k, b in base_sd.items():
        assert torch.equal(again.state_dict()[k], b.to(torch.bfloat16))


def test_merge_model_dirs_lora_adapter(model_dirs, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from rl.models.merge import merge_model_dirs

    root, base_sd, _ = model_dirs
    torch.manual_seed(2)
    host = AutoModelForCausalLM.from_pretrained(root / "base")
    lora = LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(host, lora)
    peft_model.save_pretrained(tmp_path / "adapter")
    full = peft_model.merge_and_unload().state_dict()
    info = merge_model_dirs(root / "base", tmp_path / "adapter", tmp_path / "out", top_k=0.5, scale=0.7)
    assert info["lora"] is True
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "out").state_dict()
    expected = _expected(base_sd, full, 0.5, 0.7)
    for k, e in expected.items():
        torch.testing.assert_close(merged[k], e, rtol=0, atol=1e-7, msg=k)
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(merged[q], base_sd[q])  # the adapter's update arrived
    k_proj = "model.layers.0.self_attn.k_proj.weight"
    assert torch.equal(merged[k_proj], base_sd[k_proj])  # untouched by LoRA: Δ = 0


# ---------------------------------------------------------------- CLI


def summary(stdout: str) -> tuple[str, str]:
    """The summary line and the JSON after it (libraries may log to stdout before them, e.g.
    DeepSpeed's accelerator notice when transformers imports it)."""
    return stdout[stdout.index("merged "):].split("\n", 1)


def test_cli_subprocess(model_dirs, tmp_path):
    root, _, _ = model_dirs
    cmd = [sys.executable, str(SCRIPT.relative_to(ROOT)), str(root / "base"), str(root / "tuned")]
    ok = subprocess.run(
        [*cmd, str(tmp_path / "out"), "--top-k", "0.5", "--scope", "global"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    first, rest = summary(ok.stdout)
    assert first.startswith("merged ") and "[global]" in first
    stats = json.loads(rest)
    assert stats["scope"] == "global" and stats["top_k"] == 0.5 and "per_tensor" not in stats
    assert stats["n_kept"] == math.ceil(0.5 * stats["n_params"])
    assert json.loads((tmp_path / "out" / INFO_FILE).read_text())["stats"]["n_kept"] == stats["n_kept"]

    bad = subprocess.run(
        [*cmd, str(tmp_path / "out2"), "--top-k", "1.5"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0] and "top-k" in lines[0]
    assert not (tmp_path / "out2").exists()


def test_cli_missing_dir_in_process(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("merge_updates_cli", SCRIPT)
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    from rl.models.merge import DTYPES, SCOPES
    from rl.models.task_vectors import METHODS

    assert cli.SCOPES == SCOPES and cli.DTYPES == tuple(DTYPES) and cli.METHODS == METHODS
    assert cli.main([str(tmp_path / "nope"), str(tmp_path), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "error" in err[0] and "nope" in err[0]
    assert cli.main([str(tmp_path), str(tmp_path), str(tmp_path / "out"), "--scale", "nan"]) == 2
    assert "--scale" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- long-to-short: task vectors


def test_task_arithmetic_hand_computed():
    base = {"w": t([1.0, 2.0, 3.0])}
    tuned = [{"w": t([2.0, 2.0, 1.0])}, {"w": t([1.0, 5.0, 3.0])}]  # Δ1 = [1, 0, -2], Δ2 = [0, 3, 0]
    merged, stats = merge_task_vectors(base, tuned, "task_arithmetic", scale=0.5, weights=[1.0, 2.0])
    torch.testing.assert_close(merged["w"], t([1.5, 5.0, 2.0]))  # 1 + 0.5 [1, 6, -2]
    assert stats["n_models"] == 2 and stats["changed_fraction"] == 1.0
    merged, _ = merge_task_vectors(base, tuned[:1], "task_arithmetic", scale=1.0, weights=[-1.0])
    torch.testing.assert_close(merged["w"], t([0.0, 2.0, 5.0]))  # a negative weight subtracts


def test_ties_trim_elect_disjoint_mean():
    base = {"w": torch.zeros(4)}
    tuned = [{"w": t([4.0, -1.0, 2.0, -3.0])}, {"w": t([-2.0, 3.0, 1.0, -1.0])}]
    merged, stats = merge_task_vectors(base, tuned, "ties", scale=1.0, density=0.5)
    # trimmed: [4, 0, 0, -3] and [-2, 3, 0, 0]; sum [2, 3, 0, -3] -> signs + + (+) -;
    # entry 0: only 4 agrees; 1: 3; 2: nothing left; 3: -3
    torch.testing.assert_close(merged["w"], t([4.0, 3.0, 0.0, -3.0]))
    assert stats["kept_fraction"] == 0.5 and stats["sign_conflict_fraction"] == 1 / 8
    # two agreeing entries are averaged, not summed; scale applies to the mean
    merged, _ = merge_task_vectors(base, [{"w": t([2.0, 0, 0, 0])}, {"w": t([4.0, 0, 0, 0])}], "ties",
                                   scale=0.5, density=1.0)
    torch.testing.assert_close(merged["w"], t([1.5, 0.0, 0.0, 0.0]))
    # a zero sum elects +: the positive entry survives (the release's rule)
    merged, _ = merge_task_vectors(base, [{"w": t([2.0, 0, 0, 0])}, {"w": t([-2.0, 0, 0, 0])}], "ties",
                                   scale=1.0, density=1.0)
    torch.testing.assert_close(merged["w"], t([2.0, 0.0, 0.0, 0.0]))


def test_ties_single_model_is_the_trimmed_update():
    base, tuned = {"w": torch.ones(5)}, [{"w": t([1.0, 4.0, 0.0, -2.0, 1.5])}]  # Δ = [0, 3, -1, -3, 0.5]
    merged, _ = merge_task_vectors(base, tuned, "ties", scale=1.0, density=0.4)  # ceil(2): 3 and -3
    torch.testing.assert_close(merged["w"], t([1.0, 4.0, 1.0, -2.0, 1.0]))


def test_dare_drop_and_rescale():
    base, tuned = {"w": torch.zeros(20000)}, [{"w": torch.ones(20000)}]
    merged, stats = merge_task_vectors(base, tuned, "dare", scale=1.0, drop_rate=0.5, seed=3)
    w = merged["w"]
    assert set(w.unique().tolist()) == {0.0, 2.0}  # dropped, or kept x 1/(1 - 0.5)
    assert abs(float(w.mean()) - 1.0) < 0.03 and abs(stats["kept_fraction"] - 0.5) < 0.015  # unbiased
    again, _ = merge_task_vectors(base, tuned, "dare", scale=1.0, drop_rate=0.5, seed=3)
    other, _ = merge_task_vectors(base, tuned, "dare", scale=1.0, drop_rate=0.5, seed=4)
    assert torch.equal(again["w"], w) and not torch.equal(other["w"], w)
    b2, t2 = _random_pair()
    none_dropped, _ = merge_task_vectors(b2, [t2], "dare", scale=0.7, drop_rate=0.0)
    plain, _ = merge_task_vectors(b2, [t2], "task_arithmetic", scale=0.7)
    all_dropped, _ = merge_task_vectors(b2, [t2], "dare", scale=0.7, drop_rate=1.0)
    for k in b2:
        assert torch.equal(none_dropped[k], plain[k]) and torch.equal(all_dropped[k], b2[k])


def test_dare_ties_without_drop_is_untrimmed_ties():
    base = {"w": torch.zeros(4)}
    tuned = [{"w": t([4.0, -1.0, 2.0, -3.0])}, {"w": t([-2.0, 3.0, 1.0, -1.0])}]
    a, _ = merge_task_vectors(base, tuned, "dare_ties", scale=1.0, drop_rate=0.0)
    b, _ = merge_task_vectors(base, tuned, "ties", scale=1.0, density=1.0)
    torch.testing.assert_close(a["w"], b["w"])
    torch.testing.assert_close(a["w"], t([4.0, 3.0, 1.5, -2.0]))  # sums 2, 2, 3, -4


def test_task_vectors_keep_ties_buffers_dtype_and_inputs():
    emb_b, emb_t = torch.zeros(2, dtype=torch.bfloat16), t([1.0, 2.0])
    base = {"emb": emb_b, "head": emb_b, "steps": torch.tensor(3)}
    tuned = [{"emb": emb_t, "head": emb_t, "steps": torch.tensor(9)}]
    merged, stats = merge_task_vectors(base, tuned, "task_arithmetic", scale=1.0)
    assert merged["head"] is merged["emb"] and merged["emb"].dtype == torch.bfloat16
    assert merged["emb"].tolist() == [1.0, 2.0] and merged["steps"].item() == 9
    assert stats["tied_aliases"] == {"head": "emb"} and stats["copied_non_floating"] == ["steps"]
    assert emb_b.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("kwargs, name", [
    ({"method": "average"}, "method"), ({"density": 1.5}, "density"), ({"drop_rate": -0.1}, "drop_rate"),
    ({"weights": [1.0, 2.0]}, "weights"), ({"scale": float("nan")}, "scale"),
])
def test_task_vector_bad_arguments(kwargs, name):
    base, tuned = _random_pair()
    with pytest.raises(ValueError, match=name):
        merge_task_vectors(base, [tuned], **kwargs)
    with pytest.raises(ValueError, match=r"only in tuned\[1\]"):
        merge_task_vectors(base, [tuned, {**tuned, "z": torch.zeros(1)}])


def test_merge_task_vector_dirs_and_cli(model_dirs, tmp_path):
    from transformers import AutoModelForCausalLM

    from rl.models.task_vectors import merge_task_vector_dirs

    root, base_sd, tuned_sd = model_dirs
    info = merge_task_vector_dirs(root / "base", [root / "tuned"], tmp_path / "ta", scale=0.7)
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "ta").state_dict()
    for k, b in base_sd.items():
        torch.testing.assert_close(merged[k], b + 0.7 * (tuned_sd[k] - b), rtol=0, atol=1e-7, msg=k)
    assert torch.equal(merged["lm_head.weight"], merged["model.embed_tokens.weight"])  # still tied
    saved = json.loads((tmp_path / "ta" / INFO_FILE).read_text())
    assert saved["method"].startswith("task_arithmetic") and saved["tuned"] == [str(root / "tuned")]
    assert saved["stats"]["scale"] == 0.7 and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    with pytest.raises(FileExistsError):
        merge_task_vector_dirs(root / "base", [root / "tuned"], tmp_path / "ta")

    cmd = [sys.executable, str(SCRIPT.relative_to(ROOT)), str(root / "base"), str(root / "tuned")]
    ok = subprocess.run([*cmd, str(root / "tuned"), str(tmp_path / "ties"), "--method", "ties", "--density", "0.5"],
                        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    first, rest = summary(ok.stdout)
    stats = json.loads(rest)
    assert "[ties]" in first and stats["n_models"] == 2 and stats["scale"] == 1.0 and stats["density"] == 0.5
    ties = AutoModelForCausalLM.from_pretrained(tmp_path / "ties").state_dict()
    k = "model.layers.0.mlp.up_proj.weight"  # two identical task vectors: the mean is the trimmed Δ
    expect, _ = merge_updates({k: base_sd[k]}, {k: tuned_sd[k]}, top_k=0.5, scale=1.0)
    torch.testing.assert_close(ties[k], expect[k], rtol=0, atol=1e-7)

    bad = subprocess.run([*cmd, str(root / "tuned"), str(tmp_path / "x")], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and "dler merges one tuned model" in bad.stderr and len(bad.stderr.splitlines()) == 1
