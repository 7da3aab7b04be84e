import numpy as np
import pytest

from p5rec.data.events import EventBuilder, clean


def _table(rows):
    b = EventBuilder()
    for r in rows:
        b.add(*r)
    return b.table()


def _events(t):
    return [
        (t.users[u], t.items[i], int(ts))
        for u, i, ts in zip(t.user.tolist(), t.item.tolist(), t.timestamp.tolist())
    ]


def test_builder_keeps_text_columns_aligned():
    t = _table([("u", "a", 1), ("u", "b", 2, 4.0, "good"), ("v", "a", 3, None, None, "s")])
    assert t.review == [None, "good", None] and t.summary == [None, None, "s"]
    assert np.isnan(t.rating[0]) and t.rating[1] == 4.0
    assert _table([("u", "a", 1)]).review is None  # no column without text


def test_sort_by_user_then_time_ties_in_input_order_and_sorted_codes():
    t, _ = clean(_table([("u2", "x", 5), ("u1", "b", 3), ("u1", "a", 3), ("u1", "c", 1)]))
    assert _events(t) == [("u1", "c", 1), ("u1", "b", 3), ("u1", "a", 3), ("u2", "x", 5)]
    assert t.users == ["u1", "u2"] and t.items == ["a", "b", "c", "x"]  # dense, sorted ids


@pytest.mark.parametrize(
    "policy, expected, removed",
    [
        ("none", [("u", "a", 1), ("u", "a", 1), ("u", "a", 2)], 0),
        ("exact", [("u", "a", 1), ("u", "a", 2)], 1),
        ("first", [("u", "a", 1)], 2),
        ("last", [("u", "a", 2)], 2),
    ],
)
def test_dedupe_policies(policy, expected, removed):
    t, report = clean(_table([("u", "a", 2), ("u", "a", 1), ("u", "a", 1)]), dedupe=policy)
    assert _events(t) == expected
    assert report["duplicates_removed"] == {"policy": policy, "events": removed}


def test_exact_dedupe_keeps_the_first_input_line():
    t, _ = clean(_table([("u", "a", 1, 5.0), ("u", "a", 1, 2.0)]))
    assert t.rating.tolist() == [5.0]


def test_k_core_iterates_to_a_fixed_point():
    # u1-u3 each rate a, b (a 2-core); u4 rates a and c; c has one event. Removing c leaves
    # u4 with one event, and removing u4 is a second round.
    rows = [
        (u, i, n)
        for n, (u, i) in enumerate(
            [
                ("u1", "a"),
                ("u1", "b"),
                ("u2", "a"),
                ("u2", "b"),
                ("u3", "a"),
                ("u3", "b"),
                ("u4", "a"),
                ("u4", "c"),
            ]
        )
    ]
    t, report = clean(_table(rows), k_core=2)
    assert t.users == ["u1", "u2", "u3"] and t.items == ["a", "b"]
    core = report["k_core"]
    assert core["rounds"] == 2 and core["events_removed"] == 2
    assert core["users_removed"] == 1 and core["items_removed"] == 1
    users = np.bincount(t.user)
    items = np.bincount(t.item)
    assert users.min() >= 2 and items.min() >= 2


def test_unknown_dedupe_policy():
    with pytest.raises(ValueError, match="dedupe must be one of"):
        clean(_table([("u", "a", 1)]), dedupe="sometimes")
