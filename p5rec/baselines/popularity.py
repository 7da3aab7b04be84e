"""Popularity: rank items by how often they occur in the training interactions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable


class Popularity:
    """Most popular training items first (ties broken by item id, so the order is stable)."""

    name = "popularity"

    def __init__(self, train_items: Iterable[str]) -> None:
        counts = Counter(train_items)
        self.order = sorted(counts, key=lambda i: (-counts[i], i))
        self.count = counts

    def top(self, k: int, exclude: set[str] | frozenset[str] = frozenset()) -> list[str]:
        """The ``k`` most popular items not in ``exclude``."""
        out = []
        for item in self.order:
            if item not in exclude:
                out.append(item)
                if len(out) == k:
                    break
        return out
