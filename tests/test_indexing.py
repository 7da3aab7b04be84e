import pytest

from p5rec.config import IndexConfig
from p5rec.indexing import SCHEMES, ItemIndex, PrefixTrie, build_index


def test_random_codes_distinct_deterministic_position_specific():
    items = [f"i{n}" for n in range(50)]
    a = build_index(items, [], IndexConfig(tokens_per_item=2))
    b = build_index(list(reversed(items)), [], IndexConfig(tokens_per_item=2))
    assert a.codes == b.codes  # independent of input order
    assert len(set(a.codes.values())) == 50
    assert all(c[0].startswith("<a_") and c[1].startswith("<b_") for c in a.codes.values())
    assert len(a.tokens) <= 2 * 8  # codebook of ceil(sqrt(50)) = 8 per level
    other = build_index(items, [], IndexConfig(tokens_per_item=2, seed=1))
    assert other.codes != a.codes
    assert a.item_of(a.codes["i3"]) == "i3" and a.item_of(("<a_99>",)) is None
    assert a.text("i3") == "".join(a.codes["i3"])


def test_capacity_error_and_unknown_scheme():
    with pytest.raises(ValueError, match="need more codes"):
        build_index([f"i{n}" for n in range(10)], [], IndexConfig(codebook_size=3))
    with pytest.raises(ValueError, match=r"unknown; known: \['random'\]"):
        build_index(["a"], [], IndexConfig(scheme="nope"))


def test_save_load(tmp_path):
    idx = build_index(["a", "b", "c"], [], IndexConfig(tokens_per_item=3))
    idx.save(tmp_path / "i.json")
    assert ItemIndex.load(tmp_path / "i.json").codes == idx.codes


def test_duplicate_codes_rejected():
    with pytest.raises(ValueError, match="share a code"):
        ItemIndex("x", {"a": ("<a_1>",), "b": ("<a_1>",)})


def test_trie():
    trie = PrefixTrie([[5, 6], [5, 7], [8, 6]], end_id=1)
    assert trie.allowed([]) == [5, 8]
    assert trie.allowed([5]) == [6, 7]
    assert trie.allowed([5, 7]) == [1]
    assert trie.allowed([9]) is None
    assert [5, 6] in trie and [5] not in trie
    assert trie.max_length == 3


def test_index_is_fitted_on_training_sequences_only(tiny_cfg, tiny_data, monkeypatch):
    from p5rec.data.dataset import load_dataset
    from p5rec.training import build_context

    seen = {}

    def recording(items, train_sequences, cfg):
        seen["sequences"] = [list(s) for s in train_sequences]
        return SCHEMES["random"](items, train_sequences, cfg)

    monkeypatch.setitem(SCHEMES, "recording", recording)
    cfg = tiny_cfg.__class__(**{**tiny_cfg.__dict__, "index": IndexConfig(scheme="recording")})
    build_context(cfg, tiny_data)
    corpus, _, _ = load_dataset(tiny_data)
    # exactly s1..s(n-2) of every user: no validation or test target reaches the index
    expected = sorted(seq[:-2] for seq in corpus.sequences().values())
    assert sorted(seen["sequences"]) == expected
