"""``python tests/run/small_chunks.py <laconic args>``: ``laconic`` with the chunked head cut into 4-token
chunks, so that a toy-vocabulary run makes as many head calls per micro-batch as a 152k-vocabulary one
(110 tokens a chunk) and the count differs between processes, as it does on GPUs."""

import sys

import rl.algo.logprobs as logprobs
from rl.cli import main

if __name__ == "__main__":
    logprobs.chunk_tokens = lambda vocab_size, budget=None: 4
    sys.exit(main())
