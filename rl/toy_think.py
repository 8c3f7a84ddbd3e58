r"""``builtin:toy-think``: a toy where re-checking pays on hard problems, and only there.

The overthinking toy (:mod:`rl.toy`) re-checks by repeating its chain, and its first chain is as
reliable as any re-check, so "never re-check" is the best policy at every difficulty. This variant
changes two things in the SFT traces, and nothing else (same prompts, tokenizer, model, SFT recipe):

1. **The first chain slips.** Each step ``t+x`` whose running total ``t`` already has two digits
   is written wrong with probability :data:`SLIP_RATE`: a forgotten carry (``17+5=12`` instead of
   22) when the units overflow, else a units digit off by one (``17+1=19``). The wrong total is
   carried on, as a person would. One-digit steps never slip, so 2-operand problems (one step)
   never do, and the chance of a slip grows with the operand count (0 / 7 / 17 / 28 % of SFT traces for
   2 / 3 / 4 / 5 operands at a rate of 0.15).
2. **A re-check starts from the last operand**, then adds the others in order (``Q:9+8+6=`` is
   re-checked as ``6+9=15,15+8=23``): its partial sums differ from the first chain's, so it cannot
   be copied from it, and re-checks never slip. The answer ``A:`` is always the total of the
   *last* chain, so a re-check corrects a slip::

       prompt      Q:9+8+6=
       completion  9+8=17,17+6=13.check1:6+9=15,15+8=23.A:23</s>

   (toy-v1-think re-checked in fully reversed order. The model could not learn to walk the prompt
   backwards in 500 SFT steps: its re-checks were *less* accurate than its slipping first chain,
   39 % against 70 % on 5-operand problems. Starting from the last operand and then going forward
   reuses the first chain's left-to-right reading.)

The slips are not a flag: the trained model writes them itself when it samples, at about the
rate it saw (measured by :func:`slip_stats` on its own completions), and a forced re-check fixes
them because it is a different computation. Forcing 0 / 1 / 2 / 4 re-checks at sampling time
(:class:`ForceChecks`, :func:`forced_check_curve`, ``scripts/toy_think_curve.py``) shows the toy's
premise before any RL: on 5-operand problems accuracy rises from 0 to >= 1 re-check, on
2-operand problems it does not move (numbers in docs/toy_think.md).

The number of re-checks k ~ U{0..4} is drawn independently of the slip (the model cannot know it
slipped), exactly as in the plain toy, so RL has to find out where checking pays.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from rl.tasks import _parse_operands, sample_arithmetic

SLIP_RATE = 0.15  # per first-chain step whose running total already has two digits
CHECK_PREFIX = "check"


@dataclass
class Chain:
    """One chain of partial sums: its text (``"3+5=8,8+2=10."``) and its final total."""

    text: str
    total: int


def slip(rng: random.Random, t: int, x: int) -> int:
    """A wrong result for the step ``t + x`` (``t >= 10``): a forgotten carry, else units off by one.

    >>> slip(random.Random(0), 17, 5), slip(random.Random(0), 17, 1) in (17, 19)
    (12, True)
    """
    right = t + x
    if t % 10 + x >= 10:  # the units overflow: the carry is forgotten
        return right - 10
    return right + rng.choice((-1, 1))


def chain(operands: list[int], rng: random.Random | None = None, slip_rate: float = 0.0) -> Chain:
    """The chain adding ``operands`` left to right; with ``rng`` and ``slip_rate`` > 0 a step whose
    running total has two digits slips with that probability (the wrong total is carried on).

    >>> chain([3, 5, 2]).text
    '3+5=8,8+2=10.'
    >>> chain([9, 8, 6], random.Random(1), slip_rate=1.0)
    Chain(text='9+8=17,17+6=13.', total=13)
    """
    steps, total = [], operands[0]
    for x in operands[1:]:
        result = total + x
        if rng is not None and total >= 10 and rng.random() < slip_rate:
            result = slip(rng, total, x)
        steps.append(f"{total}+{x}={result}")
        total = result
    return Chain(",".join(steps) + ".", total)


def think_traces(question: str, rng: random.Random | None = None, max_checks: int = 4,
                 slip_rate: float = SLIP_RATE) -> list[str]:
    """The toy-think completions of ``question`` with 0..``max_checks`` re-checks, sharing one first
    chain (which may slip when ``rng`` is given): the first chain, k re-checks from the last operand, and
    ``A:`` with the last chain's total.

    >>> think_traces("3+5+2", max_checks=1)
    ['3+5=8,8+2=10.A:10', '3+5=8,8+2=10.check1:2+3=5,5+5=10.A:10']
    >>> think_traces("9+8+6", random.Random(1), max_checks=1, slip_rate=1.0)
    ['9+8=17,17+6=13.A:13', '9+8=17,17+6=13.check1:6+9=15,15+8=23.A:23']
    """
    operands = _parse_operands(question)
    first, check = chain(operands, rng, slip_rate), chain(operands[-1:] + operands[:-1])
    return [first.text + "".join(f"{CHECK_PREFIX}{i}:{check.text}" for i in range(1, k + 1))
            + f"A:{check.total if k else first.total}" for k in range(max_checks + 1)]


def think_trace(question: str, n_checks: int, rng: random.Random | None = None,
                slip_rate: float = SLIP_RATE) -> str:
    """The toy-think completion of ``question`` with ``n_checks`` re-checks (:func:`think_traces`).

    >>> think_trace("3+5+2", 1)
    '3+5=8,8+2=10.check1:2+3=5,5+5=10.A:10'
    >>> think_trace("9+8+6", 0, random.Random(1), slip_rate=1.0)
    '9+8=17,17+6=13.A:13'
    """
    if n_checks < 0:
        raise ValueError(f"n_checks must be >= 0, got {n_checks}")
    return think_traces(question, rng, n_checks, slip_rate)[n_checks]


# ----------------------------------------------------------------------------- what the model does


def first_chain_total(completion: str) -> int | None:
    """The total the completion's first chain reached (its last ``=<n>`` before the first ``.``)."""
    head = completion.split(".", 1)[0]
    value = head.rsplit("=", 1)[-1] if "=" in head else ""
    return int(value) if value.isdigit() else None


