"""Which validation is the best so far, by one metric or several.

With several metrics (say next-item NDCG@10, genre F1 and rating RMSE, so that a
checkpoint good at one family but still untrained at another is not kept), a validation
beats the best so far when the mean relative change of its metrics is positive: each
metric's change divided by the best's value, negated where lower is better (the average
per-task change, Δm, that multi-task learning reports against single-task models). Metrics
on different scales then count alike, and with one metric the rule is a plain comparison.
"""

from __future__ import annotations

__all__ = ["lower_is_better", "mean_relative_change"]


def lower_is_better(metric: str) -> bool:
    """Whether a smaller value of ``metric`` (``loss`` or ``FAMILY/METRIC``) is better:
    losses, RMSE and MAE."""
    name = metric.rsplit("/", 1)[-1]
    return metric == "loss" or metric.startswith("loss/") or name.startswith(("rmse", "mae"))


def mean_relative_change(values: dict[str, float], best: dict[str, float]) -> float:
    """Mean over the metrics of ``best`` of the relative change from ``best`` to
    ``values``, signed so that positive is better."""
    missing = sorted(set(best) - set(values))
    if missing or not best:
        raise ValueError(f"no values for the selection metrics {missing or '(none)'}")
    total = 0.0
    for metric, old in best.items():
        change = (values[metric] - old) / max(abs(old), 1e-12)
        total += -change if lower_is_better(metric) else change
    return total / len(best)
