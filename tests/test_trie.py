"""The array trie against a plain reference: allowed sets, item lookup, masks (hypothesis)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from p5rec.trie import ItemTrie

END = 1


def reference_allowed(codes, prefix):
    """Next tokens after ``prefix`` over codes + END, or None when no code starts so."""
    nxt = {
        (*c, END)[len(prefix)]
        for c in codes
        if (*c, END)[: len(prefix)] == tuple(prefix) and len(prefix) <= len(c)
    }
    return sorted(nxt) if nxt else None


def test_small_trie():
    trie = ItemTrie([[5, 6], [5, 7], [8, 6], [5]], end_id=END)
    assert trie.allowed([]) == [5, 8]
    assert trie.allowed([5]) == [END, 6, 7]  # [5] is an item and a prefix of two others
    assert trie.allowed([5, 7]) == [END]
    assert trie.allowed([5, 7, END]) == []  # a finished code
    assert trie.allowed([9]) is None
    assert [5, 6] in trie and [5] in trie and [8] not in trie
    assert trie.max_length == 3 and trie.num_items == 4
    generated = torch.tensor(
        [
            [5, 6, END, 0],
            [5, END, 0, 0],
            [8, END, 0, 0],
            [9, END, 0, 0],
            [5, 7, END, 3],
            [5, 6, 0, 0],
        ]
    )
    assert trie.items_of(generated).tolist() == [0, 3, -1, -1, 1, -1]


def test_mask_never_empty():
    trie = ItemTrie([[5, 6], [5, 7], [8, 6]], end_id=END)
    state = trie.walk(torch.tensor([[5], [8], [9], [5]]))
    mask = trie.allowed_mask(state, 10)
    assert [row.nonzero().flatten().tolist() for row in mask] == [[6, 7], [6], [END], [6, 7]]
    leaf = trie.walk(torch.tensor([[5, 6, END]]))
    assert trie.allowed_mask(leaf, 10)[0].nonzero().flatten().tolist() == [END]
    wide = torch.tensor([[5, 50]])  # a token beyond every code token: left the trie
    assert trie.walk(wide).tolist() == [-1]


@pytest.mark.parametrize(
    "codes, message",
    [
        ([[5, 6], [5, 6]], "same code"),
        ([[5, END]], "end token"),
        ([[]], "empty code"),
        ([], "at least one"),
        ([[5, -3]], "only as padding"),
        ([[5, -1, 6]], "after their last token only"),
    ],
)
def test_bad_codes(codes, message):
    with pytest.raises(ValueError, match=message):
        ItemTrie(codes, end_id=END)
    with pytest.raises(ValueError, match="end token id must be >= 0"):
        ItemTrie([[5]], end_id=-1)


codes_strategy = st.lists(
    st.lists(st.integers(2, 9), min_size=1, max_size=4).map(tuple),
    min_size=1,
    max_size=30,
    unique=True,
)


@settings(max_examples=60, deadline=None)
@given(codes=codes_strategy, probes=st.lists(st.lists(st.integers(0, 10), max_size=5), max_size=20))
def test_trie_matches_reference(codes, probes):
    trie = ItemTrie([list(c) for c in codes], end_id=END)
    prefixes = {c[:j] for c in codes for j in range(len(c) + 1)} | {tuple(p) for p in probes}
    for prefix in prefixes:
        expected = reference_allowed(codes, prefix)
        got = trie.allowed(prefix)
        assert got == expected or (expected is None and got == []), (prefix, got, expected)
    # the batched mask agrees row by row (one call per prefix length), and is never empty
    for length in {len(p) for p in prefixes}:
        rows = sorted(p for p in prefixes if len(p) == length)
        state = trie.walk(torch.tensor(rows, dtype=torch.long).view(len(rows), length))
        mask = trie.allowed_mask(state, 12)
        for prefix, row in zip(rows, mask):
            assert row.nonzero().flatten().tolist() == (reference_allowed(codes, prefix) or [END])
    # every code (then EOS, then padding) spells its own item; a bare prefix spells none
    spelled = [list(c) + [END] + [0] * (4 - len(c)) for c in codes]
    assert trie.items_of(torch.tensor(spelled)).tolist() == list(range(len(codes)))
    assert all(list(c) in trie for c in codes)
    bare = [list(c) + [0] * (5 - len(c)) for c in codes]  # no EOS: not (yet) an item
    assert (trie.items_of(torch.tensor(bare)) == -1).all()
