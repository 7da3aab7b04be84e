from dataclasses import replace

import pytest

from p5rec.config import ConfigError, IndexConfig
from p5rec.indexing import SCHEMES, ItemIndex, SchemeInput, build_index, register_scheme
from p5rec.indexing.index import SchemeResult, make_unique

ITEMS = [f"i{n:02d}" for n in range(50)]


def build(items=ITEMS, sequences=(), texts=None, **cfg):
    return build_index(
        SchemeInput(list(items), [list(s) for s in sequences], texts or {}), IndexConfig(**cfg)
    )


def test_random_codes_distinct_deterministic_position_specific():
    a = build(tokens_per_item=2)
    b = build_index(SchemeInput(list(reversed(ITEMS)), []), IndexConfig(tokens_per_item=2))
    assert a.codes == b.codes  # independent of input order
    assert len(set(a.codes.values())) == 50
    assert all(c[0].startswith("<a_") and c[1].startswith("<b_") for c in a.codes.values())
    assert len(a.tokens) <= 2 * 8  # codebook of ceil(sqrt(50)) = 8 per level
    assert build(tokens_per_item=2, seed=1).codes != a.codes
    assert a.item_of(a.codes["i03"]) == "i03" and a.item_of(("<a_99>",)) is None
    assert a.text("i03") == "".join(a.codes["i03"])


def test_capacity_error_unknown_scheme_and_config_checks():
    with pytest.raises(ValueError, match="need more codes"):
        build(ITEMS[:10], codebook_size=3)
    with pytest.raises(ValueError, match=r"unknown; known: \['atomic', 'collaborative'"):
        build(["a"], scheme="nope")
    with pytest.raises(ConfigError, match="already one token per item"):
        IndexConfig(scheme="atomic", suffix=True)
    with pytest.raises(ConfigError, match="codebook_size"):
        IndexConfig(codebook_size=1)


def test_report_and_save_load_keep_config_hash(tmp_path):
    idx = build(["a", "b", "c"], tokens_per_item=3)
    report = idx.report
    assert report["items"] == 3 and report["code_length"] == 3
    assert report["tokens_added"] == len(idx.tokens) and report["collisions_resolved"] == 0
    assert report["build_seconds"] >= 0
    idx.save(tmp_path / "i.json")
    back = ItemIndex.load(tmp_path / "i.json")
    assert back.codes == idx.codes and back.meta == idx.meta
    back.check_matches(IndexConfig(tokens_per_item=3), None, "run")
    with pytest.raises(ValueError, match="another index config"):
        back.check_matches(IndexConfig(tokens_per_item=2), None, "run")


def test_duplicate_and_empty_codes_rejected():
    with pytest.raises(ValueError, match="items 'a' and 'b' share the code <a_1>"):
        ItemIndex("x", {"a": ("<a_1>",), "b": ("<a_1>",)})
    with pytest.raises(ValueError, match="'a' has an empty code"):
        ItemIndex("x", {"a": ()})


def test_extra_level_skips_values_longer_codes_use():
    """Two items share <a_1>, and a third already has <a_1><b_0>: the pair gets b_1, b_2."""
    base = {"a": ("<a_1>",), "b": ("<a_1>",), "c": ("<a_1>", "<b_0>"), "d": ()}
    codes, collided = make_unique(base, ["a", "b", "c", "d"], suffix=False)
    assert codes["a"] == ("<a_1>", "<b_1>") and codes["b"] == ("<a_1>", "<b_2>")
    assert codes["c"] == ("<a_1>", "<b_0>")
    assert codes["d"] == ("<a_0>",)  # an empty base code always gets a token (a_1 is taken)
    assert collided == 2
    ItemIndex("x", codes)  # all distinct and non-empty


@pytest.mark.parametrize("scheme", ["random", "atomic", "sequential", "collaborative", "semantic"])
def test_one_item_catalogue(scheme):
    idx = build(["only"], [["only"]], {"only": "a lonely thing"}, scheme=scheme)
    assert len(idx.codes["only"]) >= 1


