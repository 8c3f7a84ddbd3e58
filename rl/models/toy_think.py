r"""``builtin:toy-think``: a toy where re-checking pays on hard problems, and only there.

The overthinking toy (:mod:`rl.models.toy`) re-checks by repeating its chain, and its first chain is as
reliable as any re-check, so "never re-check" is the best policy at every difficulty. toy-think
(version 3) keeps the prompts, tokenizer, model and SFT recipe and changes the traces:

1. **The first pass is a one-shot answer**: the model writes the sum at once (``23.``), with no
   steps. That is easy for 2 digits and hard for 5: a 1M-parameter model has to add all operands in
   one forward pass per digit, so its one-shot accuracy falls with the operand count. The errors are
   the model's own, limited by its capacity, not a scripted slip: every one-shot answer in the SFT
   data the model is trained to write is right.
2. **A re-check is the step-by-step chain** (``check1:9+8=17,17+6=23.``), which is reliable at every
   difficulty. The answer ``A:`` is the total of the *last* chain, or the one-shot answer when there
   is no re-check::

       prompt      Q:9+8+6=
       completion  23.check1:9+8=17,17+6=23.A:23</s>

3. **A re-check computes, it does not copy.** 70 % of the 3-5-operand SFT traces open with a
   *wrong* one-shot answer, off by 1 to 3 like the model's own errors, which 1-4 re-checks correct.
   Those wrong answers and the choice that follows them (``c``) belong to the *prompt side* of the
   pair, so they are never trained on: the model learns a chain that ignores the one-shot answer,
   but never to write a wrong one, nor to check because of one (:func:`think_example`). With fewer
   (half of the traces with a re-check) and some off by 10, the first build's chains copied the
   one-shot answer's units digit: after an answer off by 1 a 5-operand chain ended right 42 % of the
   time, against 98 % after a right one (now: 97 % and 99 %). 2-operand traces never show a wrong
   answer: their chain is the one-shot sum itself.

The other traces are trained whole: the right one-shot answer, then k = 0 re-checks with probability
:data:`SHOWN_ANSWER_RATE` (0.7), else k ~ U{1..4}. So after a one-shot answer of its own the start
policy re-checks with the same probability (0.3) on every difficulty, and RL has to find out where
checking pays. Unlike a taught slip (version 2, docs/toy_think.md), a one-shot error is not a sampled choice RL
can sharpen away in a few steps: removing it means learning multi-operand addition in one pass.

Forcing 0 / 1 / 2 / 4 re-checks at sampling time (:class:`ForceChecks`, :func:`forced_check_curve`,
``scripts/toy_think_curve.py``) shows the premise before any RL (numbers in docs/toy_think.md).

Earlier versions, kept in docs/toy_think.md: v1 re-checked in reversed order and the model could not
learn to; v2 taught the first chain to slip (p = 0.15 per two-digit step) and had re-checks fix the
slips, which held before RL, but every RL method simply unlearned the slips (5-operand first chains
wrong 30 % → 14.5 %) and dropped the re-checks on every difficulty.
"""

from __future__ import annotations

import random

import torch

from rl.tasks import _parse_operands, sample_arithmetic

CHECK_PREFIX = "check"
WRONG_GUESS_RATE = 0.7  # share of 3-5-operand SFT traces that open with a wrong (untrained) one-shot answer
SHOWN_ANSWER_RATE = 0.7  # share of the other traces that answer at once (k = 0) after the one-shot answer
GUESS_ERRORS = (-3, -2, -1, 1, 2, 3)  # the size of the trained model's own one-shot errors


def chain(operands: list[int]) -> str:
    """The step-by-step chain adding ``operands`` left to right.

    >>> chain([3, 5, 2])
    '3+5=8,8+2=10.'
    """
    steps, total = [], operands[0]
    for x in operands[1:]:
        steps.append(f"{total}+{x}={total + x}")
        total += x
    return ",".join(steps) + "."


def think_traces(question: str, max_checks: int = 4, guess: int | None = None) -> list[str]:
    """The completions of ``question`` with 0..``max_checks`` re-checks: the one-shot answer
    ``guess`` (default: the right sum), k step-by-step chains, ``A:`` with the last one's total.

    >>> think_traces("3+5+2", max_checks=1)
    ['10.A:10', '10.check1:3+5=8,8+2=10.A:10']
    >>> think_traces("9+8+6", max_checks=1, guess=13)[1]
    '13.check1:9+8=17,17+6=23.A:23'
    """
    operands = _parse_operands(question)
    total = sum(operands)
    guess = total if guess is None else guess
    steps = chain(operands)
    return [f"{guess}." + "".join(f"{CHECK_PREFIX}{i}:{steps}" for i in range(1, k + 1))
            + f"A:{total if k else guess}" for k in range(max_checks + 1)]


