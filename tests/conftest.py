import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# GSM8K (openai/gsm8k, MIT) in its jsonl form ({question, answer} rows), for tests of real answer
# formats; not shipped with the project: tests that need it skip unless LACONIC_GSM8K_DIR names it.
GSM8K = Path(os.environ.get("LACONIC_GSM8K_DIR") or "/nonexistent-gsm8k")
GSM8K_SKIP = "GSM8K not found: set LACONIC_GSM8K_DIR to a directory holding its test.jsonl"

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def toy_tokenizer():
    from rl.models.toy import build_tokenizer

    return build_tokenizer()


@pytest.fixture(scope="session")
def untrained_toy(tmp_path_factory) -> Path:
    """A randomly initialised toy model directory (instant; for plumbing tests)."""
    from rl.models.toy_build import build_untrained_toy

    return build_untrained_toy(tmp_path_factory.mktemp("toy") / "untrained")


@pytest.fixture(scope="module")
def toy(untrained_toy):
    """The untrained toy loaded: ``(model, tokenizer)``, one per test module (tests that change weights copy it)."""
    from transformers import AutoModelForCausalLM

    from rl.models.load import load_tokenizer

    return AutoModelForCausalLM.from_pretrained(untrained_toy), load_tokenizer(str(untrained_toy))


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """accelerate keeps one process-wide state: a test that trained with TRL (whose GRPOConfig
    turns on bf16) would otherwise leave bf16 autocast to every in-process laconic run after it."""
    yield
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
