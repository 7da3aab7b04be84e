"""The item index (item -> code tokens), the scheme registry, and how codes are made unique.

A scheme gives every catalogue item a *base code*; base codes may collide (items in the same
leaf cluster, items with the same semantic code). ``build_index`` then makes codes unique in
one of two ways, both deterministic:

- ``suffix``: every code gets the item's own token ``<item_N>`` (the hybrid CID+IID /
  SemID+IID codes of Hua et al. 2023);
- otherwise each group of colliding items gets one more level, numbered in the order of the
  items' ids (TIGER's extra code), and items with a unique base code are left as they are.

Schemes see a ``SchemeInput``: the catalogue, the *training* sequences and the item text
(title and description; never the category labels the category task holds out). No
validation or test target ever reaches them.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from p5rec.config import ConfigError, IndexConfig, config_hash, to_dict

__all__ = [
    "ItemIndex",
    "SCHEMES",
    "SchemeInput",
    "build_index",
    "item_token",
    "level_token",
    "register_scheme",
]

LEVEL_NAMES = "abcdefghijklmnopqrstuvwxyz"


def level_token(level: int, value: int) -> str:
    """Position-specific token (``<a_3>`` at the first level, ``<b_3>`` at the second): as
    in TIGER, a code is never ambiguous and the model can tell levels apart."""
    if level >= len(LEVEL_NAMES):
        raise ValueError(f"item codes are limited to {len(LEVEL_NAMES)} levels")
    return f"<{LEVEL_NAMES[level]}_{value}>"


def item_token(number: int) -> str:
    """The token that belongs to one item only (atomic IDs and the unique suffix)."""
    return f"<item_{number}>"


@dataclass(frozen=True)
class SchemeInput:
    """What a scheme may read: the catalogue (sorted ids), training sequences, item text."""

    items: list[str]
    train_sequences: list[list[str]]
    texts: dict[str, str] = field(default_factory=dict)  # item -> title and text


Scheme = Callable[[SchemeInput, IndexConfig], "SchemeResult"]


@dataclass
class SchemeResult:
    """Base codes (may collide) and scheme-specific facts for the report."""

    codes: dict[str, tuple[str, ...]]
    details: dict = field(default_factory=dict)


SCHEMES: dict[str, Scheme] = {}


def register_scheme(name: str) -> Callable[[Scheme], Scheme]:
    def decorate(fn: Scheme) -> Scheme:
        SCHEMES[name] = fn
        return fn

    return decorate


@dataclass
class ItemIndex:
    """Maps each item to a tuple of item-token strings, and back.

    ``meta`` records how the index was made: the index config and its hash, the dataset
    fingerprint, and the build report (tokens added, code lengths, collisions resolved,
    build time).
    """

    scheme: str
    codes: dict[str, tuple[str, ...]]
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._by_code: dict[tuple[str, ...], str] = {}
        for item, code in self.codes.items():
            if not code:
                raise ValueError(f"item index ({self.scheme}): item {item!r} has an empty code")
            other = self._by_code.setdefault(code, item)
            if other != item:
                raise ValueError(
                    f"item index ({self.scheme}): items {other!r} and {item!r} share the code "
                    f"{''.join(code)}"
                )

    @property
    def tokens(self) -> list[str]:
        """Every item token, sorted, to add to the tokenizer."""
        return sorted({t for code in self.codes.values() for t in code})

    @property
    def report(self) -> dict:
        return self.meta.get("report", {})

    def describe(self) -> str:
        """One line: the scheme and its build report."""
        r = self.report
        suffix = " + item suffix" if self.meta.get("config", {}).get("suffix") else ""
        return (
            f"{self.scheme}{suffix}, {r.get('items')} items, {r.get('tokens_added')} tokens, "
            f"code length {r.get('code_length')} (mean {r.get('mean_code_length')}), "
            f"{r.get('collisions_resolved')} collisions resolved, "
            f"built in {r.get('build_seconds')} s"
        )

    def text(self, item: str) -> str:
        """The item as it appears in prompts and targets."""
        try:
            return "".join(self.codes[item])
        except KeyError:
            raise KeyError(f"item {item!r} is not in the item index") from None

    def item_of(self, code: Sequence[str]) -> str | None:
        """The item with this code, or None if no item has it."""
        return self._by_code.get(tuple(code))

    def check_matches(self, cfg: IndexConfig, fingerprint: str | None, where: str) -> None:
        """Raise if this saved index was built with another index config or dataset."""
        saved = self.meta.get("config_hash")
        if saved is not None and saved != config_hash(cfg):
            raise ConfigError(
                f"{where}: the item index was built with another index config "
                f"(hash {saved}, this config's is {config_hash(cfg)})"
            )
        made_on = self.meta.get("data_fingerprint")
        if made_on is not None and fingerprint is not None and made_on != fingerprint:
            raise ConfigError(
                f"{where} is not the dataset the item index was built on "
                f"(fingerprint {fingerprint}, index built on {made_on})"
            )

    def save(self, path: str | Path) -> None:
        blob = {
            "scheme": self.scheme,
            **self.meta,
            "codes": {k: list(v) for k, v in self.codes.items()},
        }
        Path(path).write_text(json.dumps(blob, indent=0), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> ItemIndex:
        blob = json.loads(Path(path).read_text(encoding="utf-8"))
        codes = blob.pop("codes")
        scheme = blob.pop("scheme")
        return cls(scheme, {k: tuple(v) for k, v in codes.items()}, blob)


def make_unique(
    codes: dict[str, tuple[str, ...]], items: Sequence[str], suffix: bool
) -> tuple[dict[str, tuple[str, ...]], int]:
    """Unique codes from base codes; returns them and how many items had a shared base code.

    ``items`` fixes the order (sorted ids): the item number of the suffix token, and the
    number each colliding item gets within its group. The extra level skips values that
    longer base codes already use after the group's code, and an empty base code always
    gets one, so no two items end up with the same code.
    """
    groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for item in items:
        groups[codes[item]].append(item)
    collided = sum(len(g) for g in groups.values() if len(g) > 1)
    if suffix:
        return {item: (*codes[item], item_token(n)) for n, item in enumerate(items)}, collided
    taken: dict[tuple[str, ...], set[str]] = defaultdict(set)  # prefix -> next tokens in use
    for code in groups:
        for j in range(len(code)):
            taken[code[:j]].add(code[j])
    unique = {}
    for code, members in groups.items():
        if len(members) == 1 and code:
            unique[members[0]] = code
            continue
        value = 0
        for item in members:
            while level_token(len(code), value) in taken[code]:
                value += 1
            unique[item] = (*code, level_token(len(code), value))
            value += 1
    return {item: unique[item] for item in items}, collided


def build_index(data: SchemeInput, cfg: IndexConfig, fingerprint: str | None = None) -> ItemIndex:
    """Fit the configured scheme on the catalogue and the training sequences only."""
    if cfg.scheme not in SCHEMES:
        raise ValueError(f"index.scheme {cfg.scheme!r} is unknown; known: {sorted(SCHEMES)}")
    if not data.items:
        raise ValueError("index: the catalogue is empty")
    items = sorted(data.items)
    if items != list(data.items):
        data = SchemeInput(items, data.train_sequences, data.texts)
    start = time.perf_counter()
    result = SCHEMES[cfg.scheme](data, cfg)
    missing = [i for i in items if i not in result.codes]
    if missing:
        raise ValueError(f"index.scheme {cfg.scheme!r} gave no code to item {missing[0]!r}")
    codes, collided = make_unique(result.codes, items, cfg.suffix)
    seconds = time.perf_counter() - start
    lengths = [len(c) for c in codes.values()]
    report = {
        "items": len(items),
        "tokens_added": len({t for c in codes.values() for t in c}),
        "code_length": max(lengths),
        "mean_code_length": round(sum(lengths) / len(lengths), 3),
        "collisions_resolved": collided,
        "resolved_by": "suffix" if cfg.suffix else "extra level",
        "build_seconds": round(seconds, 3),
        **result.details,
    }
    meta = {
        "config": to_dict(cfg),
        "config_hash": config_hash(cfg),
        "data_fingerprint": fingerprint,
        "report": report,
    }
    return ItemIndex(cfg.scheme, codes, meta)
