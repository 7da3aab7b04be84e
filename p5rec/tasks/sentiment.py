"""Sentiment: classify a review as positive (4-5 stars), neutral (3) or negative (1-2)."""

from __future__ import annotations

import random

from p5rec.baselines import Majority
from p5rec.data.corpus import sentiment_of
from p5rec.tasks.base import Example, TaskContext, TaskFamily, register
from p5rec.tasks.labels import decode_labels, label_metrics


@register
class Sentiment(TaskFamily):
    name = "sentiment"
    required = ("review",)
    optional = ("user", "item", "item_title")

    def examples(self, ctx: TaskContext, split: str, rng: random.Random) -> list[Example]:
        out = []
        for n in ctx.splits.reviews[split]:
            e = ctx.corpus.interactions[n]
            if not e.review:
                continue
            out.append(
                Example(
                    self.name,
                    {
                        "user": e.user,
                        "item": ctx.item_text(e.item),
                        "item_title": ctx.title(e.item),
                        "review": e.review,
                    },
                    sentiment_of(e.rating),
                )
            )
        return out

    def evaluate(self, engine, ctx, examples, sources, options) -> dict[str, float]:
        return label_metrics(
            decode_labels(self, engine, sources, options), [e.target for e in examples]
        )

    def baseline(self, ctx, examples, options) -> tuple[str, dict[str, float]]:
        maj = Majority(e.target for e in self.examples(ctx, "train", random.Random(0)))
        return maj.name, label_metrics(maj.predict(len(examples)), [e.target for e in examples])
