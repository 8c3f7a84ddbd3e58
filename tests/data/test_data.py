"""Prompt datasets: local files with real answer formats, built-in tasks, templates, ids, sampler."""

import json

import pytest

from rl.config import ConfigError, DataConfig
from rl.data import PromptSampler, load_prompts

from tests.conftest import GSM8K, GSM8K_SKIP


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.skipif(not (GSM8K / "test.jsonl").exists(), reason=GSM8K_SKIP)
def test_gsm8k_local_file(toy_tokenizer):
    cfg = DataConfig(name=str(GSM8K / "test.jsonl"), num_examples=5, prompt_template="Q:{question}", chat_template="off")
    prompts = load_prompts(cfg, toy_tokenizer)
    assert len(prompts) == 5
    first = json.loads((GSM8K / "test.jsonl").read_text().splitlines()[0])
    assert prompts[0].answer == first["answer"].split("####")[-1].strip().replace(",", "")
    assert prompts[0].text == "Q:" + first["question"]
    assert len({p.id for p in prompts}) == 5
    assert [p.id for p in load_prompts(cfg, toy_tokenizer)] == [p.id for p in prompts]  # stable


def test_math_boxed_answers_and_custom_columns(tmp_path, toy_tokenizer):
    f = write_jsonl(tmp_path / "math.jsonl", [
        {"problem": "Half of one?", "solution": "It is $\\boxed{\\frac{1}{2}}$.", "uid": "m1"},
        {"problem": "1+1?", "solution": "So \\boxed{2}", "uid": "m2"},
    ])
    cfg = DataConfig(name=str(f), question_column="problem", answer_column="solution", id_column="uid",
                     answer_format="boxed", chat_template="off")
    prompts = load_prompts(cfg, toy_tokenizer)
    assert [p.answer for p in prompts] == ["\\frac{1}{2}", "2"]
    assert [p.id for p in prompts] == ["m1", "m2"]


def test_missing_column_is_named(tmp_path, toy_tokenizer):
    f = write_jsonl(tmp_path / "d.jsonl", [{"problem": "1+1?", "solution": "2"}])
    with pytest.raises(ConfigError, match=r"no column 'question' \(data.question_column\); columns: \['problem', 'solution'\]"):
        load_prompts(DataConfig(name=str(f)), toy_tokenizer)


def test_missing_file_and_unknown_task(toy_tokenizer, tmp_path):
    with pytest.raises(ConfigError, match="data file not found"):
        load_prompts(DataConfig(name=str(tmp_path / "nope.jsonl")), toy_tokenizer)
    with pytest.raises(ConfigError, match="unknown built-in task 'arith'"):
        load_prompts(DataConfig(name="builtin:arith"), toy_tokenizer)


def test_builtin_arithmetic_prompts(toy_tokenizer):
    cfg = DataConfig(name="builtin:arithmetic", num_examples=50, prompt_template="Q:{question}=", chat_template="off")
    prompts = load_prompts(cfg, toy_tokenizer, split="test")
    p = prompts[0]
    assert p.text == f"Q:{p.question}=" and len(p.ids) == len(p.text)  # one token per character
    assert p.answer == str(sum(int(d) for d in p.question.split("+")))
    assert 2 <= p.meta["difficulty"] <= 5 and p.meta["source"] == "arithmetic"


def test_chat_template_applied_when_present(toy_tokenizer):
    import copy

    tok = copy.deepcopy(toy_tokenizer)
    cfg = DataConfig(name="builtin:arithmetic", num_examples=3, system_prompt="Be brief.")
    with pytest.raises(ConfigError, match="no chat template"):
        load_prompts(DataConfig(name="builtin:arithmetic", num_examples=3, chat_template="on"), tok)
    plain = load_prompts(cfg, tok)  # auto, no template: system prompt prepended as text
    assert plain[0].text == f"Be brief.\n{plain[0].question}"
    tok.chat_template = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"
    chat = load_prompts(cfg, tok)
    assert chat[0].text == f"<system>Be brief.<user>{chat[0].question}<assistant>"


def test_prompt_sampler_epochs_and_resume():
    s = PromptSampler(10, seed=3)
    first = s.next(6) + s.next(4)
    assert sorted(first) == list(range(10))  # one epoch = every prompt once
    s.next(3)
    state = s.state_dict()
    expected = s.next(12)
    s2 = PromptSampler(10, seed=3)
    s2.load_state_dict(state)
    assert s2.next(12) == expected
    with pytest.raises(ValueError, match="10 prompts"):
        PromptSampler(11, seed=3).load_state_dict(state)


def test_template_may_use_other_columns(tmp_path, toy_tokenizer):
    f = write_jsonl(tmp_path / "b.jsonl", [{"question": "1+1?", "answer": "2", "budget": 300}])
    cfg = DataConfig(name=str(f), prompt_template="{question} Think for {budget} tokens.", chat_template="off")
    (p,) = load_prompts(cfg, toy_tokenizer)
    assert p.text == "1+1? Think for 300 tokens." and p.meta["budget"] == 300
    with pytest.raises(ConfigError, match=r"uses \{level\}, which is not a dataset column"):
        load_prompts(DataConfig(name=str(f), prompt_template="{level}: {question}"), toy_tokenizer)


