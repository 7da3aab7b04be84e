"""Category: predict an item's categories from its text; test items are unseen.

The target joins the item's categories, most general first: a path for Amazon items
("Beauty > Makeup > Lips"), a label set for movies ("Action > Comedy"). Scores cover both
readings: exact-match accuracy and macro-F1 of whole answers, and micro/macro F1 over the
single labels (the multi-label genre metrics).

The answer is one of the training answers: a path, the training path the model scores
highest (``tasks.labels.closed_set_labels``; ``eval.label_prior`` may discount frequent
paths), or with ``eval.multilabel`` the labels the model rates likelier than their prior
share (:func:`lifted_labels`). The prior is the training answers' frequencies, or with
``eval.label_prior_from=model`` the model's mean answer on validation prompts
(``tasks.labels.label_prior``).
"""

from __future__ import annotations

import random

from p5rec.baselines import Majority
from p5rec.metrics import macro_f1_multilabel, micro_f1_multilabel
from p5rec.tasks.base import Example, TaskContext, TaskFamily, register
from p5rec.tasks.labels import closed_set_labels, label_metrics, label_prior, softmax

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


class LabelLift:
    """The multi-label decision over a family's training answers (label sets, ``answers``
    with their prior weights: training counts, or ``tasks.labels.label_prior``).

    Given the model's probability of each training answer (normalised over them), a
    label's probability is the mass of the answers that contain it. The answer keeps each
    label whose probability is at least its prior share (the prior mass of the answers
    with it; with training counts, its training frequency), so rare labels are not drowned
    by frequent ones; when none is, the label with the largest ratio. Labels are joined in
    sorted order."""

    def __init__(self, answers: dict[str, float]) -> None:
        self.answers = sorted(answers)
        self.sets = [labels_of(a) for a in self.answers]
        total = sum(answers.values())
        self.labels = sorted(set().union(*self.sets))
        self.prior = {
            lab: sum(answers[a] for a, s in zip(self.answers, self.sets) if lab in s) / total
            for lab in self.labels
        }

    def decide(self, probs: list[float]) -> tuple[str, float, dict[str, float]]:
        """The answer for ``probs`` (one per answer, in ``self.answers`` order), the
        probability that all its labels hold (the mass of the answers containing them all)
        and the probability of each of its labels."""
        mass = dict.fromkeys(self.labels, 0.0)
        for p, s in zip(probs, self.sets):
            for lab in s:
                mass[lab] += p
        chosen = [lab for lab in self.labels if mass[lab] >= self.prior[lab] - 1e-9]
        if not chosen:
            chosen = [max(self.labels, key=lambda lab: (mass[lab] / self.prior[lab], lab))]
        joint = sum(p for p, s in zip(probs, self.sets) if s.issuperset(chosen))
        return SEPARATOR.join(chosen), joint, {lab: mass[lab] for lab in chosen}


def lifted_labels(family, engine, ctx, sources: list[str], options: dict) -> list[str]:
    """Multi-label answers (:class:`LabelLift` against ``tasks.labels.label_prior``) from
    the model's scores of every training answer."""
    template = family.template_of(options)
    lift = LabelLift(label_prior(family, engine, ctx, template, options))
    texts = [template.render_target(a) for a in lift.answers]
    preds = []
    for start in range(0, len(sources), options["batch_size"]):
        for scores in engine.score_texts(sources[start : start + options["batch_size"]], texts):
            preds.append(lift.decide(softmax(scores))[0])
    return preds


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
        if options.get("multilabel"):
            return lifted_labels(self, engine, ctx, sources, options)
        return closed_set_labels(self, engine, ctx, sources, options)

    def score(self, ctx, examples, predictions, options) -> dict[str, float]:
        return category_metrics(predictions, [e.target for e in examples])

    def baseline(self, ctx, examples, options) -> tuple[str, dict[str, float]]:
        train = self.examples(ctx, "train", random.Random(0))
        maj = Majority(e.target for e in train)
        return maj.name, category_metrics(maj.predict(len(examples)), [e.target for e in examples])
