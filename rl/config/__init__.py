"""Recipe configuration: the schema (:mod:`rl.config.schema`), loading with overrides
(:mod:`rl.config.load`) and cross-field validation (:mod:`rl.config.validate`).

``laconic train recipes/quickstart.yaml algo.clip_high=0.28 train.max_steps=10``
"""

from rl.config.load import load_config, parse_overrides
from rl.config.schema import (CHOICES, EVAL_DATA_FIELDS, AlgoConfig, Config, ConfigError, DataConfig, EvalConfig,
                              ModelConfig, RolloutConfig, TrainConfig, eval_data_config)
from rl.config.validate import kl_cov_options, validate, validate_kl_cov, validate_prefixes

__all__ = [
    "CHOICES", "EVAL_DATA_FIELDS", "AlgoConfig", "Config", "ConfigError", "DataConfig", "EvalConfig", "ModelConfig",
    "RolloutConfig", "TrainConfig", "eval_data_config", "kl_cov_options", "load_config", "parse_overrides",
    "validate", "validate_kl_cov", "validate_prefixes",
]
