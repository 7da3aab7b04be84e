"""What a task family is: how it builds examples, how it is scored, and its baseline.

Training and evaluation loops only talk to this interface; they never branch on a
family's name. A family registers itself in ``FAMILIES`` by name (the config chooses).
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from p5rec.config import FAMILIES as FAMILY_NAMES
from p5rec.data.corpus import Corpus
from p5rec.data.splits import Splits
from p5rec.indexing import ItemIndex
from p5rec.prompts import PromptError, Template, check_source, load_templates

if TYPE_CHECKING:
    from p5rec.generation import Engine

__all__ = [
    "Example",
    "FAMILIES",
    "GENERIC_USER",
    "TaskContext",
    "TaskFamily",
    "count_token",
    "family_token",
    "mean_token",
    "register",
    "user_token",
]

GENERIC_USER = "the user"  # the {user} placeholder of an anonymous prompt


def user_token(user: str) -> str:
    """The token of a user of the training data (``tasks.user_text: token``)."""
    if not user or any(c.isspace() or c in "<>" for c in user):
        raise ValueError(
            f"user id {user!r} cannot be a token (tasks.user_text: token needs ids without "
            "whitespace or angle brackets; use id or generic)"
        )
    return f"<user_{user}>"


def family_token(family: str) -> str:
    """The token that starts every prompt of ``family`` (``tasks.family_tokens``)."""
    return f"<task_{family}>"


# bucket lower bounds of the rating-count tokens (``tasks.rating_text: token``)
COUNT_BUCKETS = (1, 2, 3, 4, 5, 7, 10, 15, 25, 50, 100, 200)


def mean_token(mean: float) -> str:
    """The token of a mean rating, to one decimal (``tasks.rating_text: token``): ``<avg_4.2>``."""
    return f"<avg_{mean:.1f}>"


def count_token(count: int) -> str:
    """The token of a rating count's bucket (``COUNT_BUCKETS``; ``tasks.rating_text: token``):
    ``<ratings_3>``, ``<ratings_5-6>``, ..., ``<ratings_200+>``."""
    if count < 1:
        raise ValueError(f"a rating count token needs a count >= 1, got {count}")
    i = bisect_right(COUNT_BUCKETS, count) - 1
    low = COUNT_BUCKETS[i]
    if i + 1 == len(COUNT_BUCKETS):
        return f"<ratings_{low}+>"
    high = COUNT_BUCKETS[i + 1] - 1
    return f"<ratings_{low}>" if low == high else f"<ratings_{low}-{high}>"


@dataclass(frozen=True)
class Example:
    """One example: placeholder values, the target text, and what scoring needs."""

    family: str
    fields: dict[str, str]
    target: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskContext:
    """Everything families read: the corpus, its splits and the item index."""

    corpus: Corpus
    splits: Splits
    index: ItemIndex
    max_history: int = 20
    num_candidates: int = 100
    manifest: dict[str, Any] = field(default_factory=dict)  # of the processed dataset
    max_review_words: int = 0  # longer reviews keep their head and tail (0: no limit)
    balance_labels: bool = False  # balanced families train on label-balanced samples
    user_mode: str = "id"  # how {user} renders: tasks.user_text (id, generic or token)
    rating_mode: str = "digits"  # how rating means and counts render: tasks.rating_text
    family_tokens: bool = False  # each prompt starts with its family's token
    rated_mode: str = "recent"  # which ratings {rated_history} shows: tasks.rated_history

    def user_text(self, user: str) -> str:
        """The ``{user}`` placeholder's value for ``user``: the dataset's id, "the user", or
        the user's own token (a user without one, unknown to the training data, is then
        "the user")."""
        if self.user_mode == "token":
            return self.user_tokens.get(user, GENERIC_USER)
        return GENERIC_USER if self.user_mode == "generic" else user

    @cached_property
    def user_tokens(self) -> dict[str, str]:
        """Each user of the training data (a training next-item history or a training
        review) and their token (``tasks.user_text: token``; empty in the other modes)."""
        if self.user_mode != "token":
            return {}
        users = {u for u, items in self.train_interacted.items() if items}
        users.update(self.corpus.interactions[n].user for n in self.train_reviews)
        return {u: user_token(u) for u in sorted(users)}

    @cached_property
    def number_tokens(self) -> list[str]:
        """The tokens of mean ratings (every tenth of the corpus's rating range) and of
        rating-count buckets (``tasks.rating_text: token``; empty with ``digits``)."""
        if self.rating_mode != "token":
            return []
        lo, hi = self.corpus.rating_range
        tenths = range(math.floor(lo * 10), math.ceil(hi * 10) + 1)
        return [mean_token(k / 10) for k in tenths] + [count_token(c) for c in COUNT_BUCKETS]

    @cached_property
    def prompt_tokens(self) -> list[str]:
        """The family tokens the tokenizer adds (``tasks.family_tokens``; empty when off):
        one per family the config knows, so a run can be asked any of them."""
        return [family_token(name) for name in FAMILY_NAMES] if self.family_tokens else []

    @property
    def added_tokens(self) -> list[str]:
        """The tokens prompts carry that the tokenizer adds besides the item tokens: user,
        number and family tokens (``tasks.user_text``, ``tasks.rating_text``,
        ``tasks.family_tokens``; none in their default settings)."""
        return [*self.user_tokens.values(), *self.number_tokens, *self.prompt_tokens]

    def prompt(self, family: str, source: str) -> str:
        """The text the model reads for a rendered ``source`` of ``family``: the source,
        after the family's token when ``tasks.family_tokens`` is on."""
        return f"{family_token(family)} {source}" if self.family_tokens else source

    def item_text(self, item: str) -> str:
        return self.index.text(item)

    def title(self, item: str) -> str:
        it = self.corpus.items[item]
        return it.title or it.text or item

    def history_text(self, items: Sequence[str]) -> str:
        return " ".join(self.index.text(i) for i in items[-self.max_history :])

    @cached_property
    def sequences(self) -> dict[str, list[str]]:
        return self.corpus.sequences()

    @cached_property
    def interacted(self) -> dict[str, set[str]]:
        """Every item of each user (what evaluation negatives must avoid)."""
        return {u: set(s) for u, s in self.sequences.items()}

    @cached_property
    def train_interacted(self) -> dict[str, set[str]]:
        """Each user's items of the training portion s1..s(n-2): what training may know."""
        return {u: set(s[:-2]) for u, s in self.sequences.items()}

    def event_fields(self, n: int) -> dict[str, str]:
        """Placeholder values of interaction ``n`` (the review families pick from these)."""
        e = self.corpus.interactions[n]
        return {
            "user": self.user_text(e.user),
            "item": self.item_text(e.item),
            "item_title": self.title(e.item),
            "review": self.review_text(e.review),
            "history": self.history_text(self.previous_items[n]) or "nothing yet",
            "rated_history": self.rated_history_text(e.user, e.item, n) or "nothing yet",
            "user_ratings": self.rating_summary("user", e.user, n),
            "item_ratings": self.rating_summary("item", e.item, n),
        }

    def review_text(self, review: str | None) -> str:
        """A review as prompts show it: at most ``max_review_words`` words, the first and
        the last half of them joined by " ... " when it is longer. A prompt cut at the
        model's source length would lose what follows the review (in several templates,
        the question itself); the head and the tail keep the opening and the verdict."""
        words = (review or "").split()
        limit = self.max_review_words
        if not limit or len(words) <= limit:
            return review or ""
        head = (limit + 1) // 2
        return " ".join([*words[:head], "...", *words[len(words) - (limit - head) :]])

    def rated_events(self, user: str, item: str, n: int | None = None) -> list[int]:
        """The user's training-split ratings that ``{rated_history}`` shows beside ``item``
        (``tasks.rated_history``): ``recent``, those before interaction ``n`` (all of them
        for a request, ``n`` None); ``similar``, those of the items most alike ``item``
        (``similar_rated``)."""
        if self.rated_mode in ("similar", "neighbours"):
            return self.similar_rated(user, item, n)
        return self.previous_rated[n] if n is not None else self.train_rated.get(user, [])

    @cached_property
    def co_raters(self) -> dict[str, Any]:
        """What ``similar_rated`` reads: ``co``, how many users have training-split ratings
        of both of two items (a sparse item by item matrix, rows in catalogue order), its
        diagonal ``raters``, each item's ``row``, and per user their training-split
        ratings (``events``, latest first) and those ratings' item rows (``cols``)."""
        import numpy as np
        from scipy import sparse

        rows = {item: k for k, item in enumerate(self.catalogue)}
        events = {u: np.array(idx[::-1], dtype=np.int64) for u, idx in self.train_rated.items()}
        cols = {
            u: np.array([rows[self.corpus.interactions[n].item] for n in idx], dtype=np.int64)
            for u, idx in events.items()
        }
        user_rows = np.repeat(np.arange(len(cols)), [len(c) for c in cols.values()])
        item_rows = np.concatenate([np.zeros(0, dtype=np.int64), *cols.values()])
        shape = (max(len(cols), 1), len(rows))
        # a user who rated an item twice counts once
        rated = sparse.csr_matrix((np.ones(len(item_rows)), (user_rows, item_rows)), shape) > 0
        rated = rated.astype(np.float64)
        co = (rated.T @ rated).tocsr()
        return {
            "co": co,
            "raters": co.diagonal(),
            "row": rows,
            "events": events,
            "cols": cols,
            "rated": rated.tocsr(),  # user rows (in ``events`` order) by item rows
            "user_row": {u: r for r, u in enumerate(cols)},
            "sizes": np.asarray(rated.sum(axis=1)).ravel(),  # items per user row
        }

    @cached_property
    def item_raters(self) -> dict[int, tuple[Any, Any]]:
        """What ``neighbour_ratings`` reads: per item row (``co_raters``' ``row``), its
        training-split ratings as two arrays, the raters' user rows and the ratings, latest
        first."""
        import numpy as np

        index = self.co_raters
        per_item: dict[int, list[tuple[int, float, int]]] = {}
        for user, events in index["events"].items():
            u = index["user_row"][user]
            for n, k in zip(events.tolist(), index["cols"][user].tolist()):
                per_item.setdefault(k, []).append((u, self.corpus.interactions[n].rating, n))
        out = {}
        for k, rows in per_item.items():
            rows.sort(key=lambda r: -r[2])
            users, ratings, _ = zip(*rows)
            out[k] = (np.array(users), np.array(ratings, dtype=np.float64))
        return out

    def neighbour_ratings(self, user: str, item: str, n: int | None = None) -> list[float]:
        """The training-split ratings of ``item`` by other users, of the ``max_history``
        users most alike ``user``, most alike first (ties latest first). Alike is the cosine
        of the two users' sets of training-split rated items; when ``n`` is the user's
        training rating of ``item`` it is left out of their set, so a training example
        ranks the raters as a held-out rating of the same pair would. The user's own
        ratings are never among them."""
        import numpy as np

        index = self.co_raters
        k = index["row"].get(item)
        if k is None or k not in self.item_raters:
            return []
        users, ratings = self.item_raters[k]
        u = index["user_row"].get(user)
        keep = users != u
        users, ratings = users[keep], ratings[keep]
        if not len(users):
            return []
        if u is not None:
            cols = index["cols"][user][index["events"][user] != n]
            own = int(n in self.train_reviews and not (cols == k).any())
            rated = index["rated"]
            mine = np.zeros(rated.shape[1])
            mine[rated.indices[rated.indptr[u] : rated.indptr[u + 1]]] = 1.0
            shared = rated[users] @ mine - own
            sims = shared / np.sqrt(max(mine.sum() - own, 1) * index["sizes"][users])
            ratings = ratings[np.argsort(-sims, kind="stable")]
        return ratings[: self.max_history].tolist()

    def rated_history_text(self, user: str, item: str, n: int | None = None) -> str:
        """What ``{rated_history}`` shows (``tasks.rated_history``): the user's ratings
        (``rated_events``), and with ``neighbours`` then the ratings ``item`` got from the
        users most alike them ("<item> 4 <item> 5 ; like users: 4 5 3")."""
        text = self.rated_text(self.rated_events(user, item, n))
        if self.rated_mode != "neighbours":
            return text
        others = self.neighbour_ratings(user, item, n)
        if not others:
            return text
        return f"{text} ; like users: {' '.join(f'{r:g}' for r in others)}".strip()

    def similar_rated(self, user: str, item: str, n: int | None = None) -> list[int]:
        """The user's training-split ratings other than interaction ``n``, of the
        ``max_history`` items most alike ``item``, most alike first (ties, and every one
        for an item no one else rated, latest first). Alike is the cosine of the two
        items' sets of training-split raters, co-raters / sqrt(raters of one * raters of
        the other). When ``n`` is a training rating its user is left out of ``item``'s
        raters, so a training example ranks the user's items as a held-out rating of the
        same pair would."""
        import numpy as np

        index = self.co_raters
        events, cols = index["events"].get(user), index["cols"].get(user)
        if events is None:
            return []
        keep = events != n
        events, cols = events[keep], cols[keep]
        k = index["row"].get(item)
        if k is not None and len(cols):
            # the user is one of the item's raters through ``n`` alone: leave them out
            own = int(n in self.train_reviews and not (cols == k).any())
            co = index["co"]
            span = slice(co.indptr[k], co.indptr[k + 1])  # item k's row of the CSR arrays
            row = np.zeros(co.shape[1])  # dense: scipy's own row slicing is slow per query
            row[co.indices[span]] = co.data[span]
            shared = row[cols] - own
            raters = index["raters"]
            sims = shared / np.sqrt(max(raters[k] - own, 1) * raters[cols])
            events = events[np.argsort(-sims, kind="stable")]
        return events[: self.max_history].tolist()

    def rated_text(self, events: Sequence[int]) -> str:
        """Interactions as their item and the rating given ("<item> 4 <item> 5"), the last
        ``max_history``."""
        return " ".join(
            f"{self.item_text(self.corpus.interactions[n].item)} "
            f"{self.corpus.interactions[n].rating:g}"
            for n in events[-self.max_history :]
        )

    @cached_property
    def rating_totals(self) -> dict[str, dict[str, tuple[float, int]]]:
        """Sum and count of the training-split ratings per ``"user"`` and per ``"item"``."""
        out: dict[str, dict[str, tuple[float, int]]] = {"user": {}, "item": {}}
        for n in self.train_reviews:
            e = self.corpus.interactions[n]
            for kind, key in (("user", e.user), ("item", e.item)):
                total, count = out[kind].get(key, (0.0, 0))
                out[kind][key] = (total + e.rating, count + 1)
        return out

    def rating_summary(self, kind: str, key: str, n: int | None = None) -> str:
        """The mean and count of the training-split ratings of a user or an item (``kind``)
        other than interaction ``n``'s ("average 4.2 of 12 ratings", or with ``tasks.
        rating_text: token`` "average <avg_4.2> of <ratings_10-14> ratings"): a training
        example never sees its own rating."""
        total, count = self.rating_totals[kind].get(key, (0.0, 0))
        if n is not None and n in self.train_reviews:
            total, count = total - self.corpus.interactions[n].rating, count - 1
        if not count:
            return "no ratings yet"
        mean = total / count
        if self.rating_mode == "token":
            return f"average {mean_token(mean)} of {count_token(count)} ratings"
        return f"average {mean:.1f} of {count} ratings"

    @cached_property
    def train_reviews(self) -> frozenset[int]:
        """The interactions of the training review split: the only ratings a prompt may
        show, so no held-out rating reaches a model."""
        return frozenset(self.splits.reviews["train"])

    @cached_property
    def train_rated(self) -> dict[str, list[int]]:
        """Each user's interactions of the training review split (time order)."""
        train = self.train_reviews
        return {
            user: [n for n in idx if n in train]
            for user, idx in self.corpus.event_indices().items()
        }

    @cached_property
    def previous_rated(self) -> dict[int, list[int]]:
        """For each interaction index: the user's training-split interactions before it."""
        out: dict[int, list[int]] = {}
        train = self.train_reviews
        for idx in self.corpus.event_indices().values():
            rated: list[int] = []
            for n in idx:
                out[n] = rated[-self.max_history :]
                if n in train:
                    rated.append(n)
        return out

    def interacted_before(self, example: Example) -> set[str]:
        """The items a next-item example's user interacted with before its target."""
        return set(self.sequences[example.meta["user"]][: example.meta["position"]])

    @cached_property
    def catalogue(self) -> list[str]:
        return sorted(self.corpus.items)

    @cached_property
    def previous_items(self) -> dict[int, list[str]]:
        """For each interaction index: the user's items before it (time order)."""
        out: dict[int, list[str]] = {}
        for idx in self.corpus.event_indices().values():
            items: list[str] = []
            for n in idx:
                out[n] = items[-self.max_history :]
                items = [*items, self.corpus.interactions[n].item]
        return out


class TaskFamily:
    """Base class of a task family. Subclasses set the class attributes and methods."""

    name: ClassVar[str]
    required: ClassVar[tuple[str, ...]]
    optional: ClassVar[tuple[str, ...]] = ()
    item_target: ClassVar[bool] = False  # target is an item code, decoded under the trie
    # the source's only item codes are a time-ordered history, so a decoder-only model may
    # learn to predict each of them from the ones before (``train.history_loss``)
    history_source: ClassVar[bool] = False
    # a closed-set label family decided class-balanced by default (answers divided by the
    # training label frequencies; see ``tasks.labels.prior_weight``)
    balanced: ClassVar[bool] = False

    @cached_property
    def templates(self) -> list[Template]:
        return load_templates(self.name, self.required, self.optional, self.item_target)

    def seen_templates(self) -> list[Template]:
        return [t for t in self.templates if t.split == "seen"]

    def eval_template(self, split: str = "seen") -> Template:
        """The template evaluation uses: the first of the given split."""
        return next(t for t in self.templates if t.split == split)

    def template_of(self, options: dict[str, Any]) -> Template:
        """The template an evaluation's ``options`` name: ``options["template"]`` when
        given (``eval.templates``), else the first of ``options["template_split"]``."""
        return options.get("template") or self.eval_template(options["template_split"])

    def template_named(self, spec: str) -> Template:
        """One of the family's templates by id, or else a template whose source text is
        ``spec`` (placeholders checked as in a template file; the target of the family's
        first seen template), with the id ``custom``."""
        for template in self.templates:
            if template.id == spec:
                return template
        if "{" not in spec:
            ids = [t.id for t in self.templates]
            raise PromptError(
                f"{self.name}: {spec!r} is neither a template id ({', '.join(ids)}) nor a "
                f"source text with placeholders such as {{{self.required[0]}}}"
            )
        check_source(spec, self.required, self.optional, f"{self.name} template {spec!r}")
        return Template("custom", self.name, "custom", spec, self.eval_template("seen").target)

    def numeric_targets(self, ctx: TaskContext) -> dict[str, float] | None:
        """A family whose targets are numbers: each target text and its value (the model's
        expected value over them is then a prediction; ``train.expectation_loss``)."""
        return None

    def examples(self, ctx: TaskContext, split: str, rng: random.Random) -> list[Example]:
        """Examples of ``split`` ("train", "valid" or "test"); ``rng`` may vary per epoch."""
        raise NotImplementedError

    def predict(
        self,
        engine: Engine,
        ctx: TaskContext,
        examples: list[Example],
        sources: list[str],
        options: dict[str, Any],
    ) -> list[Any]:
        """One prediction per rendered example (plain picklable values, so processes can
        gather them: a ranked item list, a label, a text, a rating)."""
        raise NotImplementedError

    def score(
        self,
        ctx: TaskContext,
        examples: list[Example],
        predictions: list[Any],
        options: dict[str, Any],
    ) -> dict[str, float]:
        """The family's metrics of ``predictions`` (as ``predict`` returns them)."""
        raise NotImplementedError

    def calibrate(
        self,
        engine: Engine,
        ctx: TaskContext,
        predictions: list[Any],
        options: dict[str, Any],
    ) -> tuple[list[Any], dict[str, float] | None]:
        """``predictions`` (of a split other than validation) recalibrated on the
        validation split when ``options`` ask for it, and what was fitted; by default
        unchanged, and None."""
        return predictions, None

    def baseline(
        self, ctx: TaskContext, examples: list[Example], options: dict[str, Any]
    ) -> tuple[str, dict[str, float]]:
        """Name and metrics of the family's simple in-run baseline on the same examples."""
        raise NotImplementedError


FAMILIES: dict[str, TaskFamily] = {}


def register(cls: type[TaskFamily]) -> type[TaskFamily]:
    """Class decorator: add a family to ``FAMILIES``; refuses duplicate names."""
    if cls.name in FAMILIES:
        raise ValueError(f"task family {cls.name!r} is already registered")
    FAMILIES[cls.name] = cls()
    return cls


def get_family(name: str) -> TaskFamily:
    if name not in FAMILIES:
        raise ValueError(f"unknown task family {name!r}; known: {sorted(FAMILIES)}")
    return FAMILIES[name]
