import pytest

from p5rec.data.corpus import Corpus, CorpusError, Interaction, Item, sentiment_of


def _corpus(interactions, items=("a", "b")):
    return Corpus({i: Item(i, f"title {i}") for i in items}, list(interactions), name="t")


def test_sorted_by_user_then_time_stable():
    c = _corpus(
        [
            Interaction("u2", "a", 5),
            Interaction("u1", "b", 3),
            Interaction("u1", "a", 3),  # same time as the previous one: input order kept
            Interaction("u1", "b", 1),
        ]
    )
    assert c.sequences() == {"u1": ["b", "b", "a"], "u2": ["a"]}
    assert c.users == ["u1", "u2"]


@pytest.mark.parametrize(
    "event, message",
    [
        (Interaction("u1", "zzz", 1), r"interaction #0 \(user 'u1', item 'zzz'\): field 'item'"),
        (Interaction("", "a", 1), "field 'user' is empty"),
        (Interaction("u1", "a", 1, rating=7.0), r"field 'rating' is 7.0, expected 1.0..5.0"),
        (Interaction("u1", "a", 1, rating=float("nan")), "field 'rating'"),
        (Interaction("u1", "a", 1.5), "field 'timestamp' must be an integer"),
        (Interaction("u1", "a", 1, review=3), "field 'review' must be text"),
    ],
)
def test_validation_names_the_record(event, message):
    with pytest.raises(CorpusError, match=message):
        _corpus([event]).validate()


def test_item_table_errors():
    with pytest.raises(CorpusError, match="item table is empty"):
        Corpus({}, [Interaction("u", "a", 1)]).validate()
    with pytest.raises(CorpusError, match="no interactions"):
        _corpus([]).validate()
    bad = Corpus({"a": Item("b")}, [Interaction("u", "a", 1)])
    with pytest.raises(CorpusError, match="item 'a': field 'id'"):
        bad.validate()
    bad = Corpus({"a": Item("a", categories=("x", ""))}, [Interaction("u", "a", 1)])
    with pytest.raises(CorpusError, match="item 'a': field 'categories'"):
        bad.validate()


def test_save_load_roundtrip(tmp_path):
    c = Corpus(
        {"a": Item("a", "A", "text a", ("X", "Y")), "b": Item("b")},
        [Interaction("u1", "a", 1, 4.0, "nice", "good"), Interaction("u1", "b", 2)],
    )
    c.save(tmp_path)
    again = Corpus.load(tmp_path)
    assert again.items == c.items
    assert again.interactions == c.interactions
    assert again.fingerprint() == c.fingerprint()


def test_load_missing_table(tmp_path):
    with pytest.raises(CorpusError, match="missing interactions.parquet"):
        Corpus.load(tmp_path)


def test_sentiment_of():
    assert [sentiment_of(r) for r in (1, 2, 3, 4, 5)] == [
        "negative",
        "negative",
        "neutral",
        "positive",
        "positive",
    ]
