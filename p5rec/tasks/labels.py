"""Shared scoring of families whose answer is one label from a closed set."""

from __future__ import annotations

from p5rec.metrics import accuracy, macro_f1


def decode_labels(family, engine, sources: list[str], options: dict) -> list[str]:
    """Greedy-decode ``sources`` and invert the evaluation template's target text."""
    template = family.eval_template(options["template_split"])
    preds = []
    for start in range(0, len(sources), options["batch_size"]):
        texts = engine.generate_text(sources[start : start + options["batch_size"]], 24)
        preds.extend(template.parse_target(t) for t in texts)
    return preds


def label_metrics(preds: list[str], true: list[str]) -> dict[str, float]:
    """Accuracy and macro-F1 over the labels of the reference set."""
    labels = sorted(set(true))
    return {"accuracy": accuracy(preds, true), "macro_f1": macro_f1(preds, true, labels=labels)}