def test_random_codes_from_a_huge_codebook():
    idx = build(tokens_per_item=8, codebook_size=256)  # 2^64 codes: sampled sparsely
    assert len(set(idx.codes.values())) == 50 and all(len(c) == 8 for c in idx.codes.values())
    assert build(tokens_per_item=8, codebook_size=256).codes == idx.codes


def test_collisions_resolved_deterministically():
    base = {"c": ("<a_1>",), "a": ("<a_1>",), "b": ("<a_2>",), "d": ("<a_1>",)}
    items = ["a", "b", "c", "d"]
    codes, collided = make_unique(base, items, suffix=False)
    # the colliding group gets one more level, numbered in item-id order; "b" is untouched
    assert codes == {
        "a": ("<a_1>", "<b_0>"),
        "b": ("<a_2>",),
        "c": ("<a_1>", "<b_1>"),
        "d": ("<a_1>", "<b_2>"),
    }
    assert collided == 3
    codes, collided = make_unique(base, items, suffix=True)
    assert codes["a"] == ("<a_1>", "<item_0>") and codes["b"] == ("<a_2>", "<item_1>")
    assert collided == 3 and len(set(codes.values())) == 4

    @register_scheme("constant")
    def constant(data, cfg):
        return SchemeResult({item: ("<a_0>",) for item in data.items})

    try:
        idx = build(["z", "y", "x"], scheme="constant")
        assert idx.codes == {
            "x": ("<a_0>", "<b_0>"),
            "y": ("<a_0>", "<b_1>"),
            "z": ("<a_0>", "<b_2>"),
        }
        assert idx.report["collisions_resolved"] == 3
    finally:
        del SCHEMES["constant"]


def test_atomic_one_token_per_item():
    idx = build(scheme="atomic")
    assert all(len(c) == 1 for c in idx.codes.values()) and len(idx.tokens) == 50
    assert idx.codes["i00"] == ("<item_0>",)


def test_sequential_numbers_items_by_first_training_appearance():
    seqs = [["i07", "i03", "i07"], ["i03", "i11", "i01"]]
    idx = build(ITEMS[:12], seqs, scheme="sequential")
    # i07 -> 1, i03 -> 2, i11 -> 3, i01 -> 4, then the unseen items in id order: i00 -> 5 ...
    assert idx.codes["i07"] == ("<a_1>",) and idx.codes["i03"] == ("<a_2>",)
    assert idx.codes["i01"] == ("<a_4>",) and idx.codes["i00"] == ("<a_5>",)
    assert idx.codes["i10"] == ("<a_1>", "<b_2>")  # number 12: extends item 1's code
    assert idx.report["items_not_in_training"] == 8
    assert build(ITEMS[:12], seqs, scheme="sequential", codebook_size=2).codes["i07"] == ("<a_1>",)


GROUPS = [[f"g{g}_{n}" for n in range(10)] for g in range(4)]


def grouped_sequences():
    """Users who only ever buy within one group: four clear co-occurrence blocks."""
    seqs = []
    for members in GROUPS:
        for u in range(12):
            seqs.append([members[(u + k * 3) % 10] for k in range(5)])
    return seqs


def test_collaborative_codes_follow_cooccurrence():
    items = [i for g in GROUPS for i in g]
    idx = build(items, grouped_sequences(), scheme="collaborative", codebook_size=4, leaf_size=10)
    first = {g: {idx.codes[i][0] for i in members} for g, members in enumerate(GROUPS)}
    assert all(len(tokens) == 1 for tokens in first.values())  # a group shares its prefix
    assert len(set.union(*first.values())) == 4  # and groups do not share one
    assert idx.report["collisions_resolved"] == 40  # leaf members told apart by a level
    assert all(len(c) == 2 for c in idx.codes.values())
    again = build(items, grouped_sequences(), scheme="collaborative", codebook_size=4, leaf_size=10)
    assert again.codes == idx.codes
    suffixed = build(
        items,
        grouped_sequences(),
        scheme="collaborative",
        codebook_size=4,
        leaf_size=10,
        suffix=True,
    )
    assert all(c[-1].startswith("<item_") for c in suffixed.codes.values())
    assert {c[0] for c in suffixed.codes.values()} == set.union(*first.values())


