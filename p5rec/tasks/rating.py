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


def linear_fit(x: list[float], y: list[float]) -> tuple[float, float]:
    """Least-squares slope and intercept of ``y`` on ``x`` (slope 0 and the mean of ``y``
    when ``x`` is constant)."""
    if not x or len(x) != len(y):
        raise ValueError(f"linear_fit needs equal, non-empty lists (got {len(x)} and {len(y)})")
    mx, my = sum(x) / len(x), sum(y) / len(y)
    sxx = sum((a - mx) ** 2 for a in x)
    if sxx == 0:
        return 0.0, my
    slope = sum((a - mx) * (b - my) for a, b in zip(x, y)) / sxx
    return slope, my - slope * mx


def on_line(line: dict, value: float, lo: float, hi: float) -> float:
    """``value`` through ``line`` (its ``slope`` and ``intercept``), clipped to [lo, hi]."""
    return min(hi, max(lo, line["slope"] * value + line["intercept"]))


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

    def _expected(self, engine, ctx, sources, options) -> list[float]:
        """Per source, the rating expected under the model's distribution over the
        training rating values (one forward pass per batch)."""
        template, values = self.template_of(options), train_rating_values(ctx)
        bs = options["batch_size"]
        return [
            expectation(probs, values)
            for start in range(0, len(sources), bs)
            for probs in rating_distributions(engine, sources[start : start + bs], values, template)
        ]

    def predict(self, engine, ctx, examples, sources, options) -> list[tuple]:
        """Per example: the expected rating (probability-weighted over the training rating
        values) and the greedily decoded rating (None if unparsable)."""
        template = self.template_of(options)
        decoded = []
        for start in range(0, len(sources), options["batch_size"]):
            batch = sources[start : start + options["batch_size"]]
            decoded += [
                parse_rating(template.parse_target(t)) for t in engine.generate_text(batch, 8)
            ]
        return list(zip(self._expected(engine, ctx, sources, options), decoded))

    def fit_line(self, engine, ctx, options) -> dict:
        """The least-squares line from the model's expected rating to the true one on the
        validation split, prompted with ``options``' template: ``template`` (its id),
        ``slope``, ``intercept``, ``valid_n`` and the validation RMSE before and after
        (``valid_rmse``, ``valid_rmse_calibrated``). ``on_line`` applies it."""
        valid = self.examples(ctx, "valid", random.Random(0))
        if not valid:
            raise ValueError("eval.calibrate_rating: the dataset has no validation ratings")
        template = self.template_of(options)
        sources = [ctx.prompt(self.name, template.render(e.fields, e.target)[0]) for e in valid]
        expected = self._expected(engine, ctx, sources, options)
        true = [e.meta["rating"] for e in valid]
        slope, intercept = linear_fit(expected, true)
        line = {"template": template.id, "slope": slope, "intercept": intercept}
        lo, hi = ctx.corpus.rating_range
        return {
            **line,
            "valid_n": len(valid),
            "valid_rmse": rmse(expected, true),
            "valid_rmse_calibrated": rmse([on_line(line, e, lo, hi) for e in expected], true),
        }

    def calibrate(self, engine, ctx, predictions, options):
        """With ``options["calibrate_rating"]`` (``eval.calibrate_rating``): the expected
        ratings mapped through the validation split's line (``fit_line``, same template),
        clipped to the rating range, as the rating baselines tune on that split; the
        decoded ratings unchanged. A model whose expectation is right on average but too
        timid (or too bold) is rescaled."""
        if not options.get("calibrate_rating"):
            return predictions, None
        line = self.fit_line(engine, ctx, options)
        lo, hi = ctx.corpus.rating_range
        return [(on_line(line, e, lo, hi), d) for e, d in predictions], line

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
