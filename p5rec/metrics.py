"""Evaluation metrics for generative recommendation tasks.

All functions here are pure: they take plain Python sequences (or anything
array-like where noted), validate them, and return plain Python ``float`` values
(or ``dict[str, float]``). Every score is a *mean* over users / examples, never a
sum. ``numpy`` is the only eager third-party import; ``sacrebleu`` and
``rouge_score`` are imported lazily inside :func:`bleu4` and :func:`rouge` so
that importing this module stays cheap.

Families of metrics:

* Ranking (one relevant item per user): :func:`hit_rate_at_k`,
  :func:`ndcg_at_k`, :func:`mrr_at_k`, :func:`ranking_metrics`.
* Rating regression: :func:`rmse`, :func:`mae`.
* Single-label classification: :func:`accuracy`, :func:`macro_f1`.
* Multi-label (set-valued) classification: :func:`micro_f1_multilabel`,
  :func:`macro_f1_multilabel`.
* Text generation (0-100 scale): :func:`bleu4`, :func:`rouge`.
* Config helpers: :func:`check_metric_names`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Collection, Hashable, Iterable, Sequence
from itertools import islice
from typing import Any

import numpy as np

__all__ = [
    "accuracy",
    "bleu4",
    "check_metric_names",
    "hit_rate_at_k",
    "macro_f1",
    "macro_f1_multilabel",
    "mae",
    "micro_f1_multilabel",
    "mrr_at_k",
    "ndcg_at_k",
    "ranking_metrics",
    "rmse",
    "rouge",
]


# --------------------------------------------------------------------------- #
# Validation helpers
# --------------------------------------------------------------------------- #


def _check_paired(a: Sequence[Any], b: Sequence[Any], name_a: str, name_b: str) -> int:
    """Check that two paired sequences are non-empty and of equal length.

    Args:
        a: First sequence.
        b: Second sequence.
        name_a: Argument name of ``a`` (used in error messages).
        name_b: Argument name of ``b`` (used in error messages).

    Returns:
        The common length ``n >= 1``.

    Raises:
        ValueError: If the lengths differ or the sequences are empty.
    """
    len_a, len_b = len(a), len(b)
    if len_a != len_b:
        raise ValueError(
            f"length mismatch: `{name_a}` has length {len_a} but `{name_b}` has length {len_b}"
        )
    if len_a == 0:
        raise ValueError(f"empty input: `{name_a}` and `{name_b}` must be non-empty")
    return len_a


def _check_k(k: int, name: str = "k") -> int:
    """Validate a cut-off ``k`` (a positive integer).

    Raises:
        TypeError: If ``k`` is not an integer (``bool`` is rejected).
        ValueError: If ``k < 1``.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"`{name}` must be an integer, got {type(k).__name__}")
    if k < 1:
        raise ValueError(f"`{name}` must be >= 1, got {k}")
    return int(k)


def _first_rank(ranked_list: Iterable[Hashable], target: Hashable, k: int) -> int | None:
    """1-based rank of the first occurrence of ``target`` in the top ``k``, else ``None``."""
    for rank, item in enumerate(islice(ranked_list, k), start=1):
        if item == target:
            return rank
    return None


def _ranks(
    ranked: Sequence[Sequence[Hashable]], targets: Sequence[Hashable], k: int
) -> list[int | None]:
    """Validate ranking inputs and return the per-user 1-based rank (or ``None``) within top-k."""
    k = _check_k(k)
    _check_paired(ranked, targets, "ranked", "targets")
    return [_first_rank(r, t, k) for r, t in zip(ranked, targets, strict=True)]


def _sorted_labels(labels: Iterable[Hashable]) -> list[Hashable]:
    """Sort labels deterministically; fall back to ``repr`` order for mixed types."""
    unique = set(labels)
    try:
        return sorted(unique)  # type: ignore[type-var]
    except TypeError:
        return sorted(unique, key=repr)


