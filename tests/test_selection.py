import pytest

from p5rec.training.selection import lower_is_better, mean_relative_change


def test_direction_of_each_metric():
    assert lower_is_better("loss") and lower_is_better("loss/rating")
    assert lower_is_better("rating/rmse") and lower_is_better("rating/mae")
    assert not lower_is_better("next_item/ndcg@10")
    assert not lower_is_better("category/label_macro_f1")


def test_mean_relative_change_by_hand():
    best = {"next_item/ndcg@10": 0.05, "rating/rmse": 1.0, "category/f1": 0.25}
    # +20% NDCG, RMSE 1.0 -> 0.9 is +10%, F1 0.25 -> 0.2 is -20%: mean (20 + 10 - 20) / 3 %
    values = {"next_item/ndcg@10": 0.06, "rating/rmse": 0.9, "category/f1": 0.2}
    assert mean_relative_change(values, best) == pytest.approx(0.1 / 3)
    assert mean_relative_change(best, values) == pytest.approx(
        (-0.01 / 0.06 - 0.1 / 0.9 + 0.05 / 0.2) / 3
    )
    assert mean_relative_change(best, best) == 0.0


def test_one_metric_is_a_plain_comparison():
    assert mean_relative_change({"loss": 2.0}, {"loss": 2.5}) > 0
    assert mean_relative_change({"loss": 2.5}, {"loss": 2.0}) < 0
    assert mean_relative_change({"a/hr@10": 0.3}, {"a/hr@10": 0.2}) > 0
    assert mean_relative_change({"a/hr@10": 0.1}, {"a/hr@10": 0.0}) > 0  # from zero: better


def test_missing_metric_is_named():
    with pytest.raises(ValueError, match=r"\['rating/rmse'\]"):
        mean_relative_change({"loss": 1.0}, {"loss": 1.0, "rating/rmse": 1.0})
