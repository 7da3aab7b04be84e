"""Shared scoring of families whose answer is one label from a closed set."""

from __future__ import annotations

import math
import random
from collections import Counter

from p5rec.config import ConfigError
from p5rec.metrics import accuracy, macro_f1

# the most validation prompts the model's own label prior is averaged over (label_prior)
PRIOR_PROMPTS = 512


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
    """The weight of the label prior (:func:`label_prior`) in ``family``'s decision
    (:func:`rank_labels`): ``options["label_prior"]`` names it per family
    (``eval.label_prior``); else 1 for a ``balanced`` family trained on its natural label
    mix, and 0 otherwise: with ``tasks.balance_labels`` its training was label-balanced
    already, and the most probable label is the decision."""
    given = options.get("label_prior", {}).get(family.name)
    if given is not None:
        return float(given)
    return 1.0 if family.balanced and not ctx.balance_labels else 0.0


def label_prior(family, engine, ctx, template, options: dict) -> dict[str, float]:
    """The prior each training label of ``family`` is discounted by in the closed-set
    decisions (:func:`rank_labels`, ``category.LabelLift``), summing to 1.

    By default (``options["label_prior_from"]`` ``"training"``) a label's share of the
    training answers. With ``"model"``, the model's mean probability of it among the
    training labels over the validation split's prompts rendered with ``template`` (at most
    :data:`PRIOR_PROMPTS`, a fixed sample; their answers are not read): a wording that
    pulls every answer toward a few labels then discounts its own pull, which training
    frequencies cannot see (an unseen template's bias is not the seen one's)."""
    counts = train_label_counts(family, ctx)
    labels = sorted(counts)
    if options.get("label_prior_from", "training") == "training":
        total = sum(counts.values())
        return {label: counts[label] / total for label in labels}
    examples = family.examples(ctx, "valid", random.Random(0))
    if not examples:
        raise ConfigError(
            f"eval.label_prior_from=model: the validation split has no {family.name} "
            "examples to average the model's answers over"
        )
    if len(examples) > PRIOR_PROMPTS:
        examples = random.Random(1).sample(examples, PRIOR_PROMPTS)
    sources = [ctx.prompt(family.name, template.render(e.fields, e.target)[0]) for e in examples]
    texts = [template.render_target(label) for label in labels]
    mass = [0.0] * len(labels)
    for start in range(0, len(sources), options["batch_size"]):
        for scores in engine.score_texts(sources[start : start + options["batch_size"]], texts):
            mass = [m + p for m, p in zip(mass, softmax(scores))]
    total = sum(mass)
    # a floor keeps the decision's log finite where every prompt gave a label ~0
    return {label: max(m / total, 1e-12) for label, m in zip(labels, mass)}


def rank_labels(
    engine, sources: list[str], prior: dict[str, float], template, weight: float
) -> list[list[tuple[str, float]]]:
    """Per source, the labels of ``prior`` (:func:`label_prior`; training counts serve as
    well, normalised here) best first, each with the model's probability of it among them.
    The order is by ``log p(label | source)`` minus ``weight`` times ``log prior(label)``:
    at 1 a class-balanced decision, so a rare class is not drowned by a frequent one; at 0
    the most probable label. Ties: by label."""
    labels = sorted(prior)
    total = sum(prior.values())
    priors = [weight * math.log(prior[label] / total) for label in labels]
    texts = [template.render_target(label) for label in labels]
    out = []
    for scores in engine.score_texts(sources, texts):
        probs = softmax(scores)
        order = sorted(range(len(labels)), key=lambda j: (priors[j] - scores[j], labels[j]))
        out.append([(labels[j], probs[j]) for j in order])
    return out


def closed_set_labels(family, engine, ctx, sources: list[str], options: dict) -> list[str]:
    """The first label of :func:`rank_labels` per source, weighed by :func:`prior_weight`
    against :func:`label_prior`."""
    template = family.template_of(options)
    prior = label_prior(family, engine, ctx, template, options)
    weight = prior_weight(family, ctx, options)
    preds = []
    for start in range(0, len(sources), options["batch_size"]):
        batch = sources[start : start + options["batch_size"]]
        ranked = rank_labels(engine, batch, prior, template, weight)
        preds += [r[0][0] for r in ranked]
    return preds