def _check_labels(labels: Sequence[Hashable]) -> list[Hashable]:
    """Validate an explicit label set: non-empty and without duplicates."""
    labels = list(labels)
    if not labels:
        raise ValueError("`labels` must be non-empty when given")
    if len(set(labels)) != len(labels):
        raise ValueError(f"`labels` contains duplicates: {labels!r}")
    return labels


def _f1_from_counts(tp: int, fp: int, fn: int) -> float:
    """F1 = 2·TP / (2·TP + FP + FN); 0 when the denominator is 0.

    This equals the harmonic mean 2·P·R / (P + R) of precision and recall, with
    the convention F1 = 0 when P + R = 0.
    """
    denom = 2 * tp + fp + fn
    return 2.0 * tp / denom if denom > 0 else 0.0


def _as_label_set(x: Collection[Hashable], arg: str, index: int) -> set[Hashable]:
    """Convert one multi-label entry to a ``set``, rejecting bare strings."""
    if isinstance(x, (str, bytes)):
        raise TypeError(
            f"`{arg}[{index}]` is a {type(x).__name__}; multi-label entries must be "
            "collections of labels (e.g. a set or list), not a single string"
        )
    return set(x)


def _check_texts(texts: Sequence[str], arg: str) -> list[str]:
    """Ensure every element of ``texts`` is a ``str``."""
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise TypeError(f"`{arg}[{i}]` must be a str, got {type(t).__name__}")
    return out


# --------------------------------------------------------------------------- #
# Ranking metrics (a single relevant item per user)
# --------------------------------------------------------------------------- #


def hit_rate_at_k(
    ranked: Sequence[Sequence[Hashable]], targets: Sequence[Hashable], k: int
) -> float:
    """Hit rate at K for next-item recommendation with one target per user.

    Formula::

        HR@K = (1 / U) * sum_u 1[target_u in top-K(ranked_u)]

    A ranked list shorter than ``K`` has its missing slots counted as misses.
    Only the first ``K`` entries of each list are inspected.

    Args:
        ranked: For each user, the recommended items in rank order (best first).
        targets: For each user, the single ground-truth item.
        k: Cut-off ``K >= 1``.

    Returns:
        HR@K in ``[0, 1]``, averaged over users.

    Raises:
        ValueError: If ``k < 1``, if ``ranked`` and ``targets`` differ in length,
            or if they are empty.
        TypeError: If ``k`` is not an integer.
    """
    ranks = _ranks(ranked, targets, k)
    return float(sum(r is not None for r in ranks) / len(ranks))


def ndcg_at_k(ranked: Sequence[Sequence[Hashable]], targets: Sequence[Hashable], k: int) -> float:
    """Normalised discounted cumulative gain at K with one relevant item per user.

    With a single relevant item the ideal DCG is 1, so::

        NDCG@K = (1 / U) * sum_u g_u,
        g_u = 1 / log2(rank_u + 1)  if rank_u <= K  else 0

    where ``rank_u`` is the 1-based position of the first occurrence of the
    target in ``ranked[u]``. Lists shorter than ``K`` count missing slots as
    misses.

    Args:
        ranked: For each user, the recommended items in rank order (best first).
        targets: For each user, the single ground-truth item.
        k: Cut-off ``K >= 1``.

    Returns:
        NDCG@K in ``[0, 1]``, averaged over users.

    Raises:
        ValueError: If ``k < 1``, on length mismatch, or on empty input.
        TypeError: If ``k`` is not an integer.
    """
    ranks = _ranks(ranked, targets, k)
    return float(sum(0.0 if r is None else 1.0 / math.log2(r + 1) for r in ranks) / len(ranks))


