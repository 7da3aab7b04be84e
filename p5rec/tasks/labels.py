"""Shared scoring of families whose answer is one label from a closed set."""

from __future__ import annotations

import math
import random
from collections import Counter

from p5rec.metrics import accuracy, macro_f1


def softmax(scores: list[float]) -> list[float]:
    """Scores (log-probabilities of a closed set's options) normalised over the set."""
    top = max(scores)
    exp = [math.exp(s - top) for s in scores]
    total = sum(exp)
    return [e / total for e in exp]


def label_metrics(preds: list[str], true: list[str]) -> dict[str, float]:
    """Accuracy and macro-F1 over the labels of the reference set."""
    labels = sorted(set(true))
    return {"accuracy": accuracy(preds, true), "macro_f1": macro_f1(preds, true, labels=labels)}


def train_label_counts(family, ctx) -> Counter:
    """How often each label is a target of the family's training split (its closed set)."""
    return Counter(e.target for e in family.examples(ctx, "train", random.Random(0)))


def prior_weight(family, ctx, options: dict) -> float:
    """The weight of the training label frequencies in ``family``'s decision
    (:func:`rank_labels`): ``options["label_prior"]`` names it per family
    (``eval.label_prior``); else 1 for a ``balanced`` family trained on its natural label
    mix, and 0 otherwise: with ``tasks.balance_labels`` its training was label-balanced
    already, and the most probable label is the decision."""
    given = options.get("label_prior", {}).get(family.name)
    if given is not None:
        return float(given)
    return 1.0 if family.balanced and not ctx.balance_labels else 0.0


def rank_labels(
    engine, sources: list[str], counts: Counter, template, weight: float
) -> list[list[tuple[str, float]]]:
    """Per source, the training labels (``counts``) best first, each with the model's
    probability of it among them. The order is by ``log p(label | source)`` minus
    ``weight`` times ``log prior(label)`` (its training frequency): at 1 a class-balanced
    decision, so a rare class is not drowned by a frequent one; at 0 the most probable
    label. Ties: by label."""
    labels = sorted(counts)
    total = sum(counts.values())
    priors = [weight * math.log(counts[label] / total) for label in labels]
    texts = [template.render_target(label) for label in labels]
    out = []
    for scores in engine.score_texts(sources, texts):
        probs = softmax(scores)
        order = sorted(range(len(labels)), key=lambda j: (priors[j] - scores[j], labels[j]))
        out.append([(labels[j], probs[j]) for j in order])
    return out


def closed_set_labels(family, engine, ctx, sources: list[str], options: dict) -> list[str]:
    """The first label of :func:`rank_labels` per source, weighed by :func:`prior_weight`."""
    counts = train_label_counts(family, ctx)
    template = family.template_of(options)
    weight = prior_weight(family, ctx, options)
    preds = []
    for start in range(0, len(sources), options["batch_size"]):
        batch = sources[start : start + options["batch_size"]]
        ranked = rank_labels(engine, batch, counts, template, weight)
        preds += [r[0][0] for r in ranked]
    return preds
