"""Rating: predict the star rating a user gives an item (decoded text, parsed)."""

from __future__ import annotations

import random
import re

from p5rec.baselines import GlobalMean
from p5rec.metrics import mae, rmse
from p5rec.tasks.base import Example, TaskContext, TaskFamily, register
from p5rec.tasks.labels import softmax

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def format_rating(value: float) -> str:
    return f"{value:g}"


def parse_rating(text: str) -> float | None:
    """The first number in ``text``, or None if there is none."""
    m = _NUMBER.search(text)
    return float(m.group()) if m else None


def train_rating_values(ctx: TaskContext) -> list[float]:
    """The distinct rating values of the training split, ascending."""
    return sorted({ctx.corpus.interactions[n].rating for n in ctx.splits.reviews["train"]})


def rating_distributions(engine, sources, values, template) -> list[list[float]]:
    """Per source, the model's probability of each of ``values`` (one forward pass per
    source: every value's target text scored, then normalised)."""
    texts = [template.render_target(format_rating(v)) for v in values]
    return [softmax(scores) for scores in engine.score_texts(sources, texts)]


def expectation(probs: list[float], values: list[float]) -> float:
    return sum(p * v for p, v in zip(probs, values))


@register
class Rating(TaskFamily):
    name = "rating"
    required = ("item",)
    optional = ("user", "item_title", "history", "rated_history", "user_ratings", "item_ratings")

    def numeric_targets(self, ctx: TaskContext) -> dict[str, float]:
        return {format_rating(v): v for v in train_rating_values(ctx)}

    def examples(self, ctx: TaskContext, split: str, rng: random.Random) -> list[Example]:
        return [
            Example(
                self.name,
                ctx.event_fields(n),
                format_rating(ctx.corpus.interactions[n].rating),
                {"rating": ctx.corpus.interactions[n].rating, "event": n},
            )
            for n in ctx.splits.reviews[split]
        ]

    def _train_mean(self, ctx: TaskContext) -> GlobalMean:
        return GlobalMean(ctx.corpus.interactions[n].rating for n in ctx.splits.reviews["train"])

    def predict(self, engine, ctx, examples, sources, options) -> list[tuple]:
        """Per example: the expected rating (probability-weighted over the training rating
        values, one forward pass) and the greedily decoded rating (None if unparsable)."""
        template = self.template_of(options)
        values = train_rating_values(ctx)
        out = []
        bs = options["batch_size"]
        for start in range(0, len(sources), bs):
            batch = sources[start : start + bs]
            expected = [
                expectation(probs, values)
                for probs in rating_distributions(engine, batch, values, template)
            ]
            decoded = [
                parse_rating(template.parse_target(t)) for t in engine.generate_text(batch, 8)
            ]
            out.extend(zip(expected, decoded))
        return out

    def score(self, ctx, examples, predictions, options) -> dict[str, float]:
        """RMSE/MAE of the expected rating and of the decoded one (``*_decoded``; an
        unparsable answer is counted and scored as the training mean)."""
        lo, hi = ctx.corpus.rating_range
        fallback = self._train_mean(ctx).mean
        expected = [e for e, _ in predictions]
        decoded = [fallback if d is None else min(hi, max(lo, d)) for _, d in predictions]
        true = [ex.meta["rating"] for ex in examples]
        return {
            "rmse": rmse(expected, true),
            "mae": mae(expected, true),
            "rmse_decoded": rmse(decoded, true),
            "mae_decoded": mae(decoded, true),
            "unparsed": float(sum(d is None for _, d in predictions)),
        }

    def baseline(self, ctx, examples, options) -> tuple[str, dict[str, float]]:
        gm = self._train_mean(ctx)
        preds, true = gm.predict(len(examples)), [ex.meta["rating"] for ex in examples]
        return gm.name, {"rmse": rmse(preds, true), "mae": mae(preds, true)}
