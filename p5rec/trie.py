"""The prefix trie over item codes, stored as flat sorted arrays so that walking it and
masking logits are a handful of tensor operations for a whole batch of beams.

Node 0 is the root; every code is stored followed by the end token (EOS), so the node reached
after EOS is a leaf that names exactly one item. An edge is the key ``parent * width + token``
(``width`` = largest token id + 1), kept sorted, so a batch of lookups is one
``searchsorted``. The children of a node are a contiguous run of those keys (CSR layout).

A beam that left the trie (dead) or finished a code (at a leaf) may only emit EOS, so the
allowed set is never empty and beam search cannot escape the catalogue.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["ItemTrie"]


class ItemTrie:
    """Trie over the token-id codes of ``n`` items; item ``r`` is row ``r`` of the codes."""

    def __init__(self, codes: Sequence[Sequence[int]] | np.ndarray, end_id: int) -> None:
        matrix = _padded(codes)
        n, width_in = matrix.shape
        if n == 0:
            raise ValueError("ItemTrie needs at least one code")
        if end_id < 0:
            raise ValueError(f"the end token id must be >= 0, got {end_id}")
        if (matrix < -1).any():
            raise ValueError("token ids must be >= 0 (and -1 only as padding)")
        lengths = (matrix >= 0).sum(axis=1)
        if (lengths == 0).any():
            raise ValueError(f"item {int(np.argmin(lengths))} has an empty code")
        in_code = np.arange(width_in)[None, :] < lengths[:, None]
        if not np.array_equal(matrix >= 0, in_code):
            raise ValueError("codes must be padded with -1 after their last token only")
        if (matrix == end_id).any():
            raise ValueError(f"the end token {end_id} may not occur inside an item code")
        full = np.full((n, width_in + 1), -1, dtype=np.int64)
        full[:, :width_in] = matrix
        full[np.arange(n), lengths] = end_id
        self.end_id = int(end_id)
        self.width = int(full.max()) + 1
        self.max_length = int(lengths.max()) + 1  # tokens to generate, EOS included
        self.num_items = n

        state = np.zeros(n, dtype=np.int64)
        keys, children = [], []
        next_id = 1
        for depth in range(self.max_length):
            rows = np.nonzero(lengths >= depth)[0]  # rows with a token (or EOS) at depth
            key = state[rows] * self.width + full[rows, depth]
            uniq, inverse = np.unique(key, return_inverse=True)
            ids = np.arange(next_id, next_id + len(uniq), dtype=np.int64)
            next_id += len(uniq)
            keys.append(uniq)
            children.append(ids)
            state[rows] = ids[inverse]
        # parents at depth d all have smaller ids than those at d + 1: keys are sorted.
        self.num_nodes = next_id + 1  # + the sink
        self.sink = next_id  # where dead beams and finished codes go: it allows only EOS
        keys.append(np.array([self.sink * self.width + self.end_id]))
        children.append(np.array([self.sink]))
        self._keys = np.concatenate(keys)
        self._child = np.concatenate(children)
        leaf_item = np.full(self.num_nodes, -1, dtype=np.int64)
        if len(np.unique(state)) != n:
            _, first = np.unique(state, return_index=True)
            dup = int(np.setdiff1d(np.arange(n), first)[0])
            raise ValueError(f"item {dup} has the same code as another item")
        leaf_item[state] = np.arange(n)
        self._leaf_item = leaf_item
        parents = self._keys // self.width
        self._ptr = np.searchsorted(parents, np.arange(self.num_nodes + 1))
        self._tokens = self._keys % self.width
        self._tensors: dict[torch.device, dict[str, torch.Tensor]] = {}

    # -- vectorised operations (torch, on the device of the input) ----------------------
    def _on(self, device: torch.device) -> dict[str, torch.Tensor]:
        if device not in self._tensors:
            arrays = {
                "keys": self._keys,
                "child": self._child,
                "ptr": self._ptr,
                "tokens": self._tokens,
                "leaf_item": self._leaf_item,
            }
            self._tensors[device] = {k: torch.from_numpy(v).to(device) for k, v in arrays.items()}
        return self._tensors[device]

    def step(self, state: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
        """Node reached from each node in ``state`` by ``token`` (both (batch,)); -1 when
        there is no such edge or the row had already left the trie."""
        t = self._on(state.device)
        keys = t["keys"]
        token = token.long()
        key = state * self.width + token
        pos = torch.searchsorted(keys, key).clamp_(max=len(keys) - 1)
        hit = (keys[pos] == key) & (state >= 0) & (token >= 0) & (token < self.width)
        return torch.where(hit, t["child"][pos], -1)

    def walk(self, tokens: torch.Tensor, stop_at_leaf: bool = False) -> torch.Tensor:
        """Node reached by each row of ``tokens`` (batch, length); -1 once a row left the trie.

        With ``stop_at_leaf`` a row stays at the leaf it reached (what follows EOS is ignored).
        """
        leaf_item = self._on(tokens.device)["leaf_item"]
        state = torch.zeros(tokens.shape[0], dtype=torch.long, device=tokens.device)
        for j in range(tokens.shape[1]):
            nxt = self.step(state, tokens[:, j])
            if stop_at_leaf:
                nxt = torch.where(leaf_item[state.clamp(min=0)] >= 0, state, nxt)
            state = nxt
        return state

    def item_at(self, state: torch.Tensor) -> torch.Tensor:
        """Item row of each leaf node in ``state``; -1 for any other node or -1."""
        leaf_item = self._on(state.device)["leaf_item"]
        return torch.where(state >= 0, leaf_item[state.clamp(min=0)], -1)

    def allowed_columns(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The tokens allowed after each node in ``state``, compactly: ``columns`` (C,), the
        sorted tokens any row may take, and a boolean (batch, C) of which each row may take.

        Built once per distinct node, then gathered per row; dead rows and leaves allow EOS.
        C is small (one code level's tokens), so masking costs O(batch * C), not the vocab.
        """
        t = self._on(state.device)
        ptr = t["ptr"]
        safe = state.clamp(min=0)
        empty = (state < 0) | (ptr[safe + 1] == ptr[safe])
        state = torch.where(empty, self.sink, state)
        nodes, inverse = torch.unique(state, return_inverse=True)
        starts = ptr[nodes]
        degree = ptr[nodes + 1] - starts
        rows = torch.repeat_interleave(torch.arange(len(nodes), device=state.device), degree)
        first = torch.repeat_interleave(torch.cumsum(degree, 0) - degree, degree)
        edge = torch.repeat_interleave(starts, degree) + torch.arange(len(rows), device=rows.device)
        columns, position = torch.unique(t["tokens"][edge - first], return_inverse=True)
        compact = torch.zeros(len(nodes), len(columns), dtype=torch.bool, device=state.device)
        compact[rows, position] = True
        return columns, compact[inverse]

    def allowed_mask(self, state: torch.Tensor, vocab_size: int) -> torch.Tensor:
        """Boolean (batch, vocab_size): the tokens allowed after each node in ``state``."""
        columns, allowed = self.allowed_columns(state)
        mask = torch.zeros(len(state), vocab_size, dtype=torch.bool, device=state.device)
        mask[:, columns] = allowed
        return mask

    def items_of(self, tokens: torch.Tensor) -> torch.Tensor:
        """Item row spelled by each generated row (code, EOS, then anything), or -1."""
        return self.item_at(self.walk(tokens, stop_at_leaf=True))

    # -- single-prefix helpers (tests, debugging) ------------------------------------------
    def allowed(self, prefix: Sequence[int]) -> list[int] | None:
        """Token ids allowed after ``prefix``, or None if the prefix is not in the trie."""
        node = int(self.walk(torch.tensor(list(prefix), dtype=torch.long).view(1, len(prefix)))[0])
        if node < 0 or node == self.sink:
            return None
        return self._tokens[self._ptr[node] : self._ptr[node + 1]].tolist()

    def __contains__(self, code: Sequence[int]) -> bool:
        """Whether ``code`` (without EOS) is exactly one item's code."""
        return self.allowed([*code, self.end_id]) == []

    @property
    def nbytes(self) -> int:
        """Memory held by the trie's arrays (one copy; device copies add the same again)."""
        arrays = (self._keys, self._child, self._ptr, self._tokens, self._leaf_item)
        return int(sum(a.nbytes for a in arrays))


def _padded(codes: Sequence[Sequence[int]] | np.ndarray) -> np.ndarray:
    """Codes as an int64 matrix padded with -1 on the right."""
    if isinstance(codes, np.ndarray):
        if codes.ndim != 2:
            raise ValueError("codes must be a 2-d array (items x positions), padded with -1")
        return codes.astype(np.int64, copy=False)
    width = max((len(c) for c in codes), default=0)
    matrix = np.full((len(codes), width), -1, dtype=np.int64)
    for r, code in enumerate(codes):
        matrix[r, : len(code)] = code
    return matrix
