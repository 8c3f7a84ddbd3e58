"""The training loop (loop), one step's batch (sampling), the update (update) and the reference pass
before step 1.
"""