def mrr_at_k(ranked: Sequence[Sequence[Hashable]], targets: Sequence[Hashable], k: int) -> float:
    """Mean reciprocal rank at K with one relevant item per user.

    Formula::

        MRR@K = (1 / U) * sum_u rr_u,
        rr_u = 1 / rank_u  if rank_u <= K  else 0

    where ``rank_u`` is the 1-based position of the first occurrence of the
    target in ``ranked[u]``. Lists shorter than ``K`` count missing slots as
    misses.

    Args:
        ranked: For each user, the recommended items in rank order (best first).
        targets: For each user, the single ground-truth item.
        k: Cut-off ``K >= 1``.

    Returns:
        MRR@K in ``[0, 1]``, averaged over users.

    Raises:
        ValueError: If ``k < 1``, on length mismatch, or on empty input.
        TypeError: If ``k`` is not an integer.
    """
    ranks = _ranks(ranked, targets, k)
    return float(sum(0.0 if r is None else 1.0 / r for r in ranks) / len(ranks))


def ranking_metrics(
    ranked: Sequence[Sequence[Hashable]],
    targets: Sequence[Hashable],
    ks: Sequence[int] = (5, 10),
) -> dict[str, float]:
    """HR@K and NDCG@K for several cut-offs at once.

    For each ``K`` in ``ks`` (in the given order) the result has the keys
    ``f"hr@{K}"`` then ``f"ndcg@{K}"``, with::

        hr@K   = (1 / U) * sum_u 1[rank_u <= K]
        ndcg@K = (1 / U) * sum_u 1[rank_u <= K] / log2(rank_u + 1)

    (see :func:`hit_rate_at_k` and :func:`ndcg_at_k`). Ranks are computed once,
    up to ``max(ks)``.

    Args:
        ranked: For each user, the recommended items in rank order (best first).
        targets: For each user, the single ground-truth item.
        ks: Cut-offs, each ``>= 1``; must be non-empty and without duplicates.

    Returns:
        Ordered dict such as ``{"hr@5": ..., "ndcg@5": ..., "hr@10": ..., "ndcg@10": ...}``.

    Raises:
        ValueError: If ``ks`` is empty or has duplicates, if any ``K < 1``, on
            length mismatch, or on empty input.
        TypeError: If any ``K`` is not an integer.
    """
    ks = [_check_k(k, "ks") for k in ks]
    if not ks:
        raise ValueError("`ks` must contain at least one cut-off")
    if len(set(ks)) != len(ks):
        raise ValueError(f"`ks` contains duplicates: {ks}")
    ranks = _ranks(ranked, targets, max(ks))
    n = len(ranks)
    out: dict[str, float] = {}
    for k in ks:
        hits = [r for r in ranks if r is not None and r <= k]
        out[f"hr@{k}"] = float(len(hits) / n)
        out[f"ndcg@{k}"] = float(sum(1.0 / math.log2(r + 1) for r in hits) / n)
    return out


# --------------------------------------------------------------------------- #
# Rating regression
# --------------------------------------------------------------------------- #


