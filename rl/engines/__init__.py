"""Rollout engines: the shared types (base), the transformers engine, colocated vLLM, the ``vllm
serve`` client, ``laconic serve``, and the choice between them (build).
"""
