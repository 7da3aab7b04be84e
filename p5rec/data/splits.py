"""Evaluation splits of PROTOCOLS.md, computed with fixed seeds on columnar events.

* next item: leave-one-out per user; test target s_n, validation target s_(n-1), training
  targets s_2..s_(n-2), each with its preceding items (history capped at ``max_history``).
* reviews (rating, sentiment, explanation): random 80/10/10 over rated events; every user
  and item of validation/test also appears in training. By default the events that are a
  user's next-item validation or test targets are left out of the review tasks, so no
  review example in multi-task training reveals a held-out next item.
* category: items with categories split 80/10/10 by item.
* candidate ranking: for each validation/test user, the true item plus negatives the user
  never interacted with, sampled with a fixed seed.

``assign_splits`` tags every event and item with its split (what a dataset directory
stores); ``Splits`` is the in-memory view the task families read, built from those tags.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np

from p5rec.config import DataConfig
from p5rec.data.corpus import Corpus

__all__ = ["SPLITS", "Assignment", "SequenceExample", "Splits", "assign_splits", "make_splits"]

SPLITS = ("train", "valid", "test")
NONE, TRAIN, VALID, TEST = 0, 1, 2, 3  # split codes; NONE: in no split of that task
CODE = {"train": TRAIN, "valid": VALID, "test": TEST}


@dataclass(frozen=True)
class SequenceExample:
    """A next-item example: the user's most recent items (oldest first) and the target."""

    user: str
    history: tuple[str, ...]
    target: str
    position: int  # index of the target in the user's full sequence


@dataclass
class Assignment:
    """Split codes per event and per item, candidate lists, and what was moved or left out."""

    next_item: np.ndarray  # (events,) int8
    review: np.ndarray  # (events,) int8
    category: np.ndarray  # (items,) int8
    candidates: dict[str, tuple[np.ndarray, np.ndarray]]  # split -> (user codes, (n, num) items)
    report: dict[str, int] = field(default_factory=dict)

    def sizes(self) -> dict[str, dict[str, int]]:
        def count(codes):
            return {s: int((codes == CODE[s]).sum()) for s in SPLITS}

        return {
            "next_item": count(self.next_item),
            "reviews": count(self.review),
            "category": count(self.category),
            "candidates": {s: len(self.candidates[s][0]) for s in ("valid", "test")},
        }


def _groups(user: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(start, length) of each user's run of events; ``user`` must be sorted."""
    if len(user) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate([[True], user[1:] != user[:-1]]))
    lengths = np.diff(np.concatenate([starts, [len(user)]]))
    return starts, lengths


def _next_item(user: np.ndarray) -> tuple[np.ndarray, int]:
    starts, lengths = _groups(user)
    pos = np.arange(len(user)) - np.repeat(starts, lengths)  # position in the user's sequence
    n = np.repeat(lengths, lengths)
    codes = np.zeros(len(user), dtype=np.int8)
    ok = n >= 3  # needs a training, a validation and a test target
    codes[ok & (pos >= 1) & (pos <= n - 3)] = TRAIN
    codes[ok & (pos == n - 2)] = VALID
    codes[ok & (pos == n - 1)] = TEST
    return codes, int((lengths < 3).sum())


def _ratio_split(keys: list, ratios, rng: random.Random) -> dict[str, list]:
    keys = list(keys)
    rng.shuffle(keys)
    n_train = round(ratios[0] * len(keys))
    n_valid = round(ratios[1] * len(keys))
    return {
        "train": keys[:n_train],
        "valid": keys[n_train : n_train + n_valid],
        "test": keys[n_train + n_valid :],
    }


