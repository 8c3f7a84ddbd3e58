"""The overthinking toy: a ~1.05M-parameter Llama that reasons verbosely about tiny sums.

docs/design.md, "The overthinking toy". The model is supervised on the arithmetic task
(:mod:`rl.tasks`) with traces carrying k ~ U{0..4} numbered re-checks, so its completions
vary widely in length and an RL run can teach it to skip the redundant checks::

    prompt      Q:3+5+2=
    completion  3+5=8,8+2=10.check1:3+5=8,8+2=10.A:10</s>

Tokenizer: one token per character (all printable ASCII, whitespace included) plus the
specials ``<pad> <s> </s> <unk>``; left padding; no BOS is prepended (the toy never needs
one: every prompt starts with ``Q:``), EOS is appended to training completions only.

Three variants share one SFT recipe (:func:`rl.models.toy_build.sft`, 500 steps from scratch) and differ only in
the training pairs (:func:`sft_example`):

``plain``   (``builtin:toy``)        the prompt and trace above.
``tagged``  (``builtin:toy-tagged``) the completion opens with ``[Easy]`` or ``[Hard]``, drawn
            uniformly and independently of the problem and of k: AdaCtrl's cold start
            (arXiv 2505.18822), which first teaches the format and leaves it to RL to learn
            which tag to write. ``toy-v2-tagged``; v1 continued a trained toy for 150 steps at
            lr 6e-4 and fell to 67 % accuracy with misspelt tags.
``budget``  (``builtin:toy-budget``) the prompt states a token budget, ``B48Q:3+5+2=``: the cold
            start that L1 / LCPO (arXiv 2503.04697) gets from its base model's instruction
            following. See :func:`budget_example` for what a budget means.
``think``   (``builtin:toy-think``)  the first pass is a one-shot answer, right on easy problems
            and often wrong on hard ones, and a re-check is the step-by-step chain, so
            re-checking pays on hard problems only (:mod:`rl.models.toy_think`).

Everything here runs offline on CPU: :func:`rl.models.toy_build.ensure_toy` builds a variant into a cache directory
the first time (5-7 minutes on one idle core) and reuses it afterwards.
"""

from __future__ import annotations

import random
import string

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from rl.models.toy_think import think_example, think_traces
from rl.tasks import arithmetic_trace, sample_arithmetic

TOY_VERSION = "toy-v1"
# the cache directory and toy_info.json "version" of each variant; bump one to rebuild its caches
VERSIONS = {"plain": TOY_VERSION, "tagged": "toy-v2-tagged", "budget": "toy-v1-budget", "think": "toy-v3-think",
            "think-tagged": "toy-v3-think-tagged", "think-budget": "toy-v3-think-budget"}
VARIANTS = tuple(VERSIONS)
TAGS = ("[Easy]", "[Hard]")  # AdaCtrl's difficulty tags (rewards/adactrl.py)
PROMPT_TEMPLATE = "Q:{question}="
BUDGET_TEMPLATE = "B{budget}Q:{question}="  # the budget toy's prompt; rl/data.py fills {budget}
BUDGET_RANGE = (8, 200)  # budgets seen in SFT: below the shortest trace (10) to above the longest (188)
MAX_CHECKS = 4
SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>")


# ----------------------------------------------------------------------------- tokenizer


def build_tokenizer() -> PreTrainedTokenizerFast:
    """A character-level tokenizer: every printable ASCII character is exactly one token."""
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for ch in string.printable:  # digits, letters, punctuation, space, \t \n \r \x0b \x0c
        vocab.setdefault(ch, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()  # without it decoded text would be joined by spaces
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        padding_side="left",
        clean_up_tokenization_spaces=False,
        model_max_length=256,
    )


def toy_prompt(question: str, budget: int | None = None) -> str:
    """The toy's prompt text for an arithmetic question: ``Q:3+5+2=``, or with a token budget
    (the budget toy) ``B48Q:3+5+2=``."""
    if budget is None:
        return PROMPT_TEMPLATE.format(question=question)
    return BUDGET_TEMPLATE.format(budget=budget, question=question)


