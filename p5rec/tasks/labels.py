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


def decode_labels(family, engine, sources: list[str], options: dict) -> list[str]:
    """Greedy-decode ``sources`` and invert the evaluation template's target text."""
    template = family.template_of(options)
    preds = []
    for start in range(0, len(sources), options["batch_size"]):
        texts = engine.generate_text(sources[start : start + options["batch_size"]], 24)
        preds.extend(template.parse_target(t) for t in texts)
    return preds


def label_metrics(preds: list[str], true: list[str]) -> dict[str, float]:
    """Accuracy and macro-F1 over the labels of the reference set."""
    labels = sorted(set(true))
    return {"accuracy": accuracy(preds, true), "macro_f1": macro_f1(preds, true, labels=labels)}


def train_label_counts(family, ctx) -> Counter:
    """How often each label is a target of the family's training split (its closed set)."""
    return Counter(e.target for e in family.examples(ctx, "train", random.Random(0)))


def prior_corrected(family, ctx) -> bool:
    """Whether ``family``'s decision divides by the training label frequencies: a
    ``balanced`` family trained on its natural label mix. With ``tasks.balance_labels`` its
    training was label-balanced already, and the most probable label is the decision."""
    return family.balanced and not ctx.balance_labels


def rank_labels(
    engine, sources: list[str], counts: Counter, template, balanced: bool
) -> list[list[tuple[str, float]]]:
    """Per source, the training labels (``counts``) best first, each with the model's
    probability of it among them. The order is by ``log p(label | source)``, minus
    ``log prior(label)`` (its training frequency) when ``balanced``: a class-balanced
    decision, so a rare class is not drowned by a frequent one. Ties: by label."""
    labels = sorted(counts)
    total = sum(counts.values())
    priors = [math.log(counts[label] / total) if balanced else 0.0 for label in labels]
    texts = [template.render_target(label) for label in labels]
    out = []
    for scores in engine.score_texts(sources, texts):
        probs = softmax(scores)
        order = sorted(range(len(labels)), key=lambda j: (priors[j] - scores[j], labels[j]))
        out.append([(labels[j], probs[j]) for j in order])
    return out


def closed_set_labels(family, engine, ctx, sources: list[str], options: dict) -> list[str]:
    """The first label of :func:`rank_labels` per source (:func:`prior_corrected` decides)."""
    counts = train_label_counts(family, ctx)
    template = family.template_of(options)
    preds = []
    for start in range(0, len(sources), options["batch_size"]):
        batch = sources[start : start + options["batch_size"]]
        ranked = rank_labels(engine, batch, counts, template, prior_corrected(family, ctx))
        preds += [r[0][0] for r in ranked]
    return preds