def think_trace(question: str, n_checks: int, guess: int | None = None) -> str:
    """The completion of ``question`` with ``n_checks`` re-checks (:func:`think_traces`).

    >>> think_trace("3+5+2", 2)
    '10.check1:3+5=8,8+2=10.check2:3+5=8,8+2=10.A:10'
    """
    if n_checks < 0:
        raise ValueError(f"n_checks must be >= 0, got {n_checks}")
    return think_traces(question, n_checks, guess)[n_checks]


def wrong_guess(rng: random.Random, total: int) -> int:
    """A plausible wrong one-shot answer: ``total`` off by 1, 2 or 3 (never negative).

    >>> sorted({wrong_guess(random.Random(s), 1) for s in range(50)})
    [0, 2, 3, 4]
    """
    d = rng.choice(GUESS_ERRORS)
    return total + d if total + d >= 0 else total - d


def think_example(rng: random.Random, question: str, max_checks: int = 4,
                  wrong_rate: float = WRONG_GUESS_RATE) -> tuple[str, str, int]:
    """One SFT trace as ``(hidden, trained, k)``: ``hidden`` goes after the prompt and gets no loss.

    With probability ``wrong_rate``, on 3 or more operands, the one-shot answer is wrong
    (:func:`wrong_guess`), k ~ U{1..max_checks} re-checks correct it, and the wrong answer with the
    first letter of the check after it is hidden: the model learns a chain that ignores the one-shot
    answer, but never to write a wrong one, nor to check because of one. Otherwise the whole trace is
    trained, with the right one-shot answer and k = 0 re-checks with probability
    :data:`SHOWN_ANSWER_RATE`, else k ~ U{1..max_checks}: after a one-shot answer it writes, the model
    re-checks with the same probability, 1 - SHOWN_ANSWER_RATE, on every difficulty.

    >>> think_example(random.Random(0), "9+8+6", wrong_rate=1.0)
    ('20.c', 'heck1:9+8=17,17+6=23.check2:9+8=17,17+6=23.check3:9+8=17,17+6=23.check4:9+8=17,17+6=23.A:23', 4)
    >>> think_example(random.Random(1), "9+8", wrong_rate=1.0)  # 2 operands: never a wrong one-shot answer
    ('', '17.A:17', 0)
    """
    operands = _parse_operands(question)
    if len(operands) >= 3 and rng.random() < wrong_rate:
        k = rng.randint(1, max_checks)
        trace = think_trace(question, k, wrong_guess(rng, sum(operands)))
        cut = trace.index(".") + 2  # the wrong answer, its ".", and the "c" of "check1:"
        return trace[:cut], trace[cut:], k
    k = 0 if rng.random() < SHOWN_ANSWER_RATE else rng.randint(1, max_checks)
    return "", think_trace(question, k), k


# ----------------------------------------------------------------------------- what the model does


def one_shot_answer(completion: str) -> int | None:
    """The one-shot answer of a completion: the number before its first ``.`` (after an optional tag).

    >>> one_shot_answer("23.check1:9+8=17,17+6=23.A:23"), one_shot_answer("[Hard]21.A:21")
    (23, 21)
    """
    head = completion.split(".", 1)[0].rsplit("]", 1)[-1]
    return int(head) if head.isdigit() else None


def count_checks(completion: str) -> int:
    """How many re-checks a completion wrote (``check<i>:`` headers)."""
    return completion.count(CHECK_PREFIX)


class ForceChecks:
    """A ``transformers`` logits processor forcing exactly ``n_checks`` re-checks per completion.

    After the one-shot answer and after each chain (the model just wrote ``.``) the next token is
    forced to ``c`` (start a re-check) while fewer than ``n_checks`` were written, and to ``A``
    (answer) after that; every other token is the model's own sample. One token per character (the toy's tokenizer).
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
    one_shot_wrong (the share of wrong one-shot answers), mean_tokens (EOS counted), n.
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
            wrong_first = [one_shot_answer(t) != int(a) for t, a in zip(texts, answers)]
            rows.append({"operands": n_ops, "checks": k, "n": len(texts),
                         "accuracy": sum(correct) / len(texts),
                         "one_shot_wrong": sum(wrong_first) / len(texts),
                         "checks_written": sum(count_checks(t) for t in texts) / len(texts),
                         "mean_tokens": sum(lengths) / len(lengths)})
    return rows
