"""``laconic sample``: the rows it builds (by hand) and the command on the overthinking toy."""

import json

import pytest

from rewards.base import Sample
from rl.baselines.sample import build_rows


def _group(pid: str, specs):
    """Samples of one prompt from (length, verifier's verdict, truncated) triples, in sampled order."""
    return [Sample(prompt_id=pid, group=0, prompt=f"Q:{pid}=", completion=f"{pid}-{j}-{n}", answer="3", length=n,
                   correct=ok, truncated=cut) for j, (n, ok, cut) in enumerate(specs)]


def test_build_rows_by_hand():
    samples = (_group("a", [(12, True, False), (6, True, True), (8, True, False), (8, True, False), (20, False, False)])
               + _group("b", [(5, False, False), (9, False, True), (7, False, False), (3, False, False), (4, False, False)]))
    raw, sft, pairs = build_rows(samples, 5, ["kimi", "tops", "shortest_longest"])
    assert len(raw) == 10
    # the truncated 6-token sample was judged correct by the verifier: never correct here
    assert [r["correct"] for r in raw[:5]] == [True, False, True, True, False]
    assert raw[1]["truncated"] is True and raw[1]["length"] == 6
    # prompt a: shortest correct untruncated = 8 tokens, the first of the two (index 2); b has none: dropped
    assert sft == [{"prompt": "Q:a=", "completion": "a-2-8", "prompt_id": "a", "sample_index": 2, "length": 8}]
    # kimi: L_w = 8; 12 >= 1.5 x 8 (correct, rejected), the wrong 20 (rejected); the 8 tie is not longer,
    # the truncated 6 is shorter
    assert [(p["chosen"], p["rejected"]) for p in pairs["kimi"]] == [("a-2-8", "a-0-12"), ("a-2-8", "a-4-20")]
    # tops: longest wrong = 20; shortest wrong below 8 = the truncated 6
    assert [p["rejected"] for p in pairs["tops"]] == ["a-4-20", "a-1-6"]
    assert pairs["tops"][1]["rejected_truncated"] is True and pairs["tops"][1]["rejected_correct"] is False
    assert [p["rejected"] for p in pairs["shortest_longest"]] == ["a-0-12"]
    _, _, capped = build_rows(samples, 5, ["kimi"], max_pairs=1)
    assert len(capped["kimi"]) == 1
    _, _, loose = build_rows(samples, 5, ["kimi"], ratio=1.6)  # 12 < 1.6 x 8: only the wrong one
    assert [p["rejected"] for p in loose["kimi"]] == ["a-4-20"]


def test_build_rows_conversational():
    messages = {"a": [{"role": "user", "content": "1+2"}]}
    _, sft, pairs = build_rows(_group("a", [(9, True, False), (30, False, False)]), 2, ["kimi"], messages=messages)
    assert sft[0]["prompt"] == messages["a"]
    assert sft[0]["completion"] == [{"role": "assistant", "content": "a-0-9"}]
    assert pairs["kimi"][0]["rejected"] == [{"role": "assistant", "content": "a-1-30"}]


def laconic(capsys, *args) -> tuple[int, str]:
    """``laconic ARGS`` in this process: (exit status, stderr)."""
    from rl.cli import main

    capsys.readouterr()
    code = main(list(args))
    return code, capsys.readouterr().err


def test_sample_refuses_an_occupied_out_and_bad_options(tmp_path, capsys):
    (tmp_path / "sft.jsonl").write_text("{}\n")
    code, err = laconic(capsys, "sample", "builtin:toy", "--out", str(tmp_path))
    assert code == 2 and "already holds a sample (sft.jsonl)" in err and "--overwrite" in err
    code, err = laconic(capsys, "sample", "builtin:toy", "--out", str(tmp_path / "new"), "--pairs", "kimi,topz")
    assert code == 2 and "unknown rule 'topz'" in err and "did you mean 'tops'" in err
    code, err = laconic(capsys, "sample", "builtin:toy", "--out", str(tmp_path / "new"), "--max-pairs-per-prompt", "0")
    assert code == 2 and "--max-pairs-per-prompt must be >= 1" in err
    assert not (tmp_path / "new").exists()


