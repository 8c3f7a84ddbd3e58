"""Running a job: run directories, checkpoints, trackers, preflight checks, multi-process set-up, and
the memory plan.
"""
