"""ID schemes that need no model of the items: random, atomic and sequential codes."""

from __future__ import annotations

import math
import random

from p5rec.config import IndexConfig
from p5rec.indexing.index import SchemeInput, SchemeResult, item_token, level_token, register_scheme


def fitting_codebook(num_items: int, levels: int) -> int:
    """The smallest codebook size whose ``levels``-token codes can number every item."""
    size = max(2, math.ceil(num_items ** (1.0 / levels)))
    while size**levels < num_items:  # guard against float rounding in the root
        size += 1
    return size


def digits(number: int, base: int, width: int | None = None) -> list[int]:
    """``number`` in base ``base``, most significant digit first (zero-padded to ``width``)."""
    out = []
    while number or not out:
        number, d = divmod(number, base)
        out.append(d)
    if width is not None:
        out.extend([0] * (width - len(out)))
    return out[::-1]


def distinct_numbers(capacity: int, count: int, rng: random.Random) -> list[int]:
    """``count`` distinct random numbers below ``capacity`` (any size), in draw order."""
    if capacity <= 4 * count:
        return rng.sample(range(capacity), count)
    seen: dict[int, None] = {}
    while len(seen) < count:  # sparse: rejection draws rarely repeat
        seen.setdefault(rng.randrange(capacity))
    return list(seen)


@register_scheme("random")
def random_codes(data: SchemeInput, cfg: IndexConfig) -> SchemeResult:
    """Random distinct codes of ``tokens_per_item`` tokens; ignores interactions entirely."""
    levels = cfg.tokens_per_item
    size = cfg.codebook_size or fitting_codebook(len(data.items), levels)
    capacity = size**levels
    if capacity < len(data.items):
        raise ValueError(
            f"index: {len(data.items)} items need more codes than codebook_size={size} "
            f"and tokens_per_item={levels} give ({capacity})"
        )
    numbers = distinct_numbers(capacity, len(data.items), random.Random(cfg.seed))
    codes = {
        item: tuple(level_token(lv, d) for lv, d in enumerate(digits(n, size, levels)))
        for item, n in zip(data.items, numbers)
    }
    return SchemeResult(codes, {"codebook_size": size})


@register_scheme("atomic")
def atomic_codes(data: SchemeInput, cfg: IndexConfig) -> SchemeResult:
    """One new token per item (numbered in sorted-id order)."""
    return SchemeResult({item: (item_token(n),) for n, item in enumerate(data.items)})


@register_scheme("sequential")
def sequential_codes(data: SchemeInput, cfg: IndexConfig) -> SchemeResult:
    """P5's sequential indexing, fitted on the training sequences only.

    Items are numbered 1, 2, ... in order of first appearance in the training sequences
    (items that never appear there follow, in id order), and the number is written as
    digit tokens in base ``codebook_size`` (10 when automatic) without leading zeros, so
    item 12's code extends item 1's exactly as P5's tokenised numbers do.
    """
    base = cfg.codebook_size or 10
    order = {}
    for seq in data.train_sequences:
        for item in seq:
            order.setdefault(item, len(order))
    unseen = [i for i in data.items if i not in order]
    for item in unseen:
        order[item] = len(order)
    codes = {
        item: tuple(level_token(lv, d) for lv, d in enumerate(digits(order[item] + 1, base)))
        for item in data.items
    }
    return SchemeResult(codes, {"base": base, "items_not_in_training": len(unseen)})
