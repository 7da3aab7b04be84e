"""Every in-run baseline of a task family, scored on the model's own examples.

A :class:`BaselineSuite` reads the same prepared splits as the model (a ``TaskContext``),
fits the trained baselines on the training split only (validation picks their settings and
stops their training), predicts for the evaluation examples, and scores the predictions with
the family's own ``score`` so model and baselines are measured by one evaluator:

- next item: popularity, SASRec with binary cross-entropy and with full-softmax
  cross-entropy (the same SASRec models also rank the candidate sets);
- candidate ranking: popularity, SASRec (BCE, CE);
- rating: global mean, user + item biases (matrix factorisation without factors), biased
  matrix factorisation;
- category: majority, TF-IDF + logistic regression on item titles (multi-label when some
  training item has several labels);
- sentiment: majority, TF-IDF + logistic regression on the review text;
- explanation: most frequent summary, same-item nearest-review retrieval.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from p5rec.tasks import get_family
from p5rec.tasks.base import Example, TaskContext

__all__ = ["BaselineSuite", "SuiteConfig"]


@dataclass(frozen=True)
class SuiteConfig:
    """Budgets and seeds of the trained baselines."""

    sasrec_minutes: float = 5.0  # training-time budget of each SASRec
    sasrec_epochs: int = 200
    seed: int = 0
    progress: bool = False


class BaselineSuite:
    """Fits each trained baseline once (on first use) and scores it per family."""

    def __init__(
        self, ctx: TaskContext, options: dict[str, Any], config: SuiteConfig | None = None
    ) -> None:
        self.ctx = ctx
        self.options = options
        self.config = config or SuiteConfig()
        self._sasrec: dict[str, tuple[Any, float]] = {}

    def families(self) -> list[str]:
        return ["next_item", "candidate_ranking", "rating", "category", "sentiment", "explanation"]

    def rows(
        self,
        family: str,
        examples: list[Example],
        systems: set[str] | None = None,
        predictions: dict[str, list] | None = None,
    ) -> list[dict]:
        """``{"system", "metrics", "seconds"}`` per baseline of ``family`` on ``examples``
        (``seconds``: fitting and predicting; a shared fit is counted where it happens);
        ``systems``: only these (by name; None: all). Given a dict, ``predictions``
        receives each system's predictions (the family's simple baseline, which reports
        metrics only, has none)."""
        fam = get_family(family)
        t0 = time.time()
        name, metrics = fam.baseline(self.ctx, examples, self.options)
        rows = []
        if systems is None or name in systems:
            rows.append({"system": name, "metrics": metrics, "seconds": round(time.time() - t0, 2)})
        for system, predict in getattr(self, f"_{family}")():
            if systems is not None and system not in systems:
                continue
            t0 = time.time()
            predicted = predict(examples)
            scores = fam.score(self.ctx, examples, predicted, self.options)
            if predictions is not None:
                predictions[system] = predicted
            # the simple baseline's metric names: e.g. a rating baseline has no decoded string
            scores = {k: v for k, v in scores.items() if k in metrics}
            rows.append(
                {"system": system, "metrics": scores, "seconds": round(time.time() - t0, 2)}
            )
        return rows

    # ------------------------------------------------------------------ next item

    def sasrec(self, loss: str):
        """The SASRec trained with ``loss`` ("ce" or "bce"), fitted on first use: hidden 64,
        2 layers, dropout 0.5, at most 50 items, early stopping on validation NDCG@10."""
        if loss not in self._sasrec:
            from p5rec.baselines import SASRec, SASRecConfig

            t0 = time.time()
            cfg = SASRecConfig(
                loss=loss,
                epochs=self.config.sasrec_epochs,
                max_seconds=60 * self.config.sasrec_minutes,
                seed=self.config.seed,
                progress=self.config.progress,
            )
            train = [s[:-2] for s in self.ctx.sequences.values() if len(s) >= 3]
            valid = [(ex.history, ex.target) for ex in self.ctx.splits.next_item["valid"]]
            model = SASRec(cfg, items=self.ctx.catalogue).fit(train, valid)
            self._sasrec[loss] = (model, time.time() - t0)
        return self._sasrec[loss][0]

    def _histories(self, examples: list[Example]) -> list[list[str]]:
        seqs = self.ctx.sequences
        return [seqs[ex.meta["user"]][: ex.meta["position"]] for ex in examples]

    def _next_item(self):
        def ranker(loss: str):
            def predict(examples):
                exclude = (
                    [self.ctx.interacted_before(ex) for ex in examples]
                    if self.options["remove_history"]
                    else None
                )
                k = max(self.options["ks"])
                return self.sasrec(loss).rank(self._histories(examples), k, exclude)

            return predict

        return [("SASRec (BCE)", ranker("bce")), ("SASRec (CE)", ranker("ce"))]

    def _candidate_ranking(self):
        from p5rec.tasks.candidate_ranking import rank_candidates

        def scorer(loss: str):
            def predict(examples):
                cands = [ex.meta["candidates"] for ex in examples]
                scores = self.sasrec(loss).score(self._histories(examples), cands)
                return [rank_candidates(c, s) for c, s in zip(cands, scores)]

            return predict

        return [("SASRec (BCE)", scorer("bce")), ("SASRec (CE)", scorer("ce"))]

    # ------------------------------------------------------------------ reviews

    def _events(self, split: str):
        return [self.ctx.corpus.interactions[n] for n in self.ctx.splits.reviews[split]]

    def _rating(self):
        def fitted(**settings):
            def predict(examples):
                from p5rec.baselines import BiasedMF, BiasedMFConfig

                def triples(split):
                    return [(e.user, e.item, e.rating) for e in self._events(split)]

                cfg = BiasedMFConfig(
                    **settings,
                    rating_range=self.ctx.corpus.rating_range,
                    seed=self.config.seed,
                    progress=self.config.progress,
                )
                mf = BiasedMF(cfg).fit(triples("train"), triples("valid"))
                events = [self.ctx.corpus.interactions[ex.meta["event"]] for ex in examples]
                preds = mf.predict([(e.user, e.item) for e in events])
                return [(p, p) for p in preds]  # the family's (expected, decoded) pair

            return predict

        # the biases alone: what a user's and an item's mean ratings (which rating prompts
        # show) predict, without the factors' user-item interactions
        return [("user + item biases", fitted(factors=0)), ("biased MF", fitted())]

    def _sentiment(self):
        fam = get_family("sentiment")

        def reviews(examples):  # whole, not as a prompt shows them (tasks.max_review_words)
            return [self.ctx.corpus.interactions[e.meta["event"]].review for e in examples]

        def predict(examples):
            from p5rec.baselines import TextClassifier

            train = fam.examples(self.ctx, "train", random.Random(0))
            valid = fam.examples(self.ctx, "valid", random.Random(0))
            clf = TextClassifier(C=[0.25, 1.0, 4.0, 16.0], seed=self.config.seed).fit(
                reviews(train),
                [e.target for e in train],
                valid=(reviews(valid), [e.target for e in valid]),
            )
            return clf.predict(reviews(examples))

        return [("TF-IDF + LR", predict)]

    def _explanation(self):
        def predict(examples):
            from p5rec.baselines import NearestReview

            train = [(e.user, e.item, e.review, e.summary) for e in self._events("train")]
            events = [self.ctx.corpus.interactions[ex.meta["event"]] for ex in examples]
            return NearestReview(train).predict([(e.user, e.item) for e in events])

        return [("nearest review", predict)]

    # ------------------------------------------------------------------ items

    def _category(self):
        from p5rec.tasks.category import SEPARATOR

        fam = get_family("category")

        def predict(examples):
            from p5rec.baselines import TextClassifier

            train = fam.examples(self.ctx, "train", random.Random(0))
            valid = fam.examples(self.ctx, "valid", random.Random(0))
            items = self.ctx.corpus.items
            multilabel = self._multilabel()

            def target(ex):
                cats = items[ex.meta["item"]].categories
                return set(cats) if multilabel else SEPARATOR.join(cats)

            clf = TextClassifier(
                multilabel=multilabel, C=[1.0, 4.0, 16.0], seed=self.config.seed
            ).fit(
                [e.fields["item_title"] for e in train],
                [target(e) for e in train],
                valid=([e.fields["item_title"] for e in valid], [target(e) for e in valid]),
            )
            preds = clf.predict([e.fields["item_title"] for e in examples])
            return [SEPARATOR.join(p) for p in preds] if multilabel else preds

        return [("title TF-IDF + LR", predict)]

    def _multilabel(self) -> bool:
        """Label sets (movie genres) rather than paths (Amazon categories): training items
        carry several labels whose first ones differ (every path starts at one root)."""
        items = self.ctx.corpus.items
        cats = [items[i].categories for i in self.ctx.splits.category["train"]]
        return any(len(c) > 1 for c in cats) and len({c[0] for c in cats if c}) > 1
