"""Evaluation and comparison: metrics, the report, ``laconic eval``, and ``laconic compare`` (runs,
plots, seeds).
"""
