"""rl/run/rng.py: the seeded scopes of evaluation, the reference pass and the monitor restore every
generator they reseed, the CUDA ones included (fork_rng(devices=[]) restored only the CPU one)."""

import contextlib

import torch

from rl.run import rng


def test_seeded_is_reproducible_and_leaves_the_cpu_stream_untouched():
    torch.manual_seed(11)
    expected = torch.rand(4)  # the training stream without any scope in between
    torch.manual_seed(11)
    with rng.seeded(5):
        a = torch.rand(3)
    with rng.seeded(5):
        b = torch.rand(3)
    with rng.seeded():  # isolated, not reseeded
        torch.rand(100)
    assert torch.equal(a, b)
    assert torch.equal(torch.rand(4), expected)


def test_seeded_forks_every_visible_cuda_generator(monkeypatch):
    seen = {}

    @contextlib.contextmanager
    def fork_rng(devices):
        seen["devices"] = devices
        yield

    monkeypatch.setattr(torch.random, "fork_rng", fork_rng)
    monkeypatch.setattr(torch, "manual_seed", lambda seed: seen.setdefault("seed", seed))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with rng.seeded(7):
        pass
    assert seen == {"devices": [0, 1], "seed": 7}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with rng.seeded(8):
        pass
    assert seen["devices"] == []
