"""Rating: predict the star rating a user gives an item (decoded text, parsed)."""

from __future__ import annotations

import random
import re

from p5rec.baselines import GlobalMean
from p5rec.metrics import mae, rmse
from p5rec.tasks.base import Example, TaskContext, TaskFamily, register

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def format_rating(value: float) -> str:
    return f"{value:g}"


def parse_rating(text: str) -> float | None:
    """The first number in ``text``, or None if there is none."""
    m = _NUMBER.search(text)
    return float(m.group()) if m else None


@register
class Rating(TaskFamily):
    name = "rating"
    required = ("item",)
    optional = ("user", "item_title", "history")

    def examples(self, ctx: TaskContext, split: str, rng: random.Random) -> list[Example]:
        out = []
        for n in ctx.splits.reviews[split]:
            e = ctx.corpus.interactions[n]
            out.append(
                Example(
                    self.name,
                    {
                        "user": e.user,
                        "item": ctx.item_text(e.item),
                        "item_title": ctx.title(e.item),
                        "history": ctx.history_text(ctx.previous_items[n]) or "nothing yet",
                    },
                    format_rating(e.rating),
                    {"rating": e.rating},
                )
            )
        return out

    def _train_mean(self, ctx: TaskContext) -> GlobalMean:
        return GlobalMean(ctx.corpus.interactions[n].rating for n in ctx.splits.reviews["train"])

    def evaluate(self, engine, ctx, examples, sources, options) -> dict[str, float]:
        lo, hi = ctx.corpus.rating_range
        fallback = self._train_mean(ctx).mean
        preds, unparsed = [], 0
        template = self.eval_template(options["template_split"])
        for start in range(0, len(sources), options["batch_size"]):
            for text in engine.generate_text(sources[start : start + options["batch_size"]], 8):
                value = parse_rating(template.parse_target(text))
                if value is None:  # counted and reported; scored as the training mean
                    unparsed += 1
                    value = fallback
                preds.append(min(hi, max(lo, value)))
        true = [ex.meta["rating"] for ex in examples]
        return {"rmse": rmse(preds, true), "mae": mae(preds, true), "unparsed": float(unparsed)}

    def baseline(self, ctx, examples, options) -> tuple[str, dict[str, float]]:
        gm = self._train_mean(ctx)
        preds, true = gm.predict(len(examples)), [ex.meta["rating"] for ex in examples]
        return gm.name, {"rmse": rmse(preds, true), "mae": mae(preds, true)}
