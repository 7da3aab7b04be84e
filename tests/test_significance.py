"""Paired bootstrap intervals (``p5rec.significance``): exact in the cases that have one
answer, averaged over seeds as the benchmark rows are, and close to the normal
approximation for a mean."""

from __future__ import annotations

import math
import random

import pytest

from p5rec.significance import Comparison, paired_bootstrap


def _mean(idx, preds):
    return {"mean": sum(preds[i] for i in idx) / len(idx)}


def test_a_constant_difference_has_a_point_interval():
    rng = random.Random(3)
    ref = [rng.random() for _ in range(50)]
    better = [x + 0.25 for x in ref]
    same = Comparison("same", "ref", "mean")
    up = Comparison("better", "ref", "mean")
    share = Comparison("better", "ref", "mean", relative=True)
    got = paired_bootstrap(
        _mean, {"ref": [ref], "same": [list(ref)], "better": [better]}, [same, up, share], 50
    )
    assert got[same] == (0.0, 0.0)
    assert got[up] == pytest.approx((0.25, 0.25))
    lo, hi = got[share]  # 0.25 over the resample's mean: positive, around 0.25 / 0.5
    assert 0 < lo <= hi and 0.3 < (lo + hi) / 2 < 0.7


def test_seeds_are_averaged_before_the_difference():
    """For a metric linear in the predictions, two seeds give the interval of their
    per-example average (the same resamples: the same seed)."""
    rng = random.Random(5)
    a1, a2, b = ([rng.gauss(0, 1) for _ in range(40)] for _ in range(3))
    avg = [(x + y) / 2 for x, y in zip(a1, a2)]
    c = Comparison("a", "b", "mean")
    two = paired_bootstrap(_mean, {"a": [a1, a2], "b": [b]}, [c], 40, resamples=50, seed=9)
    one = paired_bootstrap(_mean, {"a": [avg], "b": [b]}, [c], 40, resamples=50, seed=9)
    assert two[c] == pytest.approx(one[c])


def test_a_mean_difference_matches_the_normal_approximation():
    rng = random.Random(11)
    n = 400
    diff = [rng.gauss(0.1, 1.0) for _ in range(n)]
    c = Comparison("a", "zero", "mean")
    lo, hi = paired_bootstrap(
        _mean, {"a": [diff], "zero": [[0.0] * n]}, [c], n, resamples=1000, seed=1
    )[c]
    mean = sum(diff) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in diff) / (n - 1))
    half = 1.96 * sd / math.sqrt(n)
    assert lo < mean < hi
    assert hi - lo == pytest.approx(2 * half, rel=0.15)
    assert (lo + hi) / 2 == pytest.approx(mean, abs=0.2 * half)


def test_bad_input_is_refused():
    c = Comparison("a", "b", "mean")
    with pytest.raises(ValueError, match="'b': no predictions"):
        paired_bootstrap(_mean, {"a": [[1.0, 2.0]]}, [c], 2)
    with pytest.raises(ValueError, match=r"'a': predictions for \[1, 2\] examples, expected 2"):
        paired_bootstrap(_mean, {"a": [[1.0, 2.0], [1.0]], "b": [[0.0, 0.0]]}, [c], 2)
    with pytest.raises(ValueError, match="resamples"):
        paired_bootstrap(_mean, {"a": [[1.0]], "b": [[0.0]]}, [c], 1, resamples=1)
    with pytest.raises(ValueError, match="at least one example"):
        paired_bootstrap(_mean, {"a": [[]], "b": [[]]}, [c], 0)
