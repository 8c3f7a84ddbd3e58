"""The math of an update, pure functions of tensors and lists: advantage estimators, the loss, KL-Cov,
chunked log-probs, DOT outliers, the DECS curriculum, length schedules.
"""