def test_l1_budgets_are_drawn_per_step_and_stated_in_the_prompt(toy_tokenizer):
    from rl.data import draw_budgets

    cfg = DataConfig(name="builtin:arithmetic", num_examples=20, prompt_template="Q:{question}=", chat_template="off",
                     length_budget=[16, 128], budget_mode="max")
    prompts = load_prompts(cfg, toy_tokenizer)
    a = draw_budgets(prompts, cfg, toy_tokenizer, seed=0, step=1)
    assert a == draw_budgets(prompts, cfg, toy_tokenizer, seed=0, step=1)  # reproducible (resume)
    assert [p.meta["budget"] for p in a] != [p.meta["budget"] for p in draw_budgets(prompts, cfg, toy_tokenizer, 0, 2)]
    p = a[0]
    assert 16 <= p.meta["budget"] <= 128 and p.id == prompts[0].id
    assert p.text == f"Q:{prompts[0].question}\n\nThink for maximum {p.meta['budget']} tokens.=" and len(p.ids) == len(p.text)
    assert "budget" not in prompts[0].meta  # the dataset's prompts are left as they were


def test_length_budget_validation():
    from rl.config import load_config

    with pytest.raises(ConfigError, match=r"data.length_budget must be \[low, high\]"):
        load_config(None, ["data.length_budget=[100, 10]"])


def test_hub_dataset_by_name(monkeypatch, toy_tokenizer):
    """No hub access here: check the call laconic makes, with a stand-in for datasets.load_dataset."""
    import datasets

    calls = []

    def fake_load(name, subset=None, split=None):
        calls.append((name, subset, split))
        return datasets.Dataset.from_list([{"question": "2+2?", "answer": "so #### 4"}] * 3)

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    prompts = load_prompts(DataConfig(name="openai/gsm8k", subset="main", split="train", num_examples=2,
                                      chat_template="off"), toy_tokenizer)
    assert calls == [("openai/gsm8k", "main", "train")]
    assert [p.answer for p in prompts] == ["4", "4"]


def test_l1_budget_goes_where_the_template_puts_it(toy_tokenizer):
    from rl.data import draw_budgets

    cfg = DataConfig(name="builtin:arithmetic", num_examples=5, prompt_template="B{budget}Q:{question}=",
                     chat_template="off", length_budget=[16, 128])
    prompts = load_prompts(cfg, toy_tokenizer)
    assert prompts[0].text == f"B128Q:{prompts[0].question}=" and "budget" not in prompts[0].meta
    p = draw_budgets(prompts, cfg, toy_tokenizer, seed=0, step=1)[0]
    assert p.text == f"B{p.meta['budget']}Q:{prompts[0].question}=" and len(p.ids) == len(p.text)


def test_effort_range_draws_a_stated_effort_per_prompt_and_step(toy_tokenizer):
    from rl.data import build_prompts, draw_budgets

    cfg = DataConfig(prompt_template="{question}", chat_template="off", effort_range=[0.2, 0.6])
    ps = build_prompts([{"question": "1+1", "answer": "2"}, {"question": "2+3", "answer": "5"}], cfg, toy_tokenizer, "m")
    step1, again, step2 = (draw_budgets(ps, cfg, toy_tokenizer, 0, s) for s in (1, 1, 2))
    assert [p.meta["effort"] for p in step1] == [p.meta["effort"] for p in again]  # reproducible
    assert [p.meta["effort"] for p in step1] != [p.meta["effort"] for p in step2]  # fresh each step
    for p in step1 + step2:
        assert 0.2 <= p.meta["effort"] <= 0.6 and p.text.endswith(f"Reasoning effort: {p.meta['effort']:g}")


def test_chat_template_kwargs_reach_the_template(toy_tokenizer):
    """data.chat_template_kwargs (issue 26, item 3): passed to apply_chat_template, as Qwen3's
    enable_thinking switch is; the same DataConfig renders training and eval prompts."""
    import copy

    from rl.data import render_prompt

    tok = copy.deepcopy(toy_tokenizer)
    tok.chat_template = ("{% for m in messages %}{{ m['content'] }}{% endfor %}"
                         "{% if enable_thinking is defined and not enable_thinking %}<think></think>{% endif %}")
    on = DataConfig(chat_template="on")
    assert not render_prompt("Q:1+1=", on, tok)[0].endswith("<think></think>")
    off = DataConfig(chat_template="on", chat_template_kwargs={"enable_thinking": False})
    assert render_prompt("Q:1+1=", off, tok)[0] == "Q:1+1=<think></think>"
    with pytest.raises(ConfigError, match="chat_template_kwargs.*not chat-templated"):
        render_prompt("Q:1+1=", DataConfig(chat_template="off", chat_template_kwargs={"enable_thinking": False}), tok)
