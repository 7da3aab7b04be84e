"""Explanation: generate the review's summary line from the user and the item."""

from __future__ import annotations

import random

from p5rec.baselines import Majority
from p5rec.metrics import bleu4, rouge, unique_sentence_ratio
from p5rec.tasks.base import Example, TaskContext, TaskFamily, register


def _text_metrics(hyps: list[str], refs: list[str]) -> dict[str, float]:
    """BLEU-4 and ROUGE against the references, and the share of distinct answers (usr)."""
    return {"bleu4": bleu4(hyps, refs), **rouge(hyps, refs), "usr": unique_sentence_ratio(hyps)}


def generate(engine, sources: list[str], template) -> list[str]:
    """Beam-search (4 beams, at most 32 tokens) an explanation per source, target template
    stripped."""
    return [template.parse_target(t) for t in engine.generate_text(sources, 32, num_beams=4)]


@register
class Explanation(TaskFamily):
    name = "explanation"
    required = ("item",)
    optional = ("user", "item_title")

    def examples(self, ctx: TaskContext, split: str, rng: random.Random) -> list[Example]:
        events = (ctx.corpus.interactions[n] for n in ctx.splits.reviews[split])
        return [
            Example(self.name, ctx.event_fields(n), e.summary, {"event": n})
            for n, e in zip(ctx.splits.reviews[split], events)
            if e.summary
        ]

    def predict(self, engine, ctx, examples, sources, options) -> list[str]:
        template = self.template_of(options)
        hyps = []
        for start in range(0, len(sources), options["batch_size"]):
            hyps += generate(engine, sources[start : start + options["batch_size"]], template)
        return hyps

    def score(self, ctx, examples, predictions, options) -> dict[str, float]:
        return _text_metrics(predictions, [e.target for e in examples])

    def baseline(self, ctx, examples, options) -> tuple[str, dict[str, float]]:
        maj = Majority(e.target for e in self.examples(ctx, "train", random.Random(0)))
        return "most_frequent_summary", _text_metrics(
            maj.predict(len(examples)), [e.target for e in examples]
        )