def _reviews(user, item, rated, next_codes, n_users, n_items, cfg: DataConfig, report):
    held_out = next_codes >= VALID if cfg.exclude_holdout_from_reviews else np.zeros_like(rated)
    report["reviews_left_out_next_item_holdout"] = int((held_out & rated).sum())
    pool = np.flatnonzero(rated & ~held_out).tolist()
    split = _ratio_split(pool, cfg.review_split, random.Random(cfg.split_seed))
    seen_user = np.zeros(n_users, dtype=bool)
    seen_item = np.zeros(n_items, dtype=bool)
    train = np.asarray(split["train"], dtype=np.int64)
    seen_user[user[train]] = True
    seen_item[item[train]] = True
    codes = np.zeros(len(user), dtype=np.int8)
    codes[train] = TRAIN
    moved = 0
    for name in ("valid", "test"):
        for n in split[name]:
            u, i = user[n], item[n]
            if seen_user[u] and seen_item[i]:
                codes[n] = CODE[name]
            else:  # would be unseen in training: move it there (and count it)
                codes[n] = TRAIN
                seen_user[u] = seen_item[i] = True
                moved += 1
    report["reviews_moved_to_train_unseen"] = moved
    return codes


def _sample_negatives(
    rng: np.random.Generator, users: np.ndarray, seen: np.ndarray, n_items: int, k: int
) -> np.ndarray:
    """(len(users), k) distinct items each user never interacted with, uniformly at random.

    Vectorised rejection sampling: draw with replacement, drop draws the user interacted
    with (``seen``: sorted ``user * n_items + item`` keys) and repeats within the row, keep
    the first ``k`` survivors in draw order; rows short of ``k`` are drawn again.
    """
    out = np.empty((len(users), k), dtype=np.int64)
    todo = np.arange(len(users))
    width = k + k // 2 + 8
    while len(todo):
        draws = rng.integers(0, n_items, size=(len(todo), width))  # (rows, width)
        keys = users[todo, None].astype(np.int64) * n_items + draws
        pos = np.minimum(np.searchsorted(seen, keys), len(seen) - 1)
        bad = seen[pos] == keys
        order = np.argsort(draws, axis=1, kind="stable")  # first draw of a repeat comes first
        ranked = np.take_along_axis(draws, order, axis=1)
        repeat = np.zeros_like(bad)
        repeat[:, 1:] = ranked[:, 1:] == ranked[:, :-1]
        np.put_along_axis(bad, order, repeat | np.take_along_axis(bad, order, axis=1), axis=1)
        enough = (~bad).sum(axis=1) >= k
        first = np.argsort(bad, axis=1, kind="stable")[:, :k]  # survivors in draw order
        picked = np.take_along_axis(draws, first, axis=1)
        out[todo[enough]] = picked[enough]
        todo = todo[~enough]
        width *= 2
    return out


