"""Free-text prompts: which task family a prompt asks for, and which user and items it names.

Task detection is nearest-neighbour text similarity: a prompt is compared (TF-IDF over word
1-2-grams and character 3-5-grams, cosine) with every template of every family and with the
example ``queries`` of ``prompts/<family>.yaml``; a family scores its best match. The answer
is refused, with the scores, when even the best match is weak or when two families score
within ``margin`` of each other; the caller then names the task itself.

Mentions are found by id: a word that is a known user id after "user" (or any non-numeric
known user id), and known item ids. A purely numeric item id counts only after an item word
("item 17", "movies 3, 7 and 9"), because numbers are also ratings, counts and user ids.
"""

from __future__ import annotations

import re
from collections.abc import Container, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.sparse import hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from p5rec.prompts import load_queries

__all__ = ["Detection", "IntentError", "Mentions", "TaskDetector", "find_mentions"]

# Placeholder stand-ins when templates become detection exemplars: ids and texts vary per
# example, so only their role word is kept.
_STAND_INS = {
    "user": "user",
    "item": "item",
    "item_title": "",
    "history": "",
    "rated_history": "",
    "user_ratings": "",
    "item_ratings": "",
    "candidates": "",
    "review": "",
}
_WORD = re.compile(r"[^\s,;:!?()\[\]{}\"'`“”]+")
USER_WORDS = frozenset({"user", "customer", "member", "shopper", "reviewer", "person"})
ITEM_WORDS = frozenset({"item", "items", "product", "products", "movie", "movies", "film", "films"})
CONNECTORS = frozenset({"and", "or", "&"})


class IntentError(ValueError):
    """The prompt's task cannot be told (too weak or ambiguous a match); the message gives
    the best families and their scores and says how to name the task."""


@dataclass(frozen=True)
class Mentions:
    """The user and the items (in order of mention, distinct) a prompt names."""

    user: str | None
    items: tuple[str, ...]


def _words(text: str) -> list[str]:
    return [w for w in (m.strip(".#") for m in _WORD.findall(text)) if w]


def find_mentions(text: str, users: Container[str], items: Container[str]) -> Mentions:
    """The known user id and the known item ids that ``text`` names (see the module doc)."""
    words = _words(text)
    user: str | None = None
    found: list[str] = []
    in_list = False  # the last item-ish word was an item mention ("items 3, 7 and 9")
    for n, word in enumerate(words):
        before = words[n - 1].lower() if n else ""
        if (
            user is None
            and (before in USER_WORDS or (not word.isdigit() and word not in items))
            and word in users  # last: a look-up in the history store
        ):
            user, in_list = word, False
        elif word in items and (not word.isdigit() or before in ITEM_WORDS or in_list):
            if word not in found:
                found.append(word)
            in_list = True
        elif word.lower() not in CONNECTORS:
            in_list = False
    return Mentions(user, tuple(found))


def neutral_text(text: str, mentions: Mentions) -> str:
    """``text`` with the mentioned ids replaced by their role word, or dropped after one
    (ids carry no intent)."""

    def role(match: re.Match) -> str:
        word = match.group()
        bare = word.strip(".#")
        if bare and (bare == mentions.user or bare in mentions.items):
            before = text[: match.start()].split()[-1:]
            named = before and before[0].strip(",.#").lower() in USER_WORDS | ITEM_WORDS
            # "user 42" -> "user"; "would A2XY like B00Q" -> "would user like item"
            return "" if named else word.replace(bare, "user" if bare == mentions.user else "item")
        return word

    return _WORD.sub(role, text)


@dataclass(frozen=True)
class Detection:
    """The detected family, its score, and every family's score (best first)."""

    family: str
    score: float
    scores: dict[str, float]


class TaskDetector:
    """Nearest-exemplar task detection over ``families`` (see the module doc)."""

    def __init__(
        self,
        families: Sequence[str],
        min_score: float = 0.24,
        margin: float = 0.02,
        exemplars: dict[str, list[str]] | None = None,
    ) -> None:
        from p5rec.tasks import get_family

        if not families:
            raise ValueError("TaskDetector needs at least one task family")
        self.min_score, self.margin = min_score, margin
        if exemplars is None:
            exemplars = {}
            for name in families:
                fam = get_family(name)
                texts = [t.source.format(**_STAND_INS) for t in fam.templates]
                exemplars[name] = texts + load_queries(name)
        self.families = list(exemplars)
        self.owner = np.array([f for f in self.families for _ in exemplars[f]])
        texts = [t for f in self.families for t in exemplars[f]]
        self._vectorizers = [
            TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True),
            TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True),
        ]
        self._matrix = normalize(
            hstack([v.fit_transform(texts) for v in self._vectorizers]).tocsr()
        )

    def scores(self, text: str) -> dict[str, float]:
        """Each family's best cosine similarity to ``text``, best first."""
        vec = normalize(hstack([v.transform([text]) for v in self._vectorizers]).tocsr())
        sims = (self._matrix @ vec.T).toarray().ravel()
        best = {f: float(sims[self.owner == f].max()) for f in self.families}
        return dict(sorted(best.items(), key=lambda kv: -kv[1]))

    def detect(self, text: str) -> Detection:
        """The family ``text`` asks for; ``IntentError`` when the match is weak or ambiguous."""
        if not text.strip():
            raise IntentError("the prompt is empty; ask a question (or name the task)")
        scores = self.scores(text)
        ranked = list(scores.items())
        (family, best), runner_up = ranked[0], ranked[1] if len(ranked) > 1 else (None, 0.0)
        shown = ", ".join(f"{f} {s:.2f}" for f, s in ranked[:3])
        if best < self.min_score:
            raise IntentError(
                f"cannot tell which task the prompt asks for (similarity: {shown}); "
                'rephrase it or name the task (--task / "task")'
            )
        if runner_up[0] is not None and best - runner_up[1] < self.margin:
            raise IntentError(
                f"the prompt is ambiguous between {family} and {runner_up[0]} "
                f'(similarity: {shown}); name the task (--task / "task")'
            )
        return Detection(family, best, scores)
