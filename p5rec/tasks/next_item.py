"""Next item: from a user's recent items, generate the next one (full ranking)."""

from __future__ import annotations

import random

from p5rec.baselines import Popularity
from p5rec.metrics import ranking_metrics
from p5rec.tasks.base import Example, TaskContext, TaskFamily, register


def train_items(ctx: TaskContext) -> list[str]:
    """Every item occurrence of the training split (histories' first items and targets)."""
    out = []
    for ex in ctx.splits.next_item["train"]:
        if len(ex.history) == 1:  # the first target of a user: count its history item too
            out.append(ex.history[0])
        out.append(ex.target)
    return out


@register
class NextItem(TaskFamily):
    name = "next_item"
    required = ("history",)
    optional = ("user",)
    item_target = True

    def examples(self, ctx: TaskContext, split: str, rng: random.Random) -> list[Example]:
        return [
            Example(
                self.name,
                {"user": ex.user, "history": ctx.history_text(ex.history)},
                ctx.item_text(ex.target),
                {"user": ex.user, "item": ex.target, "position": ex.position},
            )
            for ex in ctx.splits.next_item[split]
        ]

    def evaluate(self, engine, ctx, examples, sources, options) -> dict[str, float]:
        ranked = []
        for start in range(0, len(sources), options["batch_size"]):
            batch = sources[start : start + options["batch_size"]]
            ranked.extend(engine.rank(batch, options["num_beams"]))
        lists = [
            [i for i, _ in r if not (options["remove_history"] and i in ctx.interacted_before(ex))]
            for r, ex in zip(ranked, examples)
        ]
        return ranking_metrics(lists, [ex.meta["item"] for ex in examples], options["ks"])

    def baseline(self, ctx, examples, options) -> tuple[str, dict[str, float]]:
        pop = Popularity(train_items(ctx))
        k = max(options["ks"])
        lists = [
            pop.top(k, ctx.interacted_before(ex) if options["remove_history"] else frozenset())
            for ex in examples
        ]
        return pop.name, ranking_metrics(lists, [ex.meta["item"] for ex in examples], options["ks"])