def test_collaborative_handles_items_without_cooccurrence():
    items = [i for g in GROUPS for i in g] + [f"lonely{n}" for n in range(9)]
    idx = build(items, grouped_sequences(), scheme="collaborative", codebook_size=4, leaf_size=4)
    assert len(set(idx.codes.values())) == len(items)
    assert idx.report["items_without_cooccurrence"] == 9


def test_semantic_codes_from_text_share_prefixes_within_a_topic():
    topics = ["red leather shoe", "blue cotton hat", "green glass vase", "black steel knife"]
    texts = {i: f"{topics[g]} model {i}" for g, members in enumerate(GROUPS) for i in members}
    items = sorted(texts)
    idx = build(items, [], texts, scheme="semantic", codebook_size=4, embedding_dim=8)
    assert idx.report["embedding_source"] == "tfidf-svd"
    for members in GROUPS:
        assert len({idx.codes[i][0] for i in members}) == 1
    assert len({idx.codes[g[0]][0] for g in GROUPS}) == 4
    assert len(set(idx.codes.values())) == len(items)
    assert build(items, [], texts, scheme="semantic", codebook_size=4, embedding_dim=8).codes == (
        idx.codes
    )


def test_semantic_falls_back_to_collaborative_embeddings_without_text():
    items = [i for g in GROUPS for i in g]
    idx = build(items, grouped_sequences(), scheme="semantic", codebook_size=4)
    assert idx.report["embedding_source"] == "collaborative"
    for members in GROUPS:
        assert len({idx.codes[i][0] for i in members}) == 1
    with pytest.raises(ValueError, match="no item has a title or text"):
        build(items, grouped_sequences(), scheme="semantic", semantic_source="text")


def test_semantic_with_a_local_sentence_embedding_model(tmp_path):
    from transformers import BertConfig, BertModel, BertTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "red", "blue", "shoe", "hat"]
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt")).save_pretrained(tmp_path / "m")
    config = BertConfig(
        vocab_size=len(words),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )
    BertModel(config).save_pretrained(tmp_path / "m")
    texts = {f"i{n}": ["red shoe", "blue hat"][n % 2] for n in range(8)}
    idx = build(
        sorted(texts), [], texts, scheme="semantic", codebook_size=2, embedder=str(tmp_path / "m")
    )
    assert idx.report["embedding_source"].startswith("model:")
    assert len({idx.codes[i][0] for i in ("i0", "i2", "i4", "i6")}) == 1
    with pytest.raises(FileNotFoundError, match="not a model directory"):
        build(sorted(texts), [], texts, scheme="semantic", embedder=str(tmp_path / "none"))


def test_index_is_fitted_on_training_sequences_only(tiny_cfg, tiny_data, monkeypatch):
    from p5rec.data.dataset import load_dataset
    from p5rec.training import build_context

    seen = {}

    def recording(data, cfg):
        seen["sequences"] = [list(s) for s in data.train_sequences]
        seen["texts"] = dict(data.texts)
        return SCHEMES["random"](data, cfg)

    monkeypatch.setitem(SCHEMES, "recording", recording)
    cfg = replace(tiny_cfg, index=IndexConfig(scheme="recording"))
    build_context(cfg, tiny_data)
    corpus, _, _ = load_dataset(tiny_data)
    # exactly s1..s(n-2) of every user: no validation or test target reaches the index
    expected = sorted(seq[:-2] for seq in corpus.sequences().values())
    assert sorted(seen["sequences"]) == expected
    # titles and texts, never the category labels the category task holds out
    assert any(item.categories for item in corpus.items.values())
    assert seen["texts"] == {
        i: " ".join(p for p in (item.title, item.text) if p) for i, item in corpus.items.items()
    }