def test_sample_on_the_toy_writes_datasets_loadable_files(tmp_path, capsys):
    """16 training prompts x 4 samples of the trained toy (cached under ~/.cache/laconic)."""
    from datasets import load_dataset

    out = tmp_path / "s"
    args = ["sample", "builtin:toy", "--data", "builtin:arithmetic", "--num-examples", "16", "--samples", "4",
            "--max-new-tokens", "160", "--delimiter", "none", "--seed", "7", "--no-progress", "--out", str(out)]
    code, err = laconic(capsys, *args)
    assert code == 0, err[-3000:]
    info = json.loads((out / "sample.json").read_text())
    raw = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(raw) == 64 and info["counts"]["completions"] == 64
    assert {"prompt", "completion", "length", "correct", "truncated", "prompt_id"} <= set(raw[0])
    assert raw[0]["prompt"].startswith("Q:") and raw[0]["prompt"].endswith("=")
    assert not any(r["correct"] and r["truncated"] for r in raw)
    sft = load_dataset("json", data_files=str(out / "sft.jsonl"), split="train")
    # one row per prompt with a correct sample, and it is that prompt's shortest correct
    by_prompt = {}
    for r in raw:
        by_prompt.setdefault(r["prompt_id"], []).append(r)
    assert len(sft) == sum(any(r["correct"] for r in rs) for rs in by_prompt.values()) > 0
    for row in sft:
        assert row["length"] == min(r["length"] for r in by_prompt[row["prompt_id"]] if r["correct"])
    for rule in ("kimi", "tops", "shortest_longest"):
        path = out / f"pairs_{rule}.jsonl"
        assert path.exists() and info["counts"][f"pairs_{rule}"] == len(path.read_text().splitlines())
        if info["counts"][f"pairs_{rule}"]:
            ds = load_dataset("json", data_files=str(path), split="train")
            assert {"prompt", "chosen", "rejected"} <= set(ds.column_names)
    assert info["sft_mean_tokens"] < info["start"]["mean_tokens"]  # the shortest correct is shorter than average
    # the same seed gives the same samples; an existing sample is refused, then replaced with --overwrite
    code, err = laconic(capsys, *args)
    assert code == 2 and "already holds a sample" in err
    code, err = laconic(capsys, *args, "--overwrite")
    assert code == 0, err[-3000:]
    again = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert [r["completion"] for r in again] == [r["completion"] for r in raw]


PLAIN = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
         "{% if add_generation_prompt %}<assistant>{% endif %}")
R1_LIKE = ("{% for m in messages %}{% if m['role'] == 'assistant' %}<assistant>{{ m['content'].split('</think>')[-1] }}"
           "{% else %}<{{ m['role'] }}>{{ m['content'] }}\n{% endif %}{% endfor %}"
           "{% if add_generation_prompt %}<assistant>{% endif %}")


def test_conversational_rows_reproduce_the_sampled_prompt_and_keep_the_reasoning(toy_tokenizer):
    import copy

    from rl.baselines.sample import conversational_prompts
    from rl.config import DataConfig
    from rl.data import build_prompts
    from rl.eval.cli import UsageError

    tok = copy.deepcopy(toy_tokenizer)
    tok.chat_template = PLAIN
    cfg = DataConfig(prompt_template="Q:{question}=", system_prompt="Be brief.", chat_template="on")
    prompts = build_prompts([{"question": "1+2", "answer": "3"}, {"question": "4+4", "answer": "8"}], cfg, tok, "t")
    messages = conversational_prompts(prompts, cfg, tok)
    assert messages[prompts[0].id] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q:1+2="}]
    tok.chat_template = R1_LIKE  # drops the reasoning from assistant turns: TRL would not train on it
    with pytest.raises(UsageError, match="drops part of the completion"):
        conversational_prompts(build_prompts([{"question": "1+2", "answer": "3"}], cfg, tok, "t"), cfg, tok)
    with pytest.raises(UsageError, match="needs the chat template in use"):
        conversational_prompts(prompts, DataConfig(chat_template="off"), toy_tokenizer)
