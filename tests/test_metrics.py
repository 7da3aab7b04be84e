"""Tests for p5rec.metrics, with hand-computed expected values."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from p5rec import metrics as m

# Three users: target at rank 1, at rank 3, and absent.
RANKED = [["a", "b", "c"], ["x", "y", "t", "z"], ["p", "q"]]
TARGETS = ["a", "t", "m"]


# --------------------------------------------------------------------------- #
# Ranking
# --------------------------------------------------------------------------- #


def test_hit_rate_hand_computed() -> None:
    # ranks = [1, 3, miss]
    # HR@1 = (1 + 0 + 0) / 3 = 1/3 ; HR@2 = 1/3 ; HR@3 = HR@5 = (1 + 1 + 0) / 3 = 2/3
    assert m.hit_rate_at_k(RANKED, TARGETS, 1) == pytest.approx(1 / 3)
    assert m.hit_rate_at_k(RANKED, TARGETS, 2) == pytest.approx(1 / 3)
    assert m.hit_rate_at_k(RANKED, TARGETS, 3) == pytest.approx(2 / 3)
    assert m.hit_rate_at_k(RANKED, TARGETS, 5) == pytest.approx(2 / 3)


def test_ndcg_hand_computed() -> None:
    # NDCG@5 = (1/log2(2) + 1/log2(4) + 0) / 3 = (1 + 0.5 + 0) / 3 = 0.5
    assert m.ndcg_at_k(RANKED, TARGETS, 5) == pytest.approx(0.5)
    # NDCG@2: only the rank-1 hit counts -> (1 + 0 + 0) / 3 = 1/3
    assert m.ndcg_at_k(RANKED, TARGETS, 2) == pytest.approx(1 / 3)


def test_mrr_hand_computed() -> None:
    # MRR@5 = (1/1 + 1/3 + 0) / 3 = (4/3) / 3 = 4/9
    assert m.mrr_at_k(RANKED, TARGETS, 5) == pytest.approx(4 / 9)
    # MRR@2 = (1 + 0 + 0) / 3 = 1/3
    assert m.mrr_at_k(RANKED, TARGETS, 2) == pytest.approx(1 / 3)


def test_short_list_counts_missing_slots_as_misses() -> None:
    # List of length 1 with K = 5: the target is nowhere -> miss.
    assert m.hit_rate_at_k([["a"]], ["b"], 5) == 0.0
    assert m.ndcg_at_k([["a"]], ["b"], 5) == 0.0
    assert m.mrr_at_k([["a"]], ["b"], 5) == 0.0
    # List of length 2 with K = 10 and target at rank 2: hit, NDCG = 1/log2(3), RR = 1/2.
    assert m.hit_rate_at_k([["a", "b"]], ["b"], 10) == 1.0
    assert m.ndcg_at_k([["a", "b"]], ["b"], 10) == pytest.approx(1 / math.log2(3))
    assert m.mrr_at_k([["a", "b"]], ["b"], 10) == pytest.approx(0.5)
    # Empty ranked list for a user -> miss.
    assert m.hit_rate_at_k([[], ["b"]], ["b", "b"], 3) == pytest.approx(0.5)


def test_items_beyond_k_are_ignored_and_first_occurrence_counts() -> None:
    # Target at rank 4 with K = 3 -> miss.
    assert m.hit_rate_at_k([["a", "b", "c", "t"]], ["t"], 3) == 0.0
    # Duplicates: first occurrence of "t" is at rank 2 -> NDCG = 1/log2(3).
    assert m.ndcg_at_k([["x", "t", "t"]], ["t"], 3) == pytest.approx(1 / math.log2(3))


def test_ranking_accepts_tuples_and_int_items() -> None:
    # ranks = [2, miss] -> HR@2 = 1/2, MRR@2 = (1/2 + 0) / 2 = 1/4
    ranked = ((10, 20), (30, 40))
    assert m.hit_rate_at_k(ranked, (20, 99), 2) == pytest.approx(0.5)
    assert m.mrr_at_k(ranked, (20, 99), 2) == pytest.approx(0.25)
    assert m.hit_rate_at_k(ranked, (20, 99), np.int64(2)) == pytest.approx(0.5)


def test_ranking_metrics_keys_order_and_values() -> None:
    out = m.ranking_metrics(RANKED, TARGETS)
    assert list(out) == ["hr@5", "ndcg@5", "hr@10", "ndcg@10"]
    # Every rank is <= 5 or a miss, so @5 and @10 agree: HR = 2/3, NDCG = 0.5 (see above).
    assert out["hr@5"] == pytest.approx(2 / 3)
    assert out["ndcg@5"] == pytest.approx(0.5)
    assert out["hr@10"] == pytest.approx(2 / 3)
    assert out["ndcg@10"] == pytest.approx(0.5)

    out = m.ranking_metrics(RANKED, TARGETS, ks=(1, 3))
    assert list(out) == ["hr@1", "ndcg@1", "hr@3", "ndcg@3"]
    # @1: (1 + 0 + 0) / 3 for both; @3: HR = 2/3, NDCG = (1 + 0.5) / 3 = 0.5
    assert out == pytest.approx({"hr@1": 1 / 3, "ndcg@1": 1 / 3, "hr@3": 2 / 3, "ndcg@3": 0.5})


def test_ranking_metrics_agree_with_single_functions() -> None:
    out = m.ranking_metrics(RANKED, TARGETS, ks=(2, 4))
    for k in (2, 4):
        assert out[f"hr@{k}"] == pytest.approx(m.hit_rate_at_k(RANKED, TARGETS, k))
        assert out[f"ndcg@{k}"] == pytest.approx(m.ndcg_at_k(RANKED, TARGETS, k))


@pytest.mark.parametrize("fn", [m.hit_rate_at_k, m.ndcg_at_k, m.mrr_at_k])
def test_ranking_errors(fn) -> None:
    with pytest.raises(ValueError, match=r"`k` must be >= 1, got 0"):
        fn(RANKED, TARGETS, 0)
    with pytest.raises(ValueError, match=r"`ranked` has length 3 but `targets` has length 2"):
        fn(RANKED, TARGETS[:2], 5)
    with pytest.raises(ValueError, match="empty input"):
        fn([], [], 5)
    with pytest.raises(TypeError, match="must be an integer"):
        fn(RANKED, TARGETS, 2.0)
    with pytest.raises(TypeError, match="must be an integer"):
        fn(RANKED, TARGETS, True)


def test_ranking_metrics_errors() -> None:
    with pytest.raises(ValueError, match="at least one cut-off"):
        m.ranking_metrics(RANKED, TARGETS, ks=())
    with pytest.raises(ValueError, match="duplicates"):
        m.ranking_metrics(RANKED, TARGETS, ks=(5, 5))
    with pytest.raises(ValueError, match=">= 1"):
        m.ranking_metrics(RANKED, TARGETS, ks=(5, 0))
    with pytest.raises(ValueError, match="length mismatch"):
        m.ranking_metrics(RANKED, TARGETS[:1])
    with pytest.raises(ValueError, match="empty input"):
        m.ranking_metrics([], [])


# --------------------------------------------------------------------------- #
# Regression
# --------------------------------------------------------------------------- #


def test_rmse_mae_hand_computed() -> None:
    # pred [3, 4, 5], true [4, 4, 3]: errors [-1, 0, 2]
    # RMSE = sqrt((1 + 0 + 4) / 3) = sqrt(5/3) ; MAE = (1 + 0 + 2) / 3 = 1
    assert m.rmse([3, 4, 5], [4, 4, 3]) == pytest.approx(math.sqrt(5 / 3))
    assert m.mae([3, 4, 5], [4, 4, 3]) == pytest.approx(1.0)
    assert m.rmse([2.5], [2.5]) == 0.0


def test_regression_returns_python_float_and_accepts_arrays() -> None:
    r = m.rmse(np.array([1.0, 2.0]), np.array([1.0, 4.0]))  # sqrt((0 + 4) / 2) = sqrt(2)
    a = m.mae(np.array([1.0, 2.0]), np.array([1.0, 4.0]))  # (0 + 2) / 2 = 1
    assert type(r) is float and type(a) is float
    assert r == pytest.approx(math.sqrt(2))
    assert a == pytest.approx(1.0)


@pytest.mark.parametrize("fn", [m.rmse, m.mae])
def test_regression_errors(fn) -> None:
    with pytest.raises(ValueError, match=r"`pred` has length 3 but `true` has length 2"):
        fn([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="empty input"):
        fn([], [])
    with pytest.raises(ValueError, match="1-D"):
        fn([[1, 2]], [[1, 2]])


# --------------------------------------------------------------------------- #
# Single-label classification
# --------------------------------------------------------------------------- #

# 3-class example (index: true -> pred):
#   0: 0->0  1: 0->1  2: 1->1  3: 1->1  4: 2->2  5: 2->0
CLS_TRUE = [0, 0, 1, 1, 2, 2]
CLS_PRED = [0, 1, 1, 1, 2, 0]


def test_accuracy_hand_computed() -> None:
    # correct at indices 0, 2, 3, 4 -> 4 / 6
    assert m.accuracy(CLS_PRED, CLS_TRUE) == pytest.approx(2 / 3)
    assert m.accuracy(["x", "y"], ["x", "y"]) == 1.0
    assert m.accuracy(["x"], ["y"]) == 0.0


def test_macro_f1_hand_computed() -> None:
    # class 0: TP=1 (idx0), FP=1 (idx5), FN=1 (idx1) -> F1 = 2*1 / (2 + 1 + 1) = 1/2
    # class 1: TP=2 (idx2,3), FP=1 (idx1), FN=0      -> F1 = 4 / (4 + 1 + 0) = 4/5
    # class 2: TP=1 (idx4), FP=0, FN=1 (idx5)        -> F1 = 2 / (2 + 0 + 1) = 2/3
    # macro = (1/2 + 4/5 + 2/3) / 3 = (15 + 24 + 20) / 90 = 59/90
    assert m.macro_f1(CLS_PRED, CLS_TRUE) == pytest.approx(59 / 90)


def test_macro_f1_explicit_labels_include_absent_class() -> None:
    # Class 3 never appears: F1_3 = 0, so macro = (1/2 + 4/5 + 2/3 + 0) / 4 = 59/120
    assert m.macro_f1(CLS_PRED, CLS_TRUE, labels=[0, 1, 2, 3]) == pytest.approx(59 / 120)
    # Restricting to class 1 only -> 4/5
    assert m.macro_f1(CLS_PRED, CLS_TRUE, labels=[1]) == pytest.approx(4 / 5)


def test_macro_f1_default_labels_include_predicted_only_class() -> None:
    # true [a, a], pred [a, b]; labels = {a, b}
    # a: TP=1, FP=0, FN=1 -> 2/3 ; b: TP=0, FP=1, FN=0 -> 0 ; macro = (2/3 + 0) / 2 = 1/3
    assert m.macro_f1(["a", "b"], ["a", "a"]) == pytest.approx(1 / 3)
    # perfect prediction -> 1
    assert m.macro_f1(["a", "b"], ["a", "b"]) == 1.0


def test_classification_errors() -> None:
    with pytest.raises(ValueError, match=r"`pred` has length 1 but `true` has length 2"):
        m.accuracy([1], [1, 2])
    with pytest.raises(ValueError, match="empty input"):
        m.accuracy([], [])
    with pytest.raises(ValueError, match=r"`pred` has length 2 but `true` has length 1"):
        m.macro_f1([1, 2], [1])
    with pytest.raises(ValueError, match="empty input"):
        m.macro_f1([], [])
    with pytest.raises(ValueError, match="non-empty"):
        m.macro_f1([1], [1], labels=[])
    with pytest.raises(ValueError, match="duplicates"):
        m.macro_f1([1], [1], labels=[1, 1])


# --------------------------------------------------------------------------- #
# Multi-label classification
# --------------------------------------------------------------------------- #

# Example (pred vs true):
#   0: {a, b} vs {a}     -> TP {a}, FP {b}
#   1: {c}    vs {b, c}  -> TP {c}, FN {b}
#   2: {}     vs {a}     -> FN {a}
ML_PRED = [{"a", "b"}, {"c"}, set()]
ML_TRUE = [{"a"}, {"b", "c"}, {"a"}]


def test_micro_f1_multilabel_hand_computed() -> None:
    # TP = 1 + 1 + 0 = 2, FP = 1 + 0 + 0 = 1, FN = 0 + 1 + 1 = 2
    # micro-F1 = 2*2 / (2*2 + 1 + 2) = 4/7
    assert m.micro_f1_multilabel(ML_PRED, ML_TRUE) == pytest.approx(4 / 7)


def test_macro_f1_multilabel_hand_computed() -> None:
    # a: TP=1 (ex0), FP=0, FN=1 (ex2) -> 2/3
    # b: TP=0, FP=1 (ex0), FN=1 (ex1) -> 0
    # c: TP=1 (ex1), FP=0, FN=0       -> 1
    # macro = (2/3 + 0 + 1) / 3 = 5/9
    assert m.macro_f1_multilabel(ML_PRED, ML_TRUE) == pytest.approx(5 / 9)
    # Extra label "d" with no occurrences -> (2/3 + 0 + 1 + 0) / 4 = 5/12
    assert m.macro_f1_multilabel(ML_PRED, ML_TRUE, labels=["a", "b", "c", "d"]) == pytest.approx(
        5 / 12
    )


def test_multilabel_accepts_lists_and_collapses_duplicates() -> None:
    # Lists are treated as sets: ["a", "a"] == {"a"}; same numbers as the set example.
    pred = [["a", "b", "b"], ["c"], []]
    true = [("a",), ("b", "c"), ("a", "a")]
    assert m.micro_f1_multilabel(pred, true) == pytest.approx(4 / 7)
    assert m.macro_f1_multilabel(pred, true) == pytest.approx(5 / 9)


def test_multilabel_all_empty_is_zero() -> None:
    # 2TP + FP + FN = 0 -> 0 by convention; no labels to average over -> 0.
    assert m.micro_f1_multilabel([set()], [set()]) == 0.0
    assert m.macro_f1_multilabel([set()], [set()]) == 0.0


def test_multilabel_errors() -> None:
    for fn in (m.micro_f1_multilabel, m.macro_f1_multilabel):
        with pytest.raises(ValueError, match=r"`pred` has length 3 but `true` has length 2"):
            fn(ML_PRED, ML_TRUE[:2])
        with pytest.raises(ValueError, match="empty input"):
            fn([], [])
        with pytest.raises(TypeError, match="not a single string"):
            fn(["ab"], [{"a"}])
    with pytest.raises(ValueError, match="non-empty"):
        m.macro_f1_multilabel(ML_PRED, ML_TRUE, labels=[])


# --------------------------------------------------------------------------- #
# Text generation
# --------------------------------------------------------------------------- #

SENT = "the quick brown fox jumps over the lazy dog"


def test_bleu4_identical_and_disjoint() -> None:
    # Identical texts: every n-gram precision is 1 and BP = 1 -> 100.
    assert m.bleu4([SENT, "a b c d e"], [SENT, "a b c d e"]) == pytest.approx(100.0)
    # No shared unigram -> p_1 = 0 -> BLEU = 0.
    assert m.bleu4(["a b c d e"], ["v w x y z"]) == pytest.approx(0.0)
    assert type(m.bleu4([SENT], [SENT])) is float


def test_rouge_identical() -> None:
    out = m.rouge([SENT, "hello world again"], [SENT, "hello world again"])
    assert list(out) == ["rouge1", "rouge2", "rougeL"]
    assert out == pytest.approx({"rouge1": 100.0, "rouge2": 100.0, "rougeL": 100.0})


def test_rouge_hand_computed_partial_and_mean() -> None:
    # hyp "the cat sat" vs ref "the cat sat on the mat":
    #   ROUGE-1: overlap 3, P = 3/3, R = 3/6 -> F1 = 2 * 1 * 0.5 / 1.5 = 2/3
    #   ROUGE-2: overlap 2 ("the cat", "cat sat"), P = 2/2, R = 2/5 -> F1 = 0.8 / 1.4 = 4/7
    #   ROUGE-L: LCS = 3 -> same as ROUGE-1 = 2/3
    out = m.rouge(["the cat sat"], ["the cat sat on the mat"])
    assert out == pytest.approx({"rouge1": 200 / 3, "rouge2": 400 / 7, "rougeL": 200 / 3})
    # Mean over examples: identical (100) + disjoint (0) -> 50 for every key.
    out = m.rouge(["alpha beta gamma", "alpha beta"], ["alpha beta gamma", "delta epsilon"])
    assert out == pytest.approx({"rouge1": 50.0, "rouge2": 50.0, "rougeL": 50.0})


def test_unique_sentence_ratio_by_hand() -> None:
    # 4 answers, 2 distinct once whitespace is stripped -> 2 / 4
    assert m.unique_sentence_ratio(["Great!", " Great!", "Works well", "Great!"]) == 0.5
    assert m.unique_sentence_ratio(["a", "b", "c"]) == 1.0
    assert m.unique_sentence_ratio(["same"] * 5) == pytest.approx(1 / 5)
    with pytest.raises(ValueError, match="empty input"):
        m.unique_sentence_ratio([])
    with pytest.raises(TypeError, match=r"`hypotheses\[1\]` must be a str"):
        m.unique_sentence_ratio(["a", None])


@pytest.mark.parametrize("fn", [m.bleu4, m.rouge])
def test_text_errors(fn) -> None:
    with pytest.raises(
        ValueError, match=r"`hypotheses` has length 2 but `references` has length 1"
    ):
        fn(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="empty input"):
        fn([], [])
    with pytest.raises(TypeError, match=r"`hypotheses\[0\]` must be a str"):
        fn([1], ["a"])


# --------------------------------------------------------------------------- #
# Config helpers / module hygiene
# --------------------------------------------------------------------------- #


def test_check_metric_names() -> None:
    known = ["hr@10", "ndcg@10", "rmse"]
    assert m.check_metric_names(["rmse", "hr@10"], known) is None
    assert m.check_metric_names([], known) is None
    with pytest.raises(ValueError, match=r"unknown metric name\(s\): 'bleu'") as exc:
        m.check_metric_names(["rmse", "bleu"], known)
    # The message lists every known name.
    assert "'hr@10', 'ndcg@10', 'rmse'" in str(exc.value)
    with pytest.raises(TypeError, match="not a single str"):
        m.check_metric_names("rmse", known)


def test_all_exports_exist_and_module_is_import_light() -> None:
    for name in m.__all__:
        assert callable(getattr(m, name))
    # Importing p5rec.metrics must not pull in torch (sacrebleu/rouge_score are lazy too).
    # Compare against what `import p5rec` alone loads, so only this module is tested.
    code = (
        "import sys; import p5rec; heavy = ('torch', 'sacrebleu', 'rouge_score'); "
        "before = {x for x in heavy if x in sys.modules}; import p5rec.metrics; "
        "added = [x for x in heavy if x in sys.modules and x not in before]; "
        "assert not added, added"
    )
    root = Path(m.__file__).resolve().parent.parent
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, env=env)
