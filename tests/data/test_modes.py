"""ThinkDial's reasoning modes in the data (rl/data.py): drawn per prompt and step, stated in the prompt,
meta["mode"] for the rewards; data.modes' validation (rl/config/validate.py)."""

import copy
from collections import Counter

import pytest

from rl.config import ConfigError, DataConfig, load_config
from rl.data import build_prompts, draw_budgets, draw_mode, render_prompt

ROWS = [{"question": f"{a}+{a}", "answer": str(2 * a)} for a in range(1, 31)]
TOY = {"high": "H", "medium": "M", "low": "L"}


def toy_cfg(**kw):
    return DataConfig(**{"prompt_template": "{mode}Q:{question}=", "chat_template": "off",
                         "modes": ["high", "medium", "low"], "mode_prompts": TOY, **kw})


def test_modes_are_drawn_per_prompt_and_step_and_stated_where_the_template_says(toy_tokenizer):
    cfg = toy_cfg()
    ps = build_prompts(ROWS, cfg, toy_tokenizer, "m")
    assert ps[0].text == "HQ:1+1=" and "mode" not in ps[0].meta  # until drawn: the first mode, not in meta
    step1, again, step2 = (draw_budgets(ps, cfg, toy_tokenizer, 0, s) for s in (1, 1, 2))
    modes1 = [p.meta["mode"] for p in step1]
    assert modes1 == [p.meta["mode"] for p in again]  # reproducible: a resumed run draws the same
    assert modes1 != [p.meta["mode"] for p in step2]  # fresh each step
    assert set(modes1) == {"high", "medium", "low"}  # uniform over 30 prompts: every mode turns up
    for p, q in zip(step1, ps):
        assert p.id == q.id and p.text == f"{TOY[p.meta['mode']]}Q:{q.question}=" and len(p.ids) == len(p.text)
    assert [draw_mode(cfg, 0, 1, p.id) for p in ps] == modes1  # keyed by (seed, step, prompt id)
    assert modes1 != [p.meta["mode"] for p in draw_budgets(ps, cfg, toy_tokenizer, 1, 1)]  # and the seed


def test_mode_weights_and_a_single_mode(toy_tokenizer):
    cfg = toy_cfg(mode_weights=[0.0, 0.0, 1.0])
    ps = build_prompts(ROWS, cfg, toy_tokenizer, "m")
    assert {p.meta["mode"] for p in draw_budgets(ps, cfg, toy_tokenizer, 0, 3)} == {"low"}
    one = toy_cfg(modes=["high"])
    assert {p.text[0] for p in draw_budgets(ps, one, toy_tokenizer, 0, 3)} == {"H"}
    skewed = toy_cfg(mode_weights=[8, 1, 1])
    counts = Counter(draw_mode(skewed, 0, s, p.id) for s in range(10) for p in ps)
    assert counts["high"] > 2 * counts["medium"] and counts["high"] > 2 * counts["low"]


def test_a_mode_column_wins_over_the_draw(toy_tokenizer):
    cfg = toy_cfg()
    rows = [{**ROWS[0], "mode": "low"}, {**ROWS[1], "mode": None}]
    ps = build_prompts(rows, cfg, toy_tokenizer, "m")
    assert ps[0].text == "LQ:1+1=" and ps[0].meta["mode"] == "low"
    for step in range(5):
        drawn = draw_budgets(ps, cfg, toy_tokenizer, 0, step)
        assert drawn[0].meta["mode"] == "low" and drawn[1].meta["mode"] in TOY  # a missing value is drawn
    with pytest.raises(ConfigError, match=r"row 0, id .*: the mode 'hihg' is not a ThinkDial mode .*did you mean 'high'"):
        build_prompts([{**ROWS[0], "mode": "hihg"}], cfg, toy_tokenizer, "m")


