"""Training dynamics wired end to end (untrained toy): dynamic sampling, length schedules and the
advantage estimators inside real runs, on one process and on two."""

import json
from collections import Counter

from rl.run.tracking import read_metrics

from tests.train.test_trainer import TWO_PROCESSES, laconic, overrides

# kimi_length separates completions by length even when all are wrong, so an untrained model's
# groups are a mix of zero-std groups (all truncated) and groups with signal
DYN = ["rewards=[{name: kimi_length}]", "algo.dynamic_sampling=reward", "algo.max_sampling_rounds=3",
       "rollout.length_schedule={kind: staged, stages: [[1, 16], [2, 8]]}", "eval.before=false",
       "eval.after=false", "train.max_steps=2", "train.log_completions=1"]


def test_dynamic_sampling_and_a_staged_limit_in_a_run(untrained_toy, tmp_path):
    out = tmp_path / "run"
    p = laconic(overrides(untrained_toy, out, *DYN, "algo.advantage=reinforce_pp_baseline"))
    assert p.returncode == 0, p.stderr[-3000:]
    rows = read_metrics(out / "metrics.jsonl")
    assert [r["length_limit"] for r in rows] == [16, 8]
    for r, limit in zip(rows, (16, 8)):
        assert r["tokens/max"] <= limit
        assert 1 <= r["sampling/rounds"] <= 3
        assert 0 <= r["sampling/zero_std_fraction"] <= 1
        assert r["sampling/kept_fraction"] == 1 - r["sampling/zero_std_fraction"]
        assert any(k.startswith("by_difficulty/") for k in r)
    trained = [json.loads(line) for line in (out / "completions" / "rank0.jsonl").read_text().splitlines()]
    for step in (1, 2):
        by_group = Counter(row["group"] for row in trained if row["step"] == step)
        assert set(by_group.values()) <= {4}  # whole groups only
        rewards = {}
        for row in trained:
            if row["step"] == step:
                rewards.setdefault(row["group"], set()).add(round(row["reward"], 9))
        assert all(len(v) > 1 for v in rewards.values())  # every kept group has reward spread


def test_dynamic_sampling_deals_equal_groups_to_two_processes(untrained_toy, tmp_path):
    out = tmp_path / "ddp"
    launcher = TWO_PROCESSES
    p = laconic(overrides(untrained_toy, out, *DYN, "algo.advantage=drpo"), launcher=launcher)
    assert p.returncode == 0, p.stderr[-4000:]
    rows = read_metrics(out / "metrics.jsonl")
    for step, r in zip((1, 2), rows):
        per_rank = [Counter(json.loads(line)["group"] for line in
                            (out / "completions" / f"rank{k}.jsonl").read_text().splitlines()
                            if json.loads(line)["step"] == step) for k in (0, 1)]
        assert len(per_rank[0]) == len(per_rank[1]) == r["sampling/kept_groups"] / 2  # equal work
        assert not set(per_rank[0]) & set(per_rank[1])  # a group lives on one process
        assert set(per_rank[0].values()) | set(per_rank[1].values()) <= {4}
