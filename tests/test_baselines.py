import pytest

from p5rec.baselines import GlobalMean, Majority, Popularity


def test_popularity_order_ties_and_exclude():
    pop = Popularity(["b", "a", "b", "c", "a", "b"])
    assert pop.top(3) == ["b", "a", "c"]
    assert pop.top(2, exclude={"b"}) == ["a", "c"]
    assert pop.top(10) == ["b", "a", "c"]  # shorter than k: only real items
    assert Popularity(["z", "y"]).top(2) == ["y", "z"]  # ties by id


def test_global_mean_and_majority():
    assert GlobalMean([1, 2, 3, 5]).predict(2) == [2.75, 2.75]
    with pytest.raises(ValueError):
        GlobalMean([])
    assert Majority(["x", "y", "y", "x", "z"]).label == "x"  # tie between x and y: by text
    assert Majority(["pos", "neg", "pos"]).predict(2) == ["pos", "pos"]
