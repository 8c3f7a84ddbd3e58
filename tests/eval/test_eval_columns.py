"""The eval section's own columns, answer format and prompt template (default: the data section's)."""

import json

import pytest

from rl.config import ConfigError, eval_data_config, load_config
from rl.data import load_prompts


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_eval_reads_the_data_section_by_default():
    cfg = load_config(None, ["data.question_column=q", "data.answer_column=a", "data.prompt_template=Q:{question}"])
    d = eval_data_config(cfg)
    assert (d.question_column, d.answer_column, d.prompt_template, d.answer_format) == ("q", "a", "Q:{question}", "auto")
    assert d == cfg.data


def test_eval_columns_override_only_what_is_set():
    cfg = load_config(None, ["data.question_column=question", "data.answer_format=gsm8k", "eval.question_column=problem",
                             "eval.answer_format=raw", "eval.prompt_template='P:{question}'", "data.system_prompt=S"])
    d = eval_data_config(cfg)
    assert (d.question_column, d.answer_column, d.answer_format, d.prompt_template) == ("problem", "answer", "raw", "P:{question}")
    assert d.system_prompt == "S" and cfg.data.question_column == "question"  # the training data is untouched


def test_unknown_eval_key_names_the_closest():
    with pytest.raises(ConfigError, match=r"unknown key 'eval.question_colum'; did you mean 'eval.question_column'"):
        load_config(None, ["eval.question_colum=problem"])
    with pytest.raises(ConfigError, match=r"unknown key 'eval.promt_template'; did you mean 'eval.prompt_template'"):
        load_config(None, ["eval.promt_template=x"])
    with pytest.raises(ConfigError, match=r"eval.answer_format: 'boxd' is not one of .*did you mean 'boxed'"):
        load_config(None, ["eval.answer_format=boxd"])
    with pytest.raises(ConfigError, match=r"eval.question_column: expected str"):
        load_config(None, ["eval.question_column=[a]"])


def test_gsm8k_style_training_evaluates_a_math500_style_file(tmp_path, toy_tokenizer):
    """Training reads question/answer (#### answers); the eval file has problem/answer (raw answers)."""
    train = write_jsonl(tmp_path / "train.jsonl", [{"question": "1+1", "answer": "so #### 2"}])
    test = write_jsonl(tmp_path / "test.jsonl", [{"problem": "2+3", "answer": "5"}, {"problem": "4+4", "answer": "8"}])
    cfg = load_config(None, [f"data.name={train}", "data.answer_format=gsm8k", "data.prompt_template=Q:{question}=",
                             "data.chat_template='off'", f"eval.name={test}", "eval.question_column=problem",
                             "eval.answer_format=raw", "eval.prompt_template=Q:{problem}="])
    train_prompts = load_prompts(cfg.data, toy_tokenizer)
    assert [(p.text, p.answer) for p in train_prompts] == [("Q:1+1=", "2")]
    evals = load_prompts(eval_data_config(cfg), toy_tokenizer, name=cfg.eval.name, split="test", num_examples=None)
    assert [(p.text, p.answer) for p in evals] == [("Q:2+3=", "5"), ("Q:4+4=", "8")]
    with pytest.raises(ConfigError, match="question_column"):  # without eval.question_column: a clear error
        load_prompts(cfg.data, toy_tokenizer, name=cfg.eval.name, split="test")
