"""Rating: predict the star rating a user gives an item (decoded text, parsed)."""

from __future__ import annotations

import math
import random
import re

from p5rec.baselines import GlobalMean
from p5rec.metrics import mae, rmse
from p5rec.tasks.base import Example, TaskContext, TaskFamily, register

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def softmax(scores: list[float]) -> list[float]:
    top = max(scores)
    exp = [math.exp(s - top) for s in scores]
    total = sum(exp)
    return [e / total for e in exp]


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
        return [
            Example(
                self.name,
                ctx.event_fields(n),
                format_rating(ctx.corpus.interactions[n].rating),
                {"rating": ctx.corpus.interactions[n].rating},
            )
            for n in ctx.splits.reviews[split]
        ]

    def _train_mean(self, ctx: TaskContext) -> GlobalMean:
        return GlobalMean(ctx.corpus.interactions[n].rating for n in ctx.splits.reviews["train"])

    def evaluate(self, engine, ctx, examples, sources, options) -> dict[str, float]:
        """RMSE/MAE of the expected rating (probability-weighted over the training rating
        values, one forward pass) and of the greedily decoded, parsed rating (``*_decoded``)."""
        lo, hi = ctx.corpus.rating_range
        template = self.eval_template(options["template_split"])
        values = sorted({ctx.corpus.interactions[n].rating for n in ctx.splits.reviews["train"]})
        texts = [template.render_target(format_rating(v)) for v in values]
        fallback = self._train_mean(ctx).mean
        expected, decoded, unparsed = [], [], 0
        bs = options["batch_size"]
        for start in range(0, len(sources), bs):
            batch = sources[start : start + bs]
            for scores in engine.score_texts(batch, texts):
                probs = softmax(scores)
                expected.append(sum(p * v for p, v in zip(probs, values)))
            for text in engine.generate_text(batch, 8):
                value = parse_rating(template.parse_target(text))
                if value is None:  # counted and reported; scored as the training mean
                    unparsed += 1
                    value = fallback
                decoded.append(min(hi, max(lo, value)))
        true = [ex.meta["rating"] for ex in examples]
        return {
            "rmse": rmse(expected, true),
            "mae": mae(expected, true),
            "rmse_decoded": rmse(decoded, true),
            "mae_decoded": mae(decoded, true),
            "unparsed": float(unparsed),
        }

    def baseline(self, ctx, examples, options) -> tuple[str, dict[str, float]]:
        gm = self._train_mean(ctx)
        preds, true = gm.predict(len(examples)), [ex.meta["rating"] for ex in examples]
        return gm.name, {"rmse": rmse(preds, true), "mae": mae(preds, true)}
