"""TF-IDF + logistic regression text classifier (sentiment from reviews, category from
item titles/texts), single-label or multi-label.

Features: word unigrams and bigrams, sublinear tf (``1 + log tf``), L2-normalised rows,
fitted on the training texts only.

* Single-label mode: one label string per text; one multinomial logistic regression.
  With a single training class that class is always predicted.
* Multi-label mode (``multilabel=True``): a collection of label strings per text (e.g.
  a movie's genres); one binary logistic regression per training label (one-vs-rest).
  A label is predicted when its probability reaches that label's threshold (0.5, or tuned
  per label on validation data); when no label does, the single label with the largest
  ``probability - threshold`` is predicted, so every text gets at least one label. A
  label present on every training text is always predicted.

``class_weight="balanced"`` (the default) reweights classes inversely to their frequency,
which suits macro-F1. ``C`` (inverse regularisation) may be a list: with validation data
the value with the best validation macro-F1 is kept (first on ties).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from p5rec.metrics import macro_f1, macro_f1_multilabel

__all__ = ["TextClassifier"]

_THRESHOLDS = np.round(np.arange(0.05, 0.96, 0.05), 2)


def _texts(texts: Sequence[str], what: str) -> list[str]:
    if isinstance(texts, str):
        raise ValueError(f"TextClassifier: {what} must be a sequence of strings, not a str")
    out = list(texts)
    for n, t in enumerate(out):
        if not isinstance(t, str):
            raise ValueError(f"TextClassifier: {what}[{n}] must be a str, got {type(t).__name__}")
    return out


class TextClassifier:
    """TF-IDF (word 1-2 grams, sublinear tf) + logistic regression.

    Args:
        multilabel: labels are collections of strings (one-vs-rest with thresholds)
            rather than one string per text.
        C: inverse L2 strength, or a list of values chosen on validation data.
        class_weight: ``"balanced"`` or ``None``.
        ngram_range, min_df, max_features, sublinear_tf: the TF-IDF settings.
        tune_thresholds: in multi-label mode with validation data, pick each label's
            threshold (0.05..0.95) for the best F1 of that label on validation data
            (ties: closest to 0.5); otherwise every threshold is 0.5.
        max_iter: solver iterations.
        seed: ``random_state`` of the solver.

    Example::

        clf = TextClassifier(C=[0.5, 1, 4]).fit(texts, labels, valid=(v_texts, v_labels))
        clf.predict(["great strings, sound warm"])  # ["positive"]

    Attributes after :meth:`fit`: ``classes_`` (sorted labels), ``C_`` (the value used),
    ``thresholds_`` (multi-label: label -> threshold) and ``valid_scores_`` (C -> validation
    macro-F1, when validation data was given).
    """

    name = "tfidf_logreg"

    def __init__(
        self,
        *,
        multilabel: bool = False,
        C: float | Sequence[float] = 1.0,
        class_weight: str | None = "balanced",
        ngram_range: tuple[int, int] = (1, 2),
        min_df: int = 1,
        max_features: int | None = None,
        sublinear_tf: bool = True,
        tune_thresholds: bool = True,
        max_iter: int = 2000,
        seed: int = 0,
    ) -> None:
        grid = [C] if isinstance(C, (int, float)) else list(C)
        if not grid or any(not isinstance(c, (int, float)) or c <= 0 for c in grid):
            raise ValueError(f"TextClassifier: C must be a positive number or list, got {C!r}")
        if class_weight not in (None, "balanced"):
            raise ValueError(
                f"TextClassifier: class_weight must be 'balanced' or None, got {class_weight!r}"
            )
        self.multilabel = multilabel
        self.C_grid = [float(c) for c in grid]
        self.class_weight = class_weight
        self.tune_thresholds = tune_thresholds
        self.max_iter = max_iter
        self.seed = seed
        self.vectorizer = TfidfVectorizer(
            ngram_range=ngram_range,
            sublinear_tf=sublinear_tf,
            min_df=min_df,
            max_features=max_features,
        )
        self.classes_: list[str] = []
        self.C_: float | None = None
        self.thresholds_: dict[str, float] = {}
        self.valid_scores_: dict[float, float] = {}
        self._models: list = []  # single: [model or label]; multi: per class, model or bool
        self._fitted = False

    # ------------------------------------------------------------------ labels

    def _labels(self, labels: Sequence, n: int, what: str) -> list:
        labels = list(labels)
        if len(labels) != n:
            raise ValueError(f"TextClassifier: {what} has {len(labels)} labels for {n} texts")
        for k, lab in enumerate(labels):
            if self.multilabel:
                if isinstance(lab, str) or not isinstance(lab, Collection):
                    raise ValueError(
                        f"TextClassifier: multi-label mode needs a collection of labels per "
                        f"text; {what}[{k}] is {lab!r}"
                    )
                if any(not isinstance(x, str) for x in lab):
                    raise ValueError(f"TextClassifier: {what}[{k}] must hold label strings")
            elif not isinstance(lab, str):
                raise ValueError(
                    f"TextClassifier: single-label mode needs one label string per text; "
                    f"{what}[{k}] is {lab!r} (use multilabel=True for label sets)"
                )
        return [set(lab) for lab in labels] if self.multilabel else labels

    # ------------------------------------------------------------------ fit

    def _logreg(self, c: float) -> LogisticRegression:
        return LogisticRegression(
            C=c, class_weight=self.class_weight, max_iter=self.max_iter, random_state=self.seed
        )

    def _fit_models(self, x: sparse.csr_matrix, labels: list, c: float) -> list:
        if not self.multilabel:
            if len(self.classes_) == 1:
                return [self.classes_[0]]
            return [self._logreg(c).fit(x, labels)]
        models = []
        for cls in self.classes_:
            y = np.fromiter((cls in lab for lab in labels), dtype=bool, count=len(labels))
            models.append(True if y.all() else self._logreg(c).fit(x, y))
        return models

    def _probabilities(self, x: sparse.csr_matrix, models: list) -> np.ndarray:
        """Multi-label: (texts, classes) probability of each class."""
        cols = [np.ones(x.shape[0]) if m is True else m.predict_proba(x)[:, 1] for m in models]
        return np.stack(cols, axis=1) if cols else np.zeros((x.shape[0], 0))

    def _decide(self, probs: np.ndarray, thresholds: np.ndarray) -> list[set[str]]:
        above = probs >= thresholds
        best = np.argmax(probs - thresholds, axis=1)
        out = []
        for row, b in zip(above, best):
            chosen = np.flatnonzero(row)
            out.append({self.classes_[j] for j in chosen} if len(chosen) else {self.classes_[b]})
        return out

    def _tuned_thresholds(self, probs: np.ndarray, true: list[set[str]]) -> np.ndarray:
        thresholds = np.full(len(self.classes_), 0.5)
        for j, cls in enumerate(self.classes_):
            y = np.fromiter((cls in t for t in true), dtype=bool, count=len(true))
            if not y.any():
                continue
            best, best_f1 = 0.5, -1.0
            for th in sorted(_THRESHOLDS, key=lambda t: abs(t - 0.5)):
                p = probs[:, j] >= th
                tp = int((p & y).sum())
                f1 = 2 * tp / (p.sum() + y.sum())
                if f1 > best_f1 + 1e-12:
                    best, best_f1 = float(th), f1
            thresholds[j] = best
        return thresholds

    def fit(
        self,
        texts: Sequence[str],
        labels: Sequence,
        valid: tuple[Sequence[str], Sequence] | None = None,
    ) -> TextClassifier:
        """Fit on ``texts`` and their ``labels`` (strings, or label collections in
        multi-label mode). ``valid`` = ``(texts, labels)`` chooses ``C`` among the grid and,
        in multi-label mode, the per-label thresholds.

        Raises:
            ValueError: on empty input, mismatched lengths, labels of the wrong kind, a
                ``C`` grid without validation data, or texts without any word.
        """
        texts = _texts(texts, "texts")
        if not texts:
            raise ValueError("TextClassifier.fit: texts is empty")
        labels = self._labels(labels, len(texts), "labels")
        if len(self.C_grid) > 1 and valid is None:
            raise ValueError(
                f"TextClassifier.fit: several C values {self.C_grid} need validation data "
                "(valid=(texts, labels)) to choose from"
            )
        self.classes_ = sorted(set().union(*labels) if self.multilabel else set(labels))
        if not self.classes_:
            raise ValueError("TextClassifier.fit: no training text has a label")
        try:
            x = self.vectorizer.fit_transform(texts)
        except ValueError as err:  # e.g. every text empty or only stop characters
            raise ValueError(f"TextClassifier.fit: no usable words in the texts ({err})") from err
        if valid is not None:
            v_texts = _texts(valid[0], "valid texts")
            if not v_texts:
                raise ValueError("TextClassifier.fit: valid texts is empty")
            v_labels = self._labels(valid[1], len(v_texts), "valid labels")
            vx = self.vectorizer.transform(v_texts)
        best = None
        self.valid_scores_ = {}
        for c in self.C_grid:
            models = self._fit_models(x, labels, c)
            thresholds = np.full(len(self.classes_), 0.5)
            if valid is None:
                best = (c, models, thresholds)
                break
            if self.multilabel:
                probs = self._probabilities(vx, models)
                if self.tune_thresholds:
                    thresholds = self._tuned_thresholds(probs, v_labels)
                pred = self._decide(probs, thresholds)
                score = macro_f1_multilabel(pred, v_labels, labels=sorted(set().union(*v_labels)))
            else:
                pred = self._predict_single(vx, models)
                score = macro_f1(pred, v_labels, labels=sorted(set(v_labels)))
            self.valid_scores_[c] = score
            if best is None or score > self.valid_scores_[best[0]]:
                best = (c, models, thresholds)
        self.C_, self._models, thresholds = best
        self.thresholds_ = dict(zip(self.classes_, thresholds.tolist())) if self.multilabel else {}
        self._fitted = True
        return self

    # ------------------------------------------------------------------ predict

    def _predict_single(self, x: sparse.csr_matrix, models: list) -> list[str]:
        model = models[0]
        if isinstance(model, str):
            return [model] * x.shape[0]
        return [str(p) for p in model.predict(x)]

    def predict(self, texts: Sequence[str]) -> list[str] | list[set[str]]:
        """One label per text (single-label) or a non-empty label set (multi-label)."""
        if not self._fitted:
            raise ValueError("TextClassifier is not fitted: call fit() first")
        texts = _texts(texts, "texts")
        if not texts:
            return []
        x = self.vectorizer.transform(texts)
        if not self.multilabel:
            return self._predict_single(x, self._models)
        thresholds = np.asarray([self.thresholds_[c] for c in self.classes_])
        return self._decide(self._probabilities(x, self._models), thresholds)
