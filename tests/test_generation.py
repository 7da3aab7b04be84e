import math

import pytest
import torch

from p5rec.generation import Engine, TrieConstraint
from p5rec.indexing import PrefixTrie
from p5rec.modeling import load_trained


def test_trie_constraint_masks_and_never_empties():
    trie = PrefixTrie([[5, 6], [5, 7], [8, 6]], end_id=1)
    proc = TrieConstraint(trie, start=1)
    ids = torch.tensor(
        [
            [0],
            [
                0,
            ],
            [0],
        ]
    )  # (beams, cur_len): only the start token
    out = proc(ids, torch.zeros(3, 10))
    assert torch.isfinite(out[0]).nonzero().flatten().tolist() == [5, 8]
    ids = torch.tensor([[0, 5], [0, 8], [0, 9]])  # [0, 9] has left the trie
    out = proc(ids, torch.zeros(3, 10))
    assert torch.isfinite(out[0]).nonzero().flatten().tolist() == [6, 7]
    assert torch.isfinite(out[1]).nonzero().flatten().tolist() == [6]
    assert torch.isfinite(out[2]).nonzero().flatten().tolist() == [1]  # may only end


@pytest.fixture(scope="module")
def engine(tiny_run):
    model, tok, index = load_trained(tiny_run)
    return Engine(model, tok, index, device="cpu")


SOURCES = [
    "Items interacted with so far: <a_1><b_2>. Which item comes next?",
    "hello",
    "Given the purchase history of user_0003: <a_0><b_0> <a_3><b_1>, what is next?",
]


def test_rank_returns_real_distinct_items(engine):
    catalogue = set(engine.index.codes)
    for beams in (1, 5, 10):
        for ranked in engine.rank(SOURCES, beams):
            items = [i for i, _ in ranked]
            assert len(items) == beams
            assert len(set(items)) == len(items)
            assert set(items) <= catalogue
            scores = [s for _, s in ranked]
            assert scores == sorted(scores, reverse=True)
            assert all(math.isfinite(s) for s in scores)


def test_beam_over_whole_catalogue_matches_exact_scores(engine):
    """With as many beams as items, beam search is exact: same order as scoring every item."""
    items = sorted(engine.index.codes)
    ranked = engine.rank(SOURCES[:1], len(items))[0]
    assert {i for i, _ in ranked} == set(items)
    exact = dict(zip(items, engine.score_items(SOURCES[:1], [items])[0]))
    for item, score in ranked:
        assert score == pytest.approx(exact[item], abs=1e-4)


def test_generate_text_returns_strings(engine):
    out = engine.generate_text(["What star rating will user_0001 give?"], 4)
    assert len(out) == 1 and isinstance(out[0], str)


def test_missing_item_tokens_are_an_error(tiny_run):
    model, tok, index = load_trained(tiny_run)
    index.codes["ghost"] = ("<zz_1>",)
    with pytest.raises(ValueError, match="missing from the tokenizer"):
        Engine(model, tok, index.__class__(index.scheme, index.codes), device="cpu")
