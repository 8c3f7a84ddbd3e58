"""User rewards that misbehave, for tests/run/test_reliability.py (referenced as 'tests.bad_rewards:NAME')."""


def raises(samples, ctx):
    raise KeyError("gold")


def nan(samples, ctx):
    return [float("nan")] * len(samples)


def too_few(samples, ctx):
    return [0.0] * (len(samples) - 1)


def fails_at_step_2(samples, ctx):
    if ctx.step == 2:
        raise ValueError("cannot score step 2")
    return [float(bool(s.correct)) for s in samples]


def constant(samples, ctx):
    """Equal rewards in every group: no advantage, no learning signal."""
    return [0.5] * len(samples)