def _candidates(user, item, next_codes, n_items, num, seed, report):
    """Candidate lists per validation/test user; users without enough negatives are counted.

    With a catalogue smaller than ``num`` there are no lists at all (reported).
    """
    report["candidates_catalogue_too_small"] = int(num > n_items)
    seen = np.unique(user.astype(np.int64) * n_items + item)
    n_users = int(user.max()) + 1 if len(user) else 0
    n_seen = np.bincount(seen // n_items, minlength=n_users)  # distinct items per user
    out = {}
    short = 0
    for s, name in enumerate(("valid", "test")):
        rng = np.random.default_rng([seed, s])
        targets = np.flatnonzero(next_codes == CODE[name]) if num <= n_items else np.zeros(0, int)
        ok = n_items - n_seen[user[targets]] >= num - 1
        short += int((~ok).sum())
        targets = targets[ok]
        rows = np.empty((len(targets), num), dtype=np.int32)
        rows[:, 0] = item[targets]
        for lo in range(0, len(targets), 20000):  # bounded memory for the draw matrices
            part = user[targets[lo : lo + 20000]]
            rows[lo : lo + 20000, 1:] = _sample_negatives(rng, part, seen, n_items, num - 1)
        out[name] = (user[targets].astype(np.int32), rows)
    report["candidates_users_without_enough_negatives"] = short
    return out


def assign_splits(
    user: np.ndarray,
    item: np.ndarray,
    rated: np.ndarray,
    n_users: int,
    has_category: np.ndarray,
    cfg: DataConfig,
) -> Assignment:
    """Split codes for events sorted by (user, time) with dense sorted-id codes.

    Args:
        user, item: (events,) codes; users' codes follow sorted user ids, items' codes
            sorted item ids (so seeded sampling does not depend on input order).
        rated: (events,) bool, events that carry a rating.
        has_category: (items,) bool, items that carry a category label.
    """
    n_items = len(has_category)
    report: dict[str, int] = {}
    next_codes, too_short = _next_item(user)
    report["users_too_short_for_next_item"] = too_short
    review = _reviews(user, item, rated, next_codes, n_users, n_items, cfg, report)
    labelled = np.flatnonzero(has_category).tolist()
    report["items_without_categories"] = n_items - len(labelled)
    cat = _ratio_split(labelled, cfg.category_split, random.Random(cfg.split_seed + 1))
    category = np.zeros(n_items, dtype=np.int8)
    for name, members in cat.items():
        category[np.asarray(members, dtype=np.int64)] = CODE[name]
    candidates = _candidates(
        user, item, next_codes, n_items, cfg.num_candidates, cfg.split_seed, report
    )
    return Assignment(next_codes, review, category, candidates, report)


@dataclass
class Splits:
    """All task splits of one corpus, as the task families read them."""

    next_item: dict[str, list[SequenceExample]]
    reviews: dict[str, list[int]]  # indices into corpus.interactions
    category: dict[str, list[str]]  # item ids
    candidates: dict[str, dict[str, list[str]]]  # split -> user -> candidates (target first)
    report: dict[str, int] = field(default_factory=dict)  # what was moved or left out, counted

    def sizes(self) -> dict[str, dict[str, int]]:
        return {
            "next_item": {s: len(v) for s, v in self.next_item.items()},
            "reviews": {s: len(v) for s, v in self.reviews.items()},
            "category": {s: len(v) for s, v in self.category.items()},
            "candidates": {s: len(v) for s, v in self.candidates.items()},
        }

    @classmethod
    def from_codes(
        cls,
        corpus: Corpus,
        next_codes,
        review_codes,
        category: dict[str, str | None],
        candidates: dict[str, dict[str, list[str]]],
        max_history: int,
        report: dict | None = None,
    ) -> Splits:
        """The view of ``corpus`` given per-event split names (None: in no split)."""
        next_item: dict[str, list[SequenceExample]] = {s: [] for s in SPLITS}
        for user, idx in corpus.event_indices().items():
            seq = [corpus.interactions[n].item for n in idx]
            for t, n in enumerate(idx):
                if next_codes[n]:
                    history = tuple(seq[max(0, t - max_history) : t])
                    next_item[next_codes[n]].append(SequenceExample(user, history, seq[t], t))
        reviews = {s: [n for n, c in enumerate(review_codes) if c == s] for s in SPLITS}
        cats = {s: sorted(i for i, c in category.items() if c == s) for s in SPLITS}
        return cls(next_item, reviews, cats, candidates, dict(report or {}))


def make_splits(corpus: Corpus, cfg: DataConfig) -> Splits:
    """Every split of PROTOCOLS.md for an in-memory corpus (deterministic in the seeds).

    As in a prepared dataset, the catalogue is the items that have events.
    """
    users = sorted({e.user for e in corpus.interactions})
    items = sorted({e.item for e in corpus.interactions})  # the catalogue: items with events
    ucode = {u: n for n, u in enumerate(users)}
    icode = {i: n for n, i in enumerate(items)}
    evs = corpus.interactions  # sorted by (user, timestamp, input order)
    user = np.array([ucode[e.user] for e in evs], dtype=np.int32)
    item = np.array([icode[e.item] for e in evs], dtype=np.int32)
    rated = np.array([e.rating is not None for e in evs], dtype=bool)
    has_cat = np.array([bool(corpus.items[i].categories) for i in items], dtype=bool)
    a = assign_splits(user, item, rated, len(users), has_cat, cfg)
    names = (None, *SPLITS)
    candidates = {
        s: {
            users[u]: [items[c] for c in row]
            for u, row in zip(a.candidates[s][0].tolist(), a.candidates[s][1].tolist())
        }
        for s in ("valid", "test")
    }
    return Splits.from_codes(
        corpus,
        [names[c] for c in a.next_item.tolist()],
        [names[c] for c in a.review.tolist()],
        {i: names[c] for i, c in zip(items, a.category.tolist())},
        candidates,
        cfg.max_history,
        a.report,
    )
