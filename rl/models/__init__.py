"""Models: loading the policy, tokenizer and reference; the overthinking toy and toy-think; SmolLM2
offline; merging.
"""
