"""Paired bootstrap intervals for the differences between systems' scores.

Two systems scored on the same test examples differ by more than their metric values show
or by less: one test split is one sample of users. ``paired_bootstrap`` resamples the
examples with replacement, scores every system on each resample with the family's own
evaluator (so every metric, macro-F1 and RMSE included, is computed as the benchmark
computes it), and returns the 2.5th and 97.5th percentiles of each compared difference. A
system trained with several seeds is scored as the mean over its seeds on each resample,
as the benchmark's rows are means. An interval that excludes 0 says the test split's users
decide the comparison; one that straddles it says another sample of users could reverse it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Comparison", "paired_bootstrap"]


@dataclass(frozen=True)
class Comparison:
    """``system``'s ``metric`` minus ``reference``'s (``relative``: divided by the
    reference's, as a "within 5%" target compares them)."""

    system: str
    reference: str
    metric: str
    relative: bool = False


def paired_bootstrap(
    score: Callable[[list[int], Sequence], Mapping[str, float]],
    predictions: Mapping[str, Sequence[Sequence]],
    comparisons: Sequence[Comparison],
    n: int,
    resamples: int = 200,
    seed: int = 0,
) -> dict[Comparison, tuple[float, float] | None]:
    """The 95% interval of each comparison's difference over bootstrap resamples (None
    where every resample's reference scored 0 for a relative comparison).

    ``predictions``: per system, each seed's predictions, aligned with the ``n`` examples;
    ``score(indices, predictions)`` gives the metrics of those predictions on the examples
    at ``indices`` (repeats included). Every system of a comparison must be in
    ``predictions``.
    """
    if n < 1:
        raise ValueError("paired_bootstrap needs at least one example")
    if resamples < 2:
        raise ValueError(f"resamples must be at least 2, got {resamples}")
    needed = sorted({name for c in comparisons for name in (c.system, c.reference)})
    for name in needed:
        runs = predictions.get(name)
        if not runs:
            raise ValueError(f"{name!r}: no predictions to resample")
        lengths = sorted({len(preds) for preds in runs})
        if lengths != [n]:
            raise ValueError(f"{name!r}: predictions for {lengths} examples, expected {n}")
    rng = random.Random(seed)
    diffs: dict[Comparison, list[float]] = {c: [] for c in comparisons}
    for _ in range(resamples):
        idx = [rng.randrange(n) for _ in range(n)]
        scored = {}
        for name in needed:
            per_seed = [score(idx, preds) for preds in predictions[name]]
            scored[name] = {m: sum(s[m] for s in per_seed) / len(per_seed) for m in per_seed[0]}
        for c in comparisons:
            a, b = scored[c.system][c.metric], scored[c.reference][c.metric]
            if c.relative:
                diffs[c].append((a - b) / abs(b) if b else math.nan)
            else:
                diffs[c].append(a - b)
    out = {}
    for c, values in diffs.items():
        values = sorted(v for v in values if not math.isnan(v))
        out[c] = (_percentile(values, 0.025), _percentile(values, 0.975)) if values else None
    return out


def _percentile(ordered: list[float], q: float) -> float:
    """Linear interpolation between the order statistics (numpy's default)."""
    pos = q * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