# ----------------------------------------------------------------------------- model


def build_model(tokenizer: PreTrainedTokenizerFast, seed: int = 0) -> LlamaForCausalLM:
    """A randomly initialised 4-layer Llama (hidden 128, 2 heads of 64, MLP 512, tied)."""
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=64,  # vLLM's CPU attention accepts 32/64/80/96/112/128
        max_position_embeddings=256,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    gen = model.generation_config
    gen.bos_token_id = tokenizer.bos_token_id
    gen.eos_token_id = tokenizer.eos_token_id
    gen.pad_token_id = tokenizer.pad_token_id
    return model


# ----------------------------------------------------------------------------- SFT


def check_variant(variant: str) -> str:
    if variant not in VERSIONS:
        raise ValueError(f"unknown toy variant {variant!r} (available: {', '.join(VARIANTS)})")
    return variant


def trace_tokens(question: str, n_checks: int) -> int:
    """Tokens of the completion with ``n_checks`` re-checks, EOS included (one per character)."""
    return len(arithmetic_trace(question, n_checks)) + 1


def budget_example(rng: random.Random, question: str, n_checks: int, traces: list[str] | None = None) -> int:
    """The budget stated with the trace of ``question`` that has ``n_checks`` re-checks.

    A budget B means "the longest trace that fits in B tokens": the trace has the most re-checks
    (at most 4) whose length L(k) (tokens, EOS included) is <= B, and no re-checks when even
    L(0) > B. So B is drawn uniformly from the budgets that pick exactly this k::

        B ~ U{ L(k), ..., L(k+1) - 1 }          with L(0) replaced by 8   for k = 0
                                                 and L(5) - 1 by 200      for k = 4

    Every trace then fits its budget (L <= B, L1-Max's sense), and sits within one re-check of
    it (L1-Exact's sense: |B - L| < L(k+1) - L(k), 14..38 tokens). k stays U{0..4}, as in the
    plain toy, and budgets span ``BUDGET_RANGE``: 8 lies below the shortest trace ("1+2=3.A:3"
    and EOS, 10 tokens), 200 above the longest (188). ``traces``: the question's traces for
    k = 0..4 when they are not the plain toy's (toy-think's).
    """
    def length(k: int) -> int:
        return len(traces[k]) + 1 if traces is not None else trace_tokens(question, k)

    low = length(n_checks) if n_checks > 0 else BUDGET_RANGE[0]
    high = length(n_checks + 1) - 1 if n_checks < MAX_CHECKS else BUDGET_RANGE[1]
    return rng.randint(low, high)


def sft_example(rng: random.Random, variant: str = "plain") -> tuple[str, str]:
    """One fresh train-split ``(prompt, completion)`` pair with k ~ U{0..4} re-checks.

    ``tagged``: the completion opens with one of :data:`TAGS`, drawn uniformly, independent of the
    problem and of k. ``budget``: the prompt states a budget (:func:`budget_example`). ``think*``:
    toy-think's traces (:func:`rl.models.toy_think.think_example`), alone or with the tag / budget; a
    wrong one-shot answer the model must not learn to write is appended to the prompt (no loss).
    """
    check_variant(variant)
    problem = sample_arithmetic(rng, "train")
    question, k = problem["question"], rng.randint(0, MAX_CHECKS)  # think*: drawn too (same stream), unused
    hidden, traces = "", None
    if variant.startswith("think"):  # hidden: a wrong one-shot answer the model sees but is not trained on
        hidden, completion, k = think_example(rng, question, MAX_CHECKS)
        traces = think_traces(question, MAX_CHECKS) if variant.endswith("budget") else None
    else:
        completion = arithmetic_trace(question, k)
    if variant.endswith("tagged"):
        tag = rng.choice(TAGS)
        hidden, completion = (tag + hidden, completion) if hidden else ("", tag + completion)
    budget = budget_example(rng, question, k, traces) if variant.endswith("budget") else None
    return toy_prompt(question, budget) + hidden, completion


# ----------------------------------------------------------------------------- saving


