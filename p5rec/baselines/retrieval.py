"""Retrieval baselines for explanation generation (predict a review's summary line)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

__all__ = ["NearestReview"]

NEAREST, CENTRAL, GLOBAL = "nearest", "central", "global"


class NearestReview:
    """The summary of the nearest training review of the same item.

    Built from training reviews ``(user, item, review_text, summary)``. For a test pair
    ``(user, item)`` the prediction is chosen by the first rule that applies:

    1. ``"nearest"``: the item has training reviews with a summary and the user has a
       profile. The user's profile is the concatenation of the texts of all the user's
       training reviews (any item), as one TF-IDF vector; the vectorizer (word unigrams by
       default, sublinear tf, L2-normalised rows) is fitted on the training review texts.
       Each of the item's training reviews that has a summary is scored by the cosine
       between its review text's TF-IDF vector and the profile; the summary of the best
       one is returned (ties: the earliest in training order).
    2. ``"central"``: the item has training reviews with a summary but the user has no
       training review, or their profile vector is zero (no word of the vocabulary). The
       item's most central summary: with a second TF-IDF vectorizer fitted on the training
       summaries, the summary whose mean cosine to the item's *other* training summaries is
       highest (ties: the earliest; a single summary is returned as is).
    3. ``"global"``: the item has no training review with a summary. The most frequent
       training summary (ties broken by the summary text, as :class:`Majority` does).

    Reviews with an empty or missing summary are never returned, but their texts still
    count in their user's profile; a missing review text counts as empty.
    """

    name = "nearest_review"

    def __init__(
        self,
        train: Sequence[tuple[str, str, str | None, str | None]],
        *,
        ngram_range: tuple[int, int] = (1, 1),
        sublinear_tf: bool = True,
    ) -> None:
        rows = list(train)
        for n, row in enumerate(rows):
            if len(row) != 4:
                raise ValueError(
                    f"NearestReview: train[{n}] must be (user, item, review_text, summary), "
                    f"got {row!r}"
                )
        candidates = [n for n, r in enumerate(rows) if r[3]]
        if not candidates:
            raise ValueError("NearestReview: no training review with a non-empty summary")
        texts = [r[2] or "" for r in rows]
        self.summaries = [r[3] or "" for r in rows]
        counts = Counter(self.summaries[n] for n in candidates)
        self.global_summary = min(counts, key=lambda s: (-counts[s], s))

        self.review_vectorizer = TfidfVectorizer(ngram_range=ngram_range, sublinear_tf=sublinear_tf)
        try:
            self.review_vectors = self.review_vectorizer.fit_transform(texts)
        except ValueError:  # no word in any review text: only the fallbacks remain usable
            self.review_vectorizer = None
            self.review_vectors = None
        self.summary_vectorizer = TfidfVectorizer(
            ngram_range=ngram_range, sublinear_tf=sublinear_tf
        )
        try:
            self.summary_vectorizer.fit([self.summaries[n] for n in candidates])
        except ValueError:
            self.summary_vectorizer = None

        self.user_texts: dict[str, list[str]] = defaultdict(list)
        for r, text in zip(rows, texts):
            self.user_texts[r[0]].append(text)
        self.item_reviews: dict[str, list[int]] = defaultdict(list)  # item -> candidate rows
        for n in candidates:
            self.item_reviews[rows[n][1]].append(n)
        self._profiles: dict[str, object] = {}
        self._central: dict[str, str] = {}

    def _profile(self, user: str):
        """The user's profile vector (1, vocabulary), or None if there is none."""
        if user not in self._profiles:
            vec = None
            if self.review_vectorizer is not None and user in self.user_texts:
                vec = self.review_vectorizer.transform([" ".join(self.user_texts[user])])
                if vec.nnz == 0:
                    vec = None
            self._profiles[user] = vec
        return self._profiles[user]

    def central_summary(self, item: str) -> str:
        """The item's most central training summary (rule 2); the item must have one."""
        if item not in self._central:
            rows = self.item_reviews[item]
            texts = [self.summaries[n] for n in rows]
            if len(rows) == 1 or self.summary_vectorizer is None:
                self._central[item] = texts[0]
            else:
                vecs = self.summary_vectorizer.transform(texts)
                sim = (vecs @ vecs.T).toarray()
                mean_other = (sim.sum(1) - np.diag(sim)) / (len(rows) - 1)
                self._central[item] = texts[int(np.argmax(mean_other))]
        return self._central[item]

    def predict_with_rules(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        """``(summary, rule)`` per pair; rule is ``"nearest"``, ``"central"`` or
        ``"global"`` (the class docstring)."""
        out = []
        for user, item in pairs:
            rows = self.item_reviews.get(item)
            if not rows:
                out.append((self.global_summary, GLOBAL))
                continue
            profile = self._profile(user)
            if profile is None:
                out.append((self.central_summary(item), CENTRAL))
                continue
            sims = (self.review_vectors[rows] @ profile.T).toarray().ravel()
            out.append((self.summaries[rows[int(np.argmax(sims))]], NEAREST))
        return out

    def predict(self, pairs: Sequence[tuple[str, str]]) -> list[str]:
        """The predicted summary of each ``(user, item)`` pair."""
        return [summary for summary, _ in self.predict_with_rules(pairs)]
