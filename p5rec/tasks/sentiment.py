"""Sentiment: classify a review as positive (4-5 stars), neutral (3) or negative (1-2).

The answer is the training label most probable under the model after dividing by the
label's training frequency (a class-balanced decision: most reviews are positive, and the
protocol's metric is macro-F1). With ``tasks.balance_labels`` training already sees every
label equally often, and the answer is the most probable label.
"""

from __future__ import annotations

import random

from p5rec.baselines import Majority
from p5rec.data.corpus import sentiment_of
from p5rec.tasks.base import Example, TaskContext, TaskFamily, register
from p5rec.tasks.labels import closed_set_labels, label_metrics


@register
class Sentiment(TaskFamily):
    name = "sentiment"
    required = ("review",)
    optional = ("user", "item", "item_title")
    balanced = True  # class-balanced decision (tasks.labels.prior_weight)

    def examples(self, ctx: TaskContext, split: str, rng: random.Random) -> list[Example]:
        events = (ctx.corpus.interactions[n] for n in ctx.splits.reviews[split])
        return [
            Example(self.name, ctx.event_fields(n), sentiment_of(e.rating), {"event": n})
            for n, e in zip(ctx.splits.reviews[split], events)
            if e.review
        ]

    def predict(self, engine, ctx, examples, sources, options) -> list[str]:
        return closed_set_labels(self, engine, ctx, sources, options)

    def score(self, ctx, examples, predictions, options) -> dict[str, float]:
        return label_metrics(predictions, [e.target for e in examples])

    def baseline(self, ctx, examples, options) -> tuple[str, dict[str, float]]:
        maj = Majority(e.target for e in self.examples(ctx, "train", random.Random(0)))
        return maj.name, label_metrics(maj.predict(len(examples)), [e.target for e in examples])
