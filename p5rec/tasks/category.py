"""Category: predict an item's categories from its text; test items are unseen.

The target joins the item's categories, most general first: a path for Amazon items
("Beauty > Makeup > Lips"), a label set for movies ("Action > Comedy"). Scores cover both
readings: exact-match accuracy and macro-F1 of whole answers, and micro/macro F1 over the
single labels (the multi-label genre metrics).
"""

from __future__ import annotations

import random

from p5rec.baselines import Majority
from p5rec.metrics import macro_f1_multilabel, micro_f1_multilabel
from p5rec.tasks.base import Example, TaskContext, TaskFamily, register
from p5rec.tasks.labels import decode_labels, label_metrics

SEPARATOR = " > "


def labels_of(answer: str) -> set[str]:
    """The single labels of a joined answer."""
    return {part.strip() for part in answer.split(SEPARATOR.strip()) if part.strip()}


def category_metrics(preds: list[str], true: list[str]) -> dict[str, float]:
    """Whole-answer accuracy and macro-F1 (answers compared as label sets), then micro/macro
    F1 over the single labels (the macro average over the labels of the reference answers)."""
    pred_sets, true_sets = [labels_of(p) for p in preds], [labels_of(t) for t in true]
    labels = sorted(set().union(*true_sets))

    def canonical(sets):  # a label set in one order, so answers compare as sets
        return [SEPARATOR.join(sorted(s)) for s in sets]

    return {
        **label_metrics(canonical(pred_sets), canonical(true_sets)),
        "label_micro_f1": micro_f1_multilabel(pred_sets, true_sets),
        "label_macro_f1": macro_f1_multilabel(pred_sets, true_sets, labels=labels),
    }


@register
class Category(TaskFamily):
    name = "category"
    required = ("item_title",)
    optional = ("item",)
    balanced = False  # the assistant's closed-set answer: the most probable label

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
        return category_metrics(predictions, [e.target for e in examples])

    def baseline(self, ctx, examples, options) -> tuple[str, dict[str, float]]:
        train = self.examples(ctx, "train", random.Random(0))
        maj = Majority(e.target for e in train)
        return maj.name, category_metrics(maj.predict(len(examples)), [e.target for e in examples])
