"""laconic trainer: config, data, rollout engines, scoring, advantages, loss, loop, checkpoints, eval."""