def test_mode_mix_all_trains_every_prompt_in_every_mode(toy_tokenizer):
    cfg = toy_cfg(mode_mix="all")
    ps = build_prompts(ROWS[:2] + [{**ROWS[2], "mode": "medium"}], cfg, toy_tokenizer, "m")
    assert [(p.id.rpartition("@")[2], p.meta["mode"], p.text[0]) for p in ps[:3]] == [
        ("high", "high", "H"), ("medium", "medium", "M"), ("low", "low", "L")]
    assert len(ps) == 7 and len({p.id for p in ps}) == 7 and ps[-1].meta["mode"] == "medium"  # a column: once
    assert draw_budgets(ps, cfg, toy_tokenizer, 0, 1) == ps  # nothing is drawn


def test_the_mode_is_the_system_prompt_of_the_chat_template(toy_tokenizer):
    from rewards.thinkdial import MODE_PROMPTS

    tok = copy.deepcopy(toy_tokenizer)
    tok.chat_template = "{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}{% endfor %}"
    cfg = DataConfig(prompt_template="{question}", chat_template="on", modes=["high", "medium", "low"])
    text, _ = render_prompt("1+1", cfg, tok, {"mode": "low"})
    assert text == f"[system]{MODE_PROMPTS['low']}[user]1+1"
    assert MODE_PROMPTS["low"].startswith("You have extremely limited time to think and respond to the users query.")
    own = DataConfig(prompt_template="{question}", chat_template="on", modes=["medium"], mode_prompts={"medium": "Be brief."})
    assert render_prompt("1+1", own, tok)[0] == "[system]Be brief.[user]1+1"
    off = DataConfig(prompt_template="{question}", chat_template="off", modes=["high"], mode_prompts={"high": "S"})
    assert render_prompt("1+1", off, tok)[0] == "S\n1+1"  # no chat template: a line before the prompt


@pytest.mark.parametrize("override, message", [
    ("data.modes=[high, meduim]", r"^data.modes: 'meduim' is not a ThinkDial mode \(high, medium, low\); did you mean 'medium'\?$"),
    ("data.modes=[]", r"^data.modes must list at least one mode"),
    ("data.modes=[low, low]", r"^data.modes lists a mode twice"),
    ("data.mode_mix=every", r"^data.mode_mix: 'every' is not one of \['draw', 'all'\]"),
    ("data.mode_weights=[1, 2]", r"^data.mode_weights is set but data.modes is not"),
    ("eval.modes=[high, low]", r"^eval.modes states each mode as data.modes does: set data.modes too"),
])
def test_mode_validation_is_one_line(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


@pytest.mark.parametrize("overrides, message", [
    (["data.mode_weights=[1, 2]"], r"^data.mode_weights must be one number >= 0 per mode"),
    (["data.mode_weights=[0, 0, 0]"], r"^data.mode_weights must be one number >= 0 per mode"),
    (["data.mode_weights=[1, 1, 1]", "data.mode_mix=all"], r"^data.mode_weights weighs the draw"),
    (["data.mode_prompts={hig: H}"], r"^data.mode_prompts: 'hig' is not a ThinkDial mode \(high, medium, low\); did you mean 'high'\?$"),
    (["data.mode_prompts={low: ''}"], r"^data.mode_prompts.low must be a non-empty string"),
    (["data.system_prompt=Be nice."], r"^data.system_prompt and data.modes"),
    (["eval.modes=[high, lwo]"], r"^eval.modes: 'lwo' is not a ThinkDial mode \(high, medium, low\); did you mean 'low'\?$"),
    (["eval.modes=[]"], r"^eval.modes must list at least one mode"),
    (["eval.modes=[low, low]"], r"^eval.modes lists a mode twice"),
])
def test_mode_field_validation(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, ["data.modes=[high, medium, low]", *overrides])


def test_valid_modes_load():
    cfg = load_config(None, ["data.modes=[high, medium, low]", "data.mode_weights=[1, 1, 2]",
                             "data.prompt_template='{mode}{question}'", "data.system_prompt=hi"])
    assert cfg.data.modes == ["high", "medium", "low"] and cfg.data.mode_weights == [1.0, 1.0, 2.0]
