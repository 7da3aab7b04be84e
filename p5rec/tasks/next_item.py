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
        if ex.position == 1:  # the first target of a user: count its first item too
            out.append(ex.history[0])
        out.append(ex.target)
    return out


@register
class NextItem(TaskFamily):
    name = "next_item"
    required = ("history",)
    optional = ("user",)
    item_target = True
    history_source = True

    def examples(self, ctx: TaskContext, split: str, rng: random.Random) -> list[Example]:
        return [
            Example(
                self.name,
                {"user": ctx.user_text(ex.user), "history": ctx.history_text(ex.history)},
                ctx.item_text(ex.target),
                {"user": ex.user, "item": ex.target, "position": ex.position},
            )
            for ex in ctx.splits.next_item[split]
        ]

    def predict(self, engine, ctx, examples, sources, options) -> list[list[str]]:
        """Constrained beam search over all items. With ``remove_history`` (S3-Rec style) the
        user's past items are dropped from each list and the beam widened to make up for them.
        """
        lists = []
        bs = options["batch_size"]
        for start in range(0, len(sources), bs):
            batch = examples[start : start + bs]
            past = [
                ctx.interacted_before(ex) if options["remove_history"] else set() for ex in batch
            ]
            beams = options["num_beams"] + max(len(p) for p in past)
            for ranked, drop in zip(engine.rank(sources[start : start + bs], beams), past):
                lists.append([i for i, _ in ranked if i not in drop][: options["num_beams"]])
        return lists

    def score(self, ctx, examples, predictions, options) -> dict[str, float]:
        return ranking_metrics(predictions, [ex.meta["item"] for ex in examples], options["ks"])

    def baseline(self, ctx, examples, options) -> tuple[str, dict[str, float]]:
        pop = Popularity(train_items(ctx))
        k = max(options["ks"])
        lists = [
            pop.top(k, ctx.interacted_before(ex) if options["remove_history"] else frozenset())
            for ex in examples
        ]
        return pop.name, ranking_metrics(lists, [ex.meta["item"] for ex in examples], options["ks"])
