from p5rec.config import DataConfig, SyntheticConfig
from p5rec.data.corpus import Corpus, Interaction, Item
from p5rec.data.splits import make_splits
from p5rec.data.synthetic import generate


def _corpus():
    items = {f"i{n}": Item(f"i{n}", categories=("c", str(n % 3))) for n in range(30)}
    events = []
    for u in range(6):
        for t in range(5 + u):
            events.append(Interaction(f"u{u}", f"i{(u * 3 + t) % 30}", t, float(1 + t % 5)))
    return Corpus(items, events)


def test_leave_one_out_and_history_cap():
    c = _corpus()
    s = make_splits(c, DataConfig(max_history=3, num_candidates=10))
    seq = c.sequences()["u2"]  # 7 items
    test = [e for e in s.next_item["test"] if e.user == "u2"]
    valid = [e for e in s.next_item["valid"] if e.user == "u2"]
    train = [e for e in s.next_item["train"] if e.user == "u2"]
    assert test[0].target == seq[-1] and test[0].history == tuple(seq[-4:-1])
    assert valid[0].target == seq[-2] and valid[0].history == tuple(seq[-5:-2])
    assert [e.target for e in train] == seq[1:-2]  # targets s2..s(n-2)
    assert train[0].history == (seq[0],)
    assert all(len(e.history) <= 3 for e in s.next_item["train"])
    assert len(s.next_item["test"]) == len(s.next_item["valid"]) == 6


def test_short_users_are_counted():
    items = {"a": Item("a"), "b": Item("b"), "c": Item("c")}
    c = Corpus(items, [Interaction("u", "a", 1), Interaction("u", "b", 2)])
    s = make_splits(c, DataConfig(num_candidates=2))
    assert s.report["users_too_short_for_next_item"] == 1
    assert all(not v for v in s.next_item.values())


def test_review_split_seen_users_items_and_no_holdout_leak():
    c = generate(SyntheticConfig(num_users=60, num_items=60, num_groups=4))
    s = make_splits(c, DataConfig(num_candidates=20))
    train = {c.interactions[n].user for n in s.reviews["train"]}
    train_items = {c.interactions[n].item for n in s.reviews["train"]}
    for split in ("valid", "test"):
        for n in s.reviews[split]:
            assert c.interactions[n].user in train and c.interactions[n].item in train_items
    everything = [n for v in s.reviews.values() for n in v]
    assert len(everything) == len(set(everything))
    held = {idx[-1] for idx in c.event_indices().values()} | {
        idx[-2] for idx in c.event_indices().values()
    }
    assert not held & set(everything)
    total = len(everything)
    assert abs(len(s.reviews["train"]) / total - 0.8) < 0.05


def test_category_split_by_item():
    s = make_splits(_corpus(), DataConfig(num_candidates=10))
    parts = [set(s.category[k]) for k in ("train", "valid", "test")]
    assert sum(len(p) for p in parts) == len({e.item for e in _corpus().interactions})
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])


def test_candidates_fixed_seed_and_never_interacted():
    c = _corpus()
    cfg = DataConfig(num_candidates=10)
    a, b = make_splits(c, cfg), make_splits(c, cfg)
    assert a.candidates == b.candidates
    seqs = c.sequences()
    for split in ("valid", "test"):
        for ex in a.next_item[split]:
            cands = a.candidates[split][ex.user]
            assert len(cands) == 10 and len(set(cands)) == 10 and cands[0] == ex.target
            assert not set(cands[1:]) & set(seqs[ex.user])


def test_too_many_candidates_is_reported_not_fatal():
    s = make_splits(_corpus(), DataConfig(num_candidates=31))
    assert s.candidates == {"valid": {}, "test": {}}
    assert s.report["candidates_catalogue_too_small"] == 1
    assert len(s.next_item["test"]) == 6  # the other splits are still made


def test_dataset_directory_round_trip(tmp_path):
    """Splits written by prepare and read back equal the in-memory ones."""
    from p5rec.data.dataset import load_dataset, write_dataset
    from p5rec.data.events import table_from_corpus
    from p5rec.data.readers import SourceData

    c, cfg = _corpus(), DataConfig(max_history=4, num_candidates=10)
    s = make_splits(c, cfg)
    write_dataset(SourceData(table_from_corpus(c), dict(c.items)), cfg, tmp_path, {"name": "t"})
    corpus, again, manifest = load_dataset(tmp_path)
    assert corpus.interactions == c.interactions
    assert again.next_item == s.next_item and again.reviews == s.reviews
    assert again.candidates == s.candidates and again.category == s.category
    assert manifest["splits"] == s.sizes()


def test_candidates_count_distinct_items_not_events():
    """A user who repeats items still has enough never-interacted items to sample from."""
    import numpy as np

    from p5rec.data.splits import assign_splits

    user = np.array([0, 0, 0, 0, 0, 1, 1, 1], dtype=np.int32)
    item = np.array([0, 1, 0, 1, 0, 2, 3, 2], dtype=np.int32)
    a = assign_splits(
        user, item, np.zeros(8, bool), 2, np.zeros(102, bool), DataConfig(num_candidates=101)
    )
    users, rows = a.candidates["test"]
    assert sorted(users.tolist()) == [0, 1]
    assert a.report["candidates_users_without_enough_negatives"] == 0
    row = rows[users.tolist().index(0)]
    assert row[0] == 0 and not set(row[1:].tolist()) & {0, 1} and len(set(row.tolist())) == 101
