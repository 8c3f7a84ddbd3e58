"""Length baselines on TRL's trainers: ``laconic sample`` (rows) and ``laconic baseline`` (training)."""