def _regression_arrays(
    pred: Sequence[float], true: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert regression inputs to 1-D float64 arrays."""
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(true, dtype=np.float64)
    if p.ndim != 1 or t.ndim != 1:
        raise ValueError(f"`pred` and `true` must be 1-D, got shapes {p.shape} and {t.shape}")
    _check_paired(p, t, "pred", "true")
    return p, t


def rmse(pred: Sequence[float], true: Sequence[float]) -> float:
    """Root mean squared error.

    Formula::

        RMSE = sqrt( (1 / N) * sum_i (pred_i - true_i)^2 )

    Args:
        pred: Predicted ratings (1-D, array-like).
        true: Ground-truth ratings, same length as ``pred``.

    Returns:
        RMSE as a Python float.

    Raises:
        ValueError: On length mismatch, empty input, or non-1-D input.
    """
    p, t = _regression_arrays(pred, true)
    return float(np.sqrt(np.mean((p - t) ** 2)))


def mae(pred: Sequence[float], true: Sequence[float]) -> float:
    """Mean absolute error.

    Formula::

        MAE = (1 / N) * sum_i |pred_i - true_i|

    Args:
        pred: Predicted ratings (1-D, array-like).
        true: Ground-truth ratings, same length as ``pred``.

    Returns:
        MAE as a Python float.

    Raises:
        ValueError: On length mismatch, empty input, or non-1-D input.
    """
    p, t = _regression_arrays(pred, true)
    return float(np.mean(np.abs(p - t)))


# --------------------------------------------------------------------------- #
# Single-label classification
# --------------------------------------------------------------------------- #


def accuracy(pred: Sequence[Hashable], true: Sequence[Hashable]) -> float:
    """Fraction of exact matches.

    Formula::

        Acc = (1 / N) * sum_i 1[pred_i == true_i]

    Args:
        pred: Predicted labels.
        true: Ground-truth labels, same length as ``pred``.

    Returns:
        Accuracy in ``[0, 1]``.

    Raises:
        ValueError: On length mismatch or empty input.
    """
    n = _check_paired(pred, true, "pred", "true")
    return float(sum(bool(p == t) for p, t in zip(pred, true, strict=True)) / n)


def macro_f1(
    pred: Sequence[Hashable],
    true: Sequence[Hashable],
    labels: Sequence[Hashable] | None = None,
) -> float:
    """Macro-averaged F1 for single-label classification.

    For each class ``c`` in the label set ``C``::

        TP_c = #{i : pred_i = c and true_i = c}
        FP_c = #{i : pred_i = c and true_i != c}
        FN_c = #{i : pred_i != c and true_i = c}
        P_c = TP_c / (TP_c + FP_c),   R_c = TP_c / (TP_c + FN_c)
        F1_c = 2 * P_c * R_c / (P_c + R_c) = 2 TP_c / (2 TP_c + FP_c + FN_c)

    with ``F1_c = 0`` when ``P_c + R_c = 0`` (including a class that never
    occurs in either ``pred`` or ``true``). Then::

        Macro-F1 = (1 / |C|) * sum_{c in C} F1_c

    Args:
        pred: Predicted labels.
        true: Ground-truth labels, same length as ``pred``.
        labels: The label set ``C``. Default: the union of labels seen in
            ``true`` and ``pred``, sorted. If given, it must be non-empty and
            without duplicates; examples whose labels fall outside it still count
            as FN/FP for the classes in ``C`` that they involve.

    Returns:
        Macro-F1 in ``[0, 1]``.

    Raises:
        ValueError: On length mismatch, empty input, or an empty / duplicated
            ``labels``.
    """
    _check_paired(pred, true, "pred", "true")
    classes = _sorted_labels([*true, *pred]) if labels is None else _check_labels(labels)
    tp: dict[Hashable, int] = dict.fromkeys(classes, 0)
    fp: dict[Hashable, int] = dict.fromkeys(classes, 0)
    fn: dict[Hashable, int] = dict.fromkeys(classes, 0)
    for p, t in zip(pred, true, strict=True):
        if p == t:
            if p in tp:
                tp[p] += 1
        else:
            if p in fp:
                fp[p] += 1
            if t in fn:
                fn[t] += 1
    return float(sum(_f1_from_counts(tp[c], fp[c], fn[c]) for c in classes) / len(classes))


# --------------------------------------------------------------------------- #
# Multi-label classification
# --------------------------------------------------------------------------- #


def _multilabel_sets(
    pred: Sequence[Collection[Hashable]], true: Sequence[Collection[Hashable]]
) -> tuple[list[set[Hashable]], list[set[Hashable]]]:
    """Validate multi-label inputs and convert each entry to a ``set``."""
    _check_paired(pred, true, "pred", "true")
    p_sets = [_as_label_set(x, "pred", i) for i, x in enumerate(pred)]
    t_sets = [_as_label_set(x, "true", i) for i, x in enumerate(true)]
    return p_sets, t_sets


def micro_f1_multilabel(
    pred: Sequence[Collection[Hashable]], true: Sequence[Collection[Hashable]]
) -> float:
    r"""Micro-averaged F1 for multi-label (set-valued) predictions.

    Counts are pooled over all examples ``i`` (duplicates inside one entry are
    collapsed, since entries are treated as sets)::

        TP = sum_i |P_i ∩ T_i|,  FP = sum_i |P_i \ T_i|,  FN = sum_i |T_i \ P_i|
        Micro-F1 = 2 TP / (2 TP + FP + FN)

    with Micro-F1 = 0 when ``2 TP + FP + FN = 0`` (every set empty).

    Args:
        pred: For each example, the collection of predicted labels.
        true: For each example, the collection of true labels.

    Returns:
        Micro-F1 in ``[0, 1]``.

    Raises:
        ValueError: On length mismatch or empty input.
        TypeError: If an entry is a bare ``str``/``bytes`` instead of a collection.
    """
    p_sets, t_sets = _multilabel_sets(pred, true)
    tp = fp = fn = 0
    for p, t in zip(p_sets, t_sets, strict=True):
        tp += len(p & t)
        fp += len(p - t)
        fn += len(t - p)
    return float(_f1_from_counts(tp, fp, fn))


def macro_f1_multilabel(
    pred: Sequence[Collection[Hashable]],
    true: Sequence[Collection[Hashable]],
    labels: Sequence[Hashable] | None = None,
) -> float:
    """Macro-averaged F1 for multi-label (set-valued) predictions.

    For each label ``c`` in the label set ``C``::

        TP_c = #{i : c in P_i and c in T_i}
        FP_c = #{i : c in P_i and c not in T_i}
        FN_c = #{i : c not in P_i and c in T_i}
        F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c)   (0 if the denominator is 0)
        Macro-F1 = (1 / |C|) * sum_{c in C} F1_c

    Args:
        pred: For each example, the collection of predicted labels.
        true: For each example, the collection of true labels.
        labels: The label set ``C``. Default: the union of all labels seen in
            ``true`` and ``pred``, sorted. If given, it must be non-empty and
            without duplicates.

    Returns:
        Macro-F1 in ``[0, 1]``; 0 if ``labels`` is ``None`` and every set is
        empty (no classes to average over).

    Raises:
        ValueError: On length mismatch, empty input, or an empty / duplicated
            ``labels``.
        TypeError: If an entry is a bare ``str``/``bytes`` instead of a collection.
    """
    p_sets, t_sets = _multilabel_sets(pred, true)
    if labels is None:
        classes = _sorted_labels(x for s in (*p_sets, *t_sets) for x in s)
        if not classes:
            return 0.0
    else:
        classes = _check_labels(labels)
    total = 0.0
    for c in classes:
        tp = fp = fn = 0
        for p, t in zip(p_sets, t_sets, strict=True):
            in_p, in_t = c in p, c in t
            tp += in_p and in_t
            fp += in_p and not in_t
            fn += in_t and not in_p
        total += _f1_from_counts(tp, fp, fn)
    return float(total / len(classes))


# --------------------------------------------------------------------------- #
# Text generation
# --------------------------------------------------------------------------- #


def bleu4(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus-level BLEU-4 computed with ``sacrebleu`` (one reference per hypothesis).

    Formula (Papineni et al., 2002), with modified n-gram precisions ``p_n``
    pooled over the corpus, hypothesis length ``c`` and reference length ``r``::

        BP = 1 if c > r else exp(1 - r / c)
        BLEU-4 = 100 * BP * exp( (1/4) * sum_{n=1..4} log p_n )

    This is ``sacrebleu.corpus_bleu(hypotheses, [references]).score`` with
    sacrebleu's defaults (13a tokenisation, ``exp`` smoothing). Note that the
    result is on a **0-100 scale**, not 0-1.

    Args:
        hypotheses: Generated texts.
        references: One reference text per hypothesis.

    Returns:
        Corpus BLEU-4 in ``[0, 100]``.

    Raises:
        ValueError: On length mismatch or empty input.
        TypeError: If an element is not a ``str``.
    """
    _check_paired(hypotheses, references, "hypotheses", "references")
    hyps = _check_texts(hypotheses, "hypotheses")
    refs = _check_texts(references, "references")
    import sacrebleu

    return float(sacrebleu.corpus_bleu(hyps, [refs]).score)


