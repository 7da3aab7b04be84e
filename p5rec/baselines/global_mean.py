"""Global mean: predict the mean training rating for every pair."""

from __future__ import annotations

from collections.abc import Iterable


class GlobalMean:
    name = "global_mean"

    def __init__(self, train_ratings: Iterable[float]) -> None:
        values = list(train_ratings)
        if not values:
            raise ValueError("GlobalMean needs at least one training rating")
        self.mean = sum(values) / len(values)

    def predict(self, n: int) -> list[float]:
        return [self.mean] * n
