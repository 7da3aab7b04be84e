"""Category: predict an item's category path from its text; test items are unseen."""

from __future__ import annotations

import random

from p5rec.baselines import Majority
from p5rec.tasks.base import Example, TaskContext, TaskFamily, register
from p5rec.tasks.labels import decode_labels, label_metrics

SEPARATOR = " > "


@register
class Category(TaskFamily):
    name = "category"
    required = ("item_title",)
    optional = ("item",)

    def examples(self, ctx: TaskContext, split: str, rng: random.Random) -> list[Example]:
        return [
            Example(
                self.name,
                {"item": ctx.item_text(i), "item_title": ctx.title(i)},
                SEPARATOR.join(ctx.corpus.items[i].categories),
                {"item": i},
            )
            for i in ctx.splits.category[split]
        ]

    def predict(self, engine, ctx, examples, sources, options) -> list[str]:
        return decode_labels(self, engine, sources, options)

    def score(self, ctx, examples, predictions, options) -> dict[str, float]:
        return label_metrics(predictions, [e.target for e in examples])

    def baseline(self, ctx, examples, options) -> tuple[str, dict[str, float]]:
        train = self.examples(ctx, "train", random.Random(0))
        maj = Majority(e.target for e in train)
        return maj.name, label_metrics(maj.predict(len(examples)), [e.target for e in examples])
