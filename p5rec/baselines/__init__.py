"""In-run baselines, scored on the same examples as the model.

Simple rules (:class:`Popularity`, :class:`GlobalMean`, :class:`Majority`) and trained
baselines on plain Python inputs: :class:`SASRec` (next item), :class:`BiasedMF` (rating),
:class:`TextClassifier` (sentiment, category) and :class:`NearestReview` (explanation).
The trained ones import torch or scikit-learn, so they load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from p5rec.baselines.global_mean import GlobalMean
from p5rec.baselines.majority import Majority
from p5rec.baselines.popularity import Popularity

if TYPE_CHECKING:
    from p5rec.baselines.matrix_factorization import BiasedMF, BiasedMFConfig
    from p5rec.baselines.retrieval import NearestReview
    from p5rec.baselines.sasrec import SASRec, SASRecConfig
    from p5rec.baselines.text_classifier import TextClassifier

_LAZY = {
    "BiasedMF": "matrix_factorization",
    "BiasedMFConfig": "matrix_factorization",
    "NearestReview": "retrieval",
    "SASRec": "sasrec",
    "SASRecConfig": "sasrec",
    "TextClassifier": "text_classifier",
}

__all__ = [
    "BiasedMF",
    "BiasedMFConfig",
    "GlobalMean",
    "Majority",
    "NearestReview",
    "Popularity",
    "SASRec",
    "SASRecConfig",
    "TextClassifier",
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"p5rec.baselines.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
