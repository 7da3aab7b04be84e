"""Majority: predict the most frequent training label (class, category or summary)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable


class Majority:
    name = "majority"

    def __init__(self, train_labels: Iterable[str]) -> None:
        counts = Counter(train_labels)
        if not counts:
            raise ValueError("Majority needs at least one training label")
        # most frequent, ties broken by the label text so the choice is stable
        self.label = min(counts, key=lambda lab: (-counts[lab], lab))

    def predict(self, n: int) -> list[str]:
        return [self.label] * n
