"""``laconic baseline`` on the overthinking toy through TRL's own trainers (the trained toy, cached
under ~/.cache/laconic): its run directory is read by ``laconic eval`` and ``laconic compare``, and
SFT on the shortest correct samples makes the toy shorter."""

import json

import pytest
import yaml

from tests.conftest import ROOT


def laconic(capsys, *args) -> tuple[int, str, str]:
    from rl.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def toy_sample(tmp_path_factory):
    """16 training prompts x 4 samples of the toy (all three files)."""
    from rl.cli import main

    out = tmp_path_factory.mktemp("baseline") / "sample"
    code = main(["sample", "builtin:toy", "--data", "builtin:arithmetic", "--num-examples", "16", "--samples", "4",
                 "--max-new-tokens", "160", "--delimiter", "none", "--seed", "3", "--no-progress", "--out", str(out)])
    assert code == 0
    return out


def _recipe(tmp_path, name: str, **over) -> str:
    data = yaml.safe_load((ROOT / "recipes" / "baselines" / name).read_text())
    for key, value in over.items():
        section, _, leaf = key.partition(".")
        if leaf:
            data.setdefault(section, {})[leaf] = value
        else:
            data[key] = value
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.mark.parametrize("name, data_file", [("toy_sft_shortest.yaml", "sft.jsonl"),
                                             ("toy_dpo_kimi.yaml", "pairs_kimi.jsonl"),
                                             ("toy_simpo.yaml", "pairs_kimi.jsonl")])
def test_two_steps_then_laconic_eval_and_compare_read_the_run(tmp_path, capsys, toy_sample, name, data_file):
    from rl.eval.runs import load_run

    run = tmp_path / "run"
    recipe = _recipe(tmp_path, name, train_file=str(toy_sample / data_file), output_dir=str(run),
                     **{"trl.max_steps": 2, "trl.per_device_train_batch_size": 4, "trl.logging_steps": 1,
                        "eval.num_examples": 8, "eval.samples": 1, "eval.before": False})
    code, out, err = laconic(capsys, "baseline", recipe)
    assert code == 0, err[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["after"]["n"] == 8 and summary["eval_set"]["held_out"] is True
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics if "loss" in m] == [1, 2]
    config = json.loads((run / "config.json").read_text())
    assert config["trl_config"]["max_length"] == config["longest_row"] > 20  # raised past what TRL would cut at
    assert (run / "final" / "toy_info.json").is_file()
    assert not (run / "trl").exists(), sorted(p.name for p in (run / "trl").rglob("*"))  # no TRL checkpoint
    # laconic eval reads final/ (the toy's prompt format from toy_info.json), compare reads the run
    code, out, err = laconic(capsys, "eval", run / "final", "--data", "builtin:arithmetic", "--num-examples", "8",
                             "--no-progress", "--out", tmp_path / "eval")
    assert code == 0, err[-3000:]
    assert "Q:" in json.loads((tmp_path / "eval" / "eval.json").read_text())["settings"]["prompt_template"]
    point = load_run(run).point
    assert point is not None and point.n == 8
    # a second run into the same directory is refused, with the way out named
    code, out, err = laconic(capsys, "baseline", recipe)
    assert code == 2 and "already holds a run" in err and "overwrite=true" in err


def test_a_bad_recipe_fails_before_any_model_loads(tmp_path, capsys):
    code, out, err = laconic(capsys, "baseline", ROOT / "recipes" / "baselines" / "toy_dpo_kimi.yaml",
                             f"train_file={tmp_path / 'none.jsonl'}", "trl.bta=0.2")
    assert code == 2 and "no such file" in err
    (tmp_path / "p.jsonl").write_text('{"prompt": "Q:1+1=", "chosen": "1+1=2.A:2", "rejected": "A:3"}\n')
    code, out, err = laconic(capsys, "baseline", ROOT / "recipes" / "baselines" / "toy_dpo_kimi.yaml",
                             f"train_file={tmp_path / 'p.jsonl'}", "trl.bta=0.2")
    assert code == 2 and "unknown key 'trl.bta' (not a field of DPOConfig); did you mean 'trl.beta'?" in err


def test_sft_on_the_shortest_correct_makes_the_toy_shorter(tmp_path, capsys):
    """The toy recipe at a smaller scale: 128 training prompts x 8 samples, SFT on each prompt's
    shortest correct sample; on 100 held-out problems x 2 samples the mean length must drop by a
    fifth, at most 8 points of accuracy lost (the start re-checks 0-4 times at random; the shortest
    of 8 rarely re-checks). Measured here: 91.0 % -> 95.5 % and 79.3 -> 31.3 tokens (18 s); the recipe
    at full scale: 92.3 % -> 90.6 % and 84.5 -> 33.2 tokens (docs/reproductions.md)."""
    sample = tmp_path / "sample"
    code, out, err = laconic(capsys, "sample", "builtin:toy", "--data", "builtin:arithmetic", "--num-examples", "128",
                             "--samples", "8", "--max-new-tokens", "160", "--delimiter", "none", "--no-progress",
                             "--out", sample)
    assert code == 0, err[-3000:]
    run = tmp_path / "sft"
    recipe = _recipe(tmp_path, "toy_sft_shortest.yaml", train_file=str(sample / "sft.jsonl"), output_dir=str(run),
                     **{"eval.num_examples": 100, "eval.samples": 2, "trl.per_device_train_batch_size": 16})
    code, out, err = laconic(capsys, "baseline", recipe)
    assert code == 0, err[-3000:]
    s = json.loads((run / "summary.json").read_text())
    b, a = s["before"], s["after"]
    assert a["mean_tokens"] <= 0.8 * b["mean_tokens"], (b, a)
    assert a["accuracy"] >= b["accuracy"] - 0.08, (b, a)
