"""Item ID schemes (item -> sequence of item tokens) and the prefix trie over them.

A scheme is chosen by name in the config (``index.scheme``). Every scheme is fitted on the
training split only: it receives the catalogue and the training sequences, never a
validation or test target.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from p5rec.config import IndexConfig

__all__ = ["ItemIndex", "PrefixTrie", "SCHEMES", "build_index"]

LEVEL_NAMES = "abcdefghijklmnopqrstuvwxyz"


@dataclass
class ItemIndex:
    """Maps each item to a tuple of item-token strings, and back.

    Tokens are position-specific (``<a_3>`` at the first level, ``<b_3>`` at the second),
    as in TIGER, so a code is never ambiguous and the model can tell levels apart.
    """

    scheme: str
    codes: dict[str, tuple[str, ...]]

    def __post_init__(self) -> None:
        self._by_code = {code: item for item, code in self.codes.items()}
        if len(self._by_code) != len(self.codes):
            raise ValueError(f"item index ({self.scheme}): two items share a code")

    @property
    def tokens(self) -> list[str]:
        """Every item token, sorted, to add to the tokenizer."""
        return sorted({t for code in self.codes.values() for t in code})

    def text(self, item: str) -> str:
        """The item as it appears in prompts and targets."""
        try:
            return "".join(self.codes[item])
        except KeyError:
            raise KeyError(f"item {item!r} is not in the item index") from None

    def item_of(self, code: Sequence[str]) -> str | None:
        """The item with this code, or None if no item has it."""
        return self._by_code.get(tuple(code))

    def save(self, path: str | Path) -> None:
        blob = {"scheme": self.scheme, "codes": {k: list(v) for k, v in self.codes.items()}}
        Path(path).write_text(json.dumps(blob, indent=0), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> ItemIndex:
        blob = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(blob["scheme"], {k: tuple(v) for k, v in blob["codes"].items()})


def _random_codes(
    items: Sequence[str], train_sequences: Sequence[Sequence[str]], cfg: IndexConfig
) -> dict[str, tuple[str, ...]]:
    """Random distinct codes of ``tokens_per_item`` tokens; ignores interactions entirely."""
    levels = cfg.tokens_per_item
    if levels > len(LEVEL_NAMES):
        raise ValueError(f"index.tokens_per_item must be <= {len(LEVEL_NAMES)}")
    size = cfg.codebook_size
    if size == 0:  # automatic: the smallest codebook that fits every item
        size = max(2, math.ceil(len(items) ** (1.0 / levels)))
        while size**levels < len(items):  # guard against float rounding in the root
            size += 1
    capacity = size**levels
    if capacity < len(items):
        raise ValueError(
            f"index: {len(items)} items need more codes than codebook_size={size} "
            f"and tokens_per_item={levels} give ({capacity})"
        )
    rng = random.Random(cfg.seed)
    numbers = rng.sample(range(capacity), len(items))
    codes = {}
    for item, number in zip(sorted(items), numbers):
        digits = []
        for _ in range(levels):
            number, d = divmod(number, size)
            digits.append(d)
        codes[item] = tuple(f"<{LEVEL_NAMES[lv]}_{d}>" for lv, d in enumerate(reversed(digits)))
    return codes


Scheme = Callable[[Sequence[str], Sequence[Sequence[str]], IndexConfig], dict[str, tuple[str, ...]]]
SCHEMES: dict[str, Scheme] = {"random": _random_codes}


def build_index(
    items: Sequence[str], train_sequences: Sequence[Sequence[str]], cfg: IndexConfig
) -> ItemIndex:
    """Fit the configured scheme on the catalogue and the training sequences only."""
    if cfg.scheme not in SCHEMES:
        raise ValueError(f"index.scheme {cfg.scheme!r} is unknown; known: {sorted(SCHEMES)}")
    if not items:
        raise ValueError("index: the catalogue is empty")
    return ItemIndex(cfg.scheme, SCHEMES[cfg.scheme](items, train_sequences, cfg))


class PrefixTrie:
    """Prefix trie over token-id sequences; ``allowed(prefix)`` lists the next token ids.

    Each sequence ends with ``end_id`` (the EOS token), so a complete code allows only EOS
    and a generated sequence that passed the trie is exactly one stored sequence.
    """

    def __init__(self, sequences: Sequence[Sequence[int]], end_id: int) -> None:
        if not sequences:
            raise ValueError("PrefixTrie needs at least one sequence")
        self.end_id = end_id
        self._next: dict[tuple[int, ...], list[int]] = {}
        children: dict[tuple[int, ...], set[int]] = {}
        for seq in sequences:
            full = (*seq, end_id)
            for t in range(len(full)):
                children.setdefault(tuple(full[:t]), set()).add(full[t])
        self._next = {k: sorted(v) for k, v in children.items()}
        self.max_length = max(len(s) for s in sequences) + 1

    def allowed(self, prefix: Sequence[int]) -> list[int] | None:
        """Token ids allowed after ``prefix``, or None if the prefix left the trie."""
        return self._next.get(tuple(prefix))

    def __contains__(self, sequence: Sequence[int]) -> bool:
        return self._next.get(tuple(sequence)) == [self.end_id]