def rouge(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1 / ROUGE-2 / ROUGE-L F1 (×100), computed with ``rouge_score``.

    For each pair, ``rouge_score.rouge_scorer.RougeScorer(["rouge1", "rouge2",
    "rougeL"], use_stemmer=True).score(reference, hypothesis)`` gives, for
    n-gram (or LCS) overlap counts::

        P = overlap / |hyp units|,  R = overlap / |ref units|,  F1 = 2PR / (P + R)

    and the result for each key is::

        ROUGE-x = 100 * (1 / N) * sum_i F1_x(hyp_i, ref_i)

    i.e. a **0-100 scale** mean over examples.

    Args:
        hypotheses: Generated texts.
        references: One reference text per hypothesis.

    Returns:
        ``{"rouge1": ..., "rouge2": ..., "rougeL": ...}``, each in ``[0, 100]``.

    Raises:
        ValueError: On length mismatch or empty input.
        TypeError: If an element is not a ``str``.
    """
    n = _check_paired(hypotheses, references, "hypotheses", "references")
    hyps = _check_texts(hypotheses, "hypotheses")
    refs = _check_texts(references, "references")
    totals = [0.0] * len(_ROUGE_KEYS)
    for hyp, ref in zip(hyps, refs, strict=True):
        for i, f1 in enumerate(_rouge_pair(hyp, ref)):
            totals[i] += f1
    return {key: float(100.0 * total / n) for key, total in zip(_ROUGE_KEYS, totals)}


_ROUGE_KEYS = ("rouge1", "rouge2", "rougeL")


def unique_sentence_ratio(hypotheses: Sequence[str]) -> float:
    """Unique sentence ratio (USR; Li et al., 2021, "Personalized Transformer for
    Explainable Recommendation"): the share of distinct texts among the generated ones::

        USR = |{hyp_i, with surrounding whitespace stripped}| / N

    1.0 when every text differs; 1/N when one text answers everything. BLEU and ROUGE
    reward a generic sentence close to many references, so USR tells such an answer from
    a personalised one.

    Raises:
        ValueError: On empty input.
        TypeError: If an element is not a ``str``.
    """
    hyps = _check_texts(hypotheses, "hypotheses")
    if not hyps:
        raise ValueError("empty input: no hypotheses")
    return len({h.strip() for h in hyps}) / len(hyps)


@functools.cache
def _rouge_scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(list(_ROUGE_KEYS), use_stemmer=True)


@functools.lru_cache(maxsize=1 << 16)
def _rouge_pair(hyp: str, ref: str) -> tuple[float, ...]:
    """One pair's F1 per ROUGE key, remembered: a bootstrap rescores the same pairs many
    times over."""
    scores = _rouge_scorer().score(ref, hyp)  # argument order: (target, prediction)
    return tuple(scores[key].fmeasure for key in _ROUGE_KEYS)


# --------------------------------------------------------------------------- #
# Config helpers
# --------------------------------------------------------------------------- #


def check_metric_names(names: Iterable[str], known: Iterable[str]) -> None:
    """Check that every requested metric name is known.

    Raises if ``set(names) - set(known)`` is non-empty.

    Args:
        names: Metric names requested (e.g. from a config).
        known: The metric names that are supported.

    Raises:
        ValueError: If any name is unknown; the message lists the unknown names
            and all known names (sorted).
        TypeError: If ``names`` or ``known`` is a bare ``str`` (a common mistake
            that would otherwise be iterated character by character).
    """
    for arg, value in (("names", names), ("known", known)):
        if isinstance(value, str):
            raise TypeError(f"`{arg}` must be an iterable of names, not a single str")
    known_set = set(known)
    unknown = [n for n in dict.fromkeys(names) if n not in known_set]
    if unknown:
        raise ValueError(
            f"unknown metric name(s): {', '.join(map(repr, unknown))}; "
            f"known names are: {', '.join(map(repr, sorted(known_set)))}"
        )