def count_checks(completion: str) -> int:
    """How many re-checks a completion wrote (``check<i>:`` headers)."""
    return completion.count(CHECK_PREFIX)


def slip_stats(question: str, completions: list[str]) -> dict[str, float]:
    """Over the completions of one question: the share whose first chain is wrong (slip rate)."""
    answer = sum(_parse_operands(question))
    firsts = [first_chain_total(c) for c in completions]
    return {"first_chain_wrong": sum(f != answer for f in firsts) / max(len(firsts), 1)}


class ForceChecks:
    """A ``transformers`` logits processor forcing exactly ``n_checks`` re-checks per completion.

    At the end of a chain (the model just wrote ``.``) the next token is forced to ``c`` (start a
    re-check) while fewer than ``n_checks`` were written, and to ``A`` (answer) after that; every
    other token is the model's own sample. One token per character (the toy's tokenizer).
    """

    def __init__(self, tokenizer, n_checks: int, prompt_width: int):
        self.n_checks, self.prompt_width = n_checks, prompt_width
        ids = {ch: tokenizer.convert_tokens_to_ids(ch) for ch in ".:cA"}
        self.dot, self.colon, self.check, self.answer = ids["."], ids[":"], ids["c"], ids["A"]

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        generated = input_ids[:, self.prompt_width:]
        if generated.shape[1] == 0:
            return scores
        at_end = generated[:, -1] == self.dot
        written = (generated == self.colon).sum(dim=1)  # "check<i>:" headers so far
        for row in torch.nonzero(at_end).flatten().tolist():
            forced = self.check if written[row] < self.n_checks else self.answer
            scores[row] = torch.where(torch.arange(scores.shape[1]) == forced, 0.0, float("-inf"))
        return scores


def forced_check_curve(model_path: str, checks=(0, 1, 2, 4), operands=(2, 3, 4, 5), problems: int = 64,
                       samples: int = 4, temperature: float = 1.0, seed: int = 0,
                       max_new_tokens: int = 200) -> list[dict]:
    """Accuracy by operand count when the model is forced to write ``k`` re-checks, k in ``checks``.

    Test-split problems (2-operand ones from the train split too: the test split holds only ~10);
    ``samples`` completions per problem at ``temperature``. Each row: operands, checks, accuracy,
    first_chain_wrong (the model's own slip rate), mean_tokens (EOS counted), n.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer, LogitsProcessorList

    tok = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path).eval()
    rows = []
    for n_ops in operands:
        rng = random.Random(f"curve-{n_ops}-{seed}")
        split = "test" if n_ops >= 3 else "train"
        questions = [sample_arithmetic(rng, split, n_ops, n_ops)["question"] for _ in range(problems)]
        prompts = [f"Q:{q}=" for q in questions for _ in range(samples)]
        for k in checks:
            torch.manual_seed(seed * 1000 + n_ops * 10 + k)
            batch = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
            width = batch["input_ids"].shape[1]
            with torch.no_grad():
                out = model.generate(**batch, do_sample=True, temperature=temperature, top_p=1.0, top_k=0,
                                     max_new_tokens=max_new_tokens,
                                     logits_processor=LogitsProcessorList([ForceChecks(tok, k, width)]))
            texts, lengths = [], []
            for ids in out[:, width:]:
                ids = ids.tolist()
                end = ids.index(tok.eos_token_id) + 1 if tok.eos_token_id in ids else len(ids)
                texts.append(tok.decode(ids[:end], skip_special_tokens=True))
                lengths.append(end)
            answers = [str(sum(_parse_operands(q))) for q in questions for _ in range(samples)]
            correct = [t.rsplit("A:", 1)[-1].strip() == a if "A:" in t else False for t, a in zip(texts, answers)]
            wrong_first = [first_chain_total(t) != int(a) for t, a in zip(texts, answers)]
            rows.append({"operands": n_ops, "checks": k, "n": len(texts),
                         "accuracy": sum(correct) / len(texts),
                         "first_chain_wrong": sum(wrong_first) / len(texts),
                         "checks_written": sum(count_checks(t) for t in texts) / len(texts),
                         "mean_tokens": sum(lengths) / len(lengths)})
    return rows
