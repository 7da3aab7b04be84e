"""Columnar event tables: what readers stream into and cleaning works on.

A reader appends one event at a time to an ``EventBuilder`` (ids interned to integer
codes, numbers in typed arrays), so a file of tens of millions of events is held as a few
compact arrays, never as one Python object per event. ``clean`` then removes duplicate
events, applies k-core filtering to a fixed point, remaps ids to dense codes in sorted id
order and sorts events by (user, timestamp) with ties kept in input order.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from p5rec.data.corpus import Corpus

__all__ = ["DEDUPE", "EventBuilder", "EventTable", "clean", "table_from_corpus"]

DEDUPE = ("none", "exact", "first", "last")


@dataclass
class EventTable:
    """Events as parallel arrays; ``users[user[n]]`` is the id of event ``n``'s user."""

    users: list[str]
    items: list[str]
    user: np.ndarray  # (events,) int32 codes into ``users``
    item: np.ndarray  # (events,) int32 codes into ``items``
    timestamp: np.ndarray  # (events,) int64
    rating: np.ndarray  # (events,) float64, NaN where there is no rating
    review: list[str | None] | None = None  # None: no event has a review
    summary: list[str | None] | None = None

    def __len__(self) -> int:
        return len(self.user)

    def take(self, idx: np.ndarray) -> EventTable:
        """The events at ``idx`` (in that order), same id tables."""

        def pick(col):
            return None if col is None else [col[i] for i in idx.tolist()]

        return EventTable(
            self.users,
            self.items,
            self.user[idx],
            self.item[idx],
            self.timestamp[idx],
            self.rating[idx],
            pick(self.review),
            pick(self.summary),
        )


class EventBuilder:
    """Appends events one at a time in bounded memory per event."""

    def __init__(self) -> None:
        self._users: dict[str, int] = {}
        self._items: dict[str, int] = {}
        self._user = array("i")
        self._item = array("i")
        self._ts = array("q")
        self._rating = array("d")
        self._review: list[str | None] | None = None
        self._summary: list[str | None] | None = None

    def __len__(self) -> int:
        return len(self._user)

    def add(
        self,
        user: str,
        item: str,
        timestamp: int,
        rating: float | None = None,
        review: str | None = None,
        summary: str | None = None,
    ) -> None:
        n = len(self._user)
        self._user.append(self._users.setdefault(user, len(self._users)))
        self._item.append(self._items.setdefault(item, len(self._items)))
        self._ts.append(timestamp)
        self._rating.append(math.nan if rating is None else rating)
        if review is not None and self._review is None:
            self._review = [None] * n
        if self._review is not None:
            self._review.append(review)
        if summary is not None and self._summary is None:
            self._summary = [None] * n
        if self._summary is not None:
            self._summary.append(summary)

    def table(self) -> EventTable:
        return EventTable(
            list(self._users),
            list(self._items),
            np.frombuffer(self._user, dtype=np.int32).copy(),
            np.frombuffer(self._item, dtype=np.int32).copy(),
            np.frombuffer(self._ts, dtype=np.int64).copy(),
            np.frombuffer(self._rating, dtype=np.float64).copy(),
            self._review,
            self._summary,
        )


def table_from_corpus(corpus: Corpus) -> EventTable:
    """The corpus's interactions (already in (user, time) order) as an event table."""
    b = EventBuilder()
    for e in corpus.interactions:
        b.add(e.user, e.item, e.timestamp, e.rating, e.review, e.summary)
    return b.table()


def _dedupe(t: EventTable, how: str) -> tuple[np.ndarray, int]:
    """Indices of the events to keep, and how many duplicates were removed."""
    n = len(t)
    arange = np.arange(n)
    if how == "none" or n == 0:
        return arange, 0
    if how == "last":  # per (user, item): latest timestamp, ties to the later input line
        order = np.lexsort((-arange, -t.timestamp, t.item, t.user))
    else:  # "exact" and "first": earliest, ties to the earlier input line
        order = np.lexsort((arange, t.timestamp, t.item, t.user))
    u, i, ts = t.user[order], t.item[order], t.timestamp[order]
    same = (u[1:] == u[:-1]) & (i[1:] == i[:-1])
    if how == "exact":
        same &= ts[1:] == ts[:-1]
    dup = np.concatenate([[False], same])
    keep = np.sort(order[~dup])
    return keep, int(dup.sum())


def _k_core(t: EventTable, keep: np.ndarray, k: int) -> tuple[np.ndarray, dict]:
    """Drop users and items with fewer than ``k`` events, repeated to a fixed point."""
    rounds = 0
    before = len(keep)
    while k > 1:
        users = np.bincount(t.user[keep], minlength=len(t.users))
        items = np.bincount(t.item[keep], minlength=len(t.items))
        ok = (users[t.user[keep]] >= k) & (items[t.item[keep]] >= k)
        if ok.all():
            break
        keep = keep[ok]
        rounds += 1
    return keep, {"k": k, "rounds": rounds, "events_removed": before - len(keep)}


def clean(t: EventTable, k_core: int = 0, dedupe: str = "exact") -> tuple[EventTable, dict]:
    """Dedupe, k-core filter, remap ids to dense sorted codes and sort; returns a report."""
    if dedupe not in DEDUPE:
        raise ValueError(f"dedupe must be one of {DEDUPE}, got {dedupe!r}")
    keep, dups = _dedupe(t, dedupe)
    keep, core = _k_core(t, keep, k_core)
    kept = t.take(keep)
    # Dense codes in sorted id order: independent of the order events appear in, so a
    # code never encodes position in anyone's sequence.
    report = {
        "events_read": len(t),
        "users_read": len(t.users),
        "items_read": len(t.items),
        "duplicates_removed": {"policy": dedupe, "events": dups},
        "k_core": core,
    }
    users, user = _remap(kept.user, t.users)
    items, item = _remap(kept.item, t.items)
    report["k_core"]["users_removed"] = len(t.users) - len(users)
    report["k_core"]["items_removed"] = len(t.items) - len(items)
    order = np.lexsort((np.arange(len(kept)), kept.timestamp, user))
    kept.users, kept.items, kept.user, kept.item = users, items, user, item
    return kept.take(order), report


def _remap(codes: np.ndarray, ids: list[str]) -> tuple[list[str], np.ndarray]:
    present = np.unique(codes)  # sorted codes still used
    names = [ids[c] for c in present.tolist()]
    by_name = sorted(range(len(names)), key=names.__getitem__)
    new_of_present = np.empty(len(names), dtype=np.int32)
    new_of_present[by_name] = np.arange(len(names), dtype=np.int32)
    lookup = np.full(len(ids), -1, dtype=np.int32)
    lookup[present] = new_of_present
    return [names[i] for i in by_name], lookup[codes]
