"""TRL and verl names answered, not guessed (issue 24, B6): each case below got a misleading suggestion
before (``rollout.num_generations`` -> generation_batch_size, ``algo.beta`` -> tis_cap, ``algo.epsilon`` ->
adv_eps, ``rollout.max_completion_length`` -> vllm_max_model_len, ``train.bf16`` -> adam_beta1)."""

import re
from pathlib import Path

import pytest

from rl.config import ConfigError, load_config
from rl.config.aliases import ALIASES
from rl.config.schema import all_keys

from tests.conftest import ROOT


@pytest.mark.parametrize("override, says", [
    ("rollout.num_generations=8", "laconic calls TRL's num_generations 'rollout.group_size'"),
    ("algo.beta=0.04", "laconic calls TRL's beta 'algo.kl_coef'"),
    ("algo.epsilon=0.2", "for TRL's epsilon, laconic has algo.clip_low"),
    ("rollout.max_completion_length=512", "laconic calls TRL's max_completion_length 'rollout.max_new_tokens'"),
    ("train.bf16=true", "for TRL's bf16, laconic has accelerate's mixed precision"),
    ("algo.kl_loss_coef=0.001", "laconic calls verl's kl_loss_coef 'algo.kl_coef'"),
    ("algo.learning_rate=1e-6", "it is 'train.learning_rate'"),
    ("algo.clip_hgh=0.3", "did you mean 'algo.clip_high'"),
])
def test_foreign_and_misplaced_names_are_answered(override, says):
    with pytest.raises(ConfigError) as e:
        load_config(None, [override])
    assert says in str(e.value) and str(e.value).count(";") == 1, str(e.value)


def test_no_suggestion_at_any_distance():
    with pytest.raises(ConfigError) as e:
        load_config(None, ["train.frobnicate=1"])
    assert str(e.value) == "unknown key 'train.frobnicate'"


def test_every_alias_points_at_a_real_key_and_the_docs_list_them_all():
    keys = set(all_keys())
    for name, (target, _) in ALIASES.items():
        assert name not in {k.rsplit(".", 1)[-1] for k in keys}, f"{name} is a laconic key: no alias needed"
        named = re.findall(r"\b(?:model|data|rollout|algo|train|eval)\.[a-z_0-9]+", target)
        assert all(k in keys for k in named), (name, target)
    doc = (ROOT / "docs" / "coming_from_trl_verl.md").read_text()
    for name, (target, _) in ALIASES.items():
        assert f"| `{name}` |" in doc and target in doc, name
