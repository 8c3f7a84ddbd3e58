"""Seeded random-number scopes that leave the run's own streams exactly as they were.

Evaluation, the reference pass and LASER-D's monitor sample under their own seeds, so that training is
reproducible with or without them. ``torch.random.fork_rng(devices=[])`` restores torch's CPU generator
only, while ``torch.manual_seed`` seeds every device: on a GPU each such scope used to reseed the CUDA
generators (the transformers engine and an in-process vLLM sample with them) for the rest of the run.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def seeded(seed: int | None = None) -> Iterator[None]:
    """Inside: torch's CPU generator and every visible CUDA generator seeded with ``seed`` (None: left
    as they are, only isolated); afterwards: all of them restored.

    >>> before = torch.get_rng_state()
    >>> with seeded(3):
    ...     a = torch.rand(2)
    >>> with seeded(3):
    ...     b = torch.rand(2)
    >>> torch.equal(a, b), torch.equal(torch.get_rng_state(), before)
    (True, True)
    """
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        if seed is not None:
            torch.manual_seed(seed)
        yield
