"""The data model every stage reads: users, items with metadata, time-ordered interactions."""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Corpus", "CorpusError", "Interaction", "Item", "sentiment_of"]


def sentiment_of(rating: float) -> str:
    """The sentiment label PROTOCOLS.md derives from a star rating (1-2, 3, 4-5)."""
    if rating >= 4:
        return "positive"
    if rating <= 2:
        return "negative"
    return "neutral"


class CorpusError(ValueError):
    """A record of the corpus is invalid; the message names the record and the field."""


@dataclass(frozen=True, slots=True)
class Item:
    """One catalogue item. ``categories`` is a path or a label set, most general first."""

    id: str
    title: str = ""
    text: str = ""
    categories: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Interaction:
    """One user-item event; rating, review text and summary are optional."""

    user: str
    item: str
    timestamp: int
    rating: float | None = None
    review: str | None = None
    summary: str | None = None


@dataclass
class Corpus:
    """Users, items and interactions, with validation that names the offending record.

    Interactions are kept sorted by (user, timestamp) with a stable tie-break on input
    order, so ``sequences()`` is the time-ordered history of each user.
    """

    items: dict[str, Item]
    interactions: list[Interaction]
    rating_range: tuple[float, float] = (1.0, 5.0)
    name: str = "corpus"
    _sorted: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        if not self._sorted:
            order = sorted(
                range(len(self.interactions)),
                key=lambda i: (self.interactions[i].user, self.interactions[i].timestamp, i),
            )
            self.interactions = [self.interactions[i] for i in order]
            self._sorted = True

    @property
    def users(self) -> list[str]:
        """Users in first-seen order of the sorted interactions (i.e. sorted ids)."""
        return list(dict.fromkeys(e.user for e in self.interactions))

    def validate(self) -> None:
        """Raise ``CorpusError`` naming the first invalid record and field."""
        if not self.items:
            raise CorpusError(f"{self.name}: the item table is empty")
        if not self.interactions:
            raise CorpusError(f"{self.name}: there are no interactions")
        lo, hi = self.rating_range
        for key, item in self.items.items():
            if not item.id or item.id != key:
                raise CorpusError(f"item {key!r}: field 'id' is {item.id!r}, expected {key!r}")
            if not all(isinstance(c, str) and c for c in item.categories):
                raise CorpusError(
                    f"item {key!r}: field 'categories' has an empty or non-text entry"
                )
        for n, e in enumerate(self.interactions):
            where = f"interaction #{n} (user {e.user!r}, item {e.item!r})"
            if not e.user:
                raise CorpusError(f"{where}: field 'user' is empty")
            if e.item not in self.items:
                raise CorpusError(f"{where}: field 'item' names no item of the item table")
            if not isinstance(e.timestamp, int) or isinstance(e.timestamp, bool):
                raise CorpusError(f"{where}: field 'timestamp' must be an integer")
            if e.rating is not None and (
                not isinstance(e.rating, (int, float))
                or math.isnan(e.rating)
                or not lo <= e.rating <= hi
            ):
                raise CorpusError(f"{where}: field 'rating' is {e.rating!r}, expected {lo}..{hi}")
            for name in ("review", "summary"):
                value = getattr(e, name)
                if value is not None and not isinstance(value, str):
                    raise CorpusError(f"{where}: field {name!r} must be text or missing")

    def sequences(self) -> dict[str, list[str]]:
        """Each user's items in time order."""
        seqs: dict[str, list[str]] = defaultdict(list)
        for e in self.interactions:
            seqs[e.user].append(e.item)
        return dict(seqs)

    def event_indices(self) -> dict[str, list[int]]:
        """Each user's interaction indices (into ``interactions``) in time order."""
        idx: dict[str, list[int]] = defaultdict(list)
        for n, e in enumerate(self.interactions):
            idx[e.user].append(n)
        return dict(idx)

    def fingerprint(self) -> str:
        """Hash of the content, recorded in run directories and results."""
        h = hashlib.sha256()
        for item in sorted(self.items.values(), key=lambda i: i.id):
            h.update(json.dumps([item.id, item.title, item.text, item.categories]).encode())
        for e in self.interactions:
            h.update(
                json.dumps([e.user, e.item, e.timestamp, e.rating, e.review, e.summary]).encode()
            )
        return h.hexdigest()[:16]

    # --- storage: Parquet tables in a dataset directory -------------------------------

    def save(self, directory: str | Path) -> None:
        """Write ``interactions.parquet`` and ``items.parquet`` into ``directory``."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        cols = ("user", "item", "timestamp", "rating", "review", "summary")
        table = pa.table(
            {c: [getattr(e, c) for e in self.interactions] for c in cols},
            schema=pa.schema(
                [
                    ("user", pa.string()),
                    ("item", pa.string()),
                    ("timestamp", pa.int64()),
                    ("rating", pa.float64()),
                    ("review", pa.string()),
                    ("summary", pa.string()),
                ]
            ),
        )
        pq.write_table(table, directory / "interactions.parquet")
        items = list(self.items.values())
        pq.write_table(
            pa.table(
                {
                    "item": [i.id for i in items],
                    "title": [i.title for i in items],
                    "text": [i.text for i in items],
                    "categories": [list(i.categories) for i in items],
                }
            ),
            directory / "items.parquet",
        )

    @classmethod
    def load(cls, directory: str | Path, rating_range: tuple[float, float] = (1.0, 5.0)) -> Corpus:
        """Read a corpus written by ``save``; raises ``CorpusError`` if a table is missing."""
        import pyarrow.parquet as pq

        directory = Path(directory)
        for name in ("interactions.parquet", "items.parquet"):
            if not (directory / name).is_file():
                raise CorpusError(f"{directory}: missing {name} (is this a prepared dataset?)")
        it = pq.read_table(
            directory / "items.parquet", columns=["item", "title", "text", "categories"]
        ).to_pydict()
        items = {
            i: Item(i, t or "", x or "", tuple(c or ()))
            for i, t, x, c in zip(it["item"], it["title"], it["text"], it["categories"])
        }
        cols = ["user", "item", "timestamp", "rating", "review", "summary"]
        ev = pq.read_table(directory / "interactions.parquet", columns=cols).to_pydict()
        interactions = [
            Interaction(u, i, int(t), r, rv, s)
            for u, i, t, r, rv, s in zip(
                ev["user"], ev["item"], ev["timestamp"], ev["rating"], ev["review"], ev["summary"]
            )
        ]
        corpus = cls(items, interactions, rating_range=rating_range, name=str(directory))
        corpus.validate()
        return corpus
