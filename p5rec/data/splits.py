"""Evaluation splits of PROTOCOLS.md, computed from a corpus with fixed seeds.

* next item: leave-one-out per user; test target s_n, validation target s_(n-1), training
  targets s_2..s_(n-2), each with its preceding items (history capped at ``max_history``).
* reviews (rating, sentiment, explanation): random 80/10/10 over rated events; every user
  and item of validation/test also appears in training. By default the events that are a
  user's next-item validation or test targets are left out of the review tasks, so no
  review example in multi-task training reveals a held-out next item.
* category: items with categories split 80/10/10 by item.
* candidate ranking: for each validation/test user, the true item plus negatives the user
  never interacted with, sampled with a fixed seed.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

from p5rec.config import DataConfig
from p5rec.data.corpus import Corpus

__all__ = ["SequenceExample", "Splits", "make_splits"]

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class SequenceExample:
    """A next-item example: the user's most recent items (oldest first) and the target."""

    user: str
    history: tuple[str, ...]
    target: str
    position: int  # index of the target in the user's full sequence


@dataclass
class Splits:
    """All task splits of one corpus; JSON-serialisable via ``save``/``load``."""

    next_item: dict[str, list[SequenceExample]]
    reviews: dict[str, list[int]]  # indices into corpus.interactions
    category: dict[str, list[str]]  # item ids
    candidates: dict[str, dict[str, list[str]]]  # split -> user -> candidates (target first)
    report: dict[str, int] = field(default_factory=dict)  # what was moved or left out, counted

    def sizes(self) -> dict[str, dict[str, int]]:
        return {
            "next_item": {s: len(v) for s, v in self.next_item.items()},
            "reviews": {s: len(v) for s, v in self.reviews.items()},
            "category": {s: len(v) for s, v in self.category.items()},
            "candidates": {s: len(v) for s, v in self.candidates.items()},
        }

    def save(self, path: str | Path) -> None:
        blob = {
            "next_item": {s: [asdict(e) for e in v] for s, v in self.next_item.items()},
            "reviews": self.reviews,
            "category": self.category,
            "candidates": self.candidates,
            "report": self.report,
        }
        Path(path).write_text(json.dumps(blob), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Splits:
        blob = json.loads(Path(path).read_text(encoding="utf-8"))
        next_item = {
            s: [
                SequenceExample(e["user"], tuple(e["history"]), e["target"], e["position"])
                for e in v
            ]
            for s, v in blob["next_item"].items()
        }
        return cls(next_item, blob["reviews"], blob["category"], blob["candidates"], blob["report"])


def _next_item(corpus: Corpus, max_history: int) -> tuple[dict[str, list[SequenceExample]], int]:
    out: dict[str, list[SequenceExample]] = {s: [] for s in SPLITS}
    too_short = 0
    for user, seq in corpus.sequences().items():
        n = len(seq)
        if n < 3:  # needs a training, a validation and a test target
            too_short += 1
            continue
        for t in range(1, n):
            split = "test" if t == n - 1 else "valid" if t == n - 2 else "train"
            history = tuple(seq[max(0, t - max_history) : t])
            out[split].append(SequenceExample(user, history, seq[t], t))
    return out, too_short


def _ratio_split(keys: list, ratios: tuple[float, float, float], rng: random.Random) -> dict:
    keys = list(keys)
    rng.shuffle(keys)
    n_train = round(ratios[0] * len(keys))
    n_valid = round(ratios[1] * len(keys))
    return {
        "train": keys[:n_train],
        "valid": keys[n_train : n_train + n_valid],
        "test": keys[n_train + n_valid :],
    }


def _reviews(corpus: Corpus, cfg: DataConfig, report: dict[str, int]) -> dict[str, list[int]]:
    held_out: set[int] = set()
    if cfg.exclude_holdout_from_reviews:
        for idx in corpus.event_indices().values():
            if len(idx) >= 3:
                held_out.update(idx[-2:])
    pool = [
        n for n, e in enumerate(corpus.interactions) if e.rating is not None and n not in held_out
    ]
    report["reviews_left_out_next_item_holdout"] = sum(
        1 for n in held_out if corpus.interactions[n].rating is not None
    )
    split = _ratio_split(pool, cfg.review_split, random.Random(cfg.split_seed))
    users = {corpus.interactions[n].user for n in split["train"]}
    items = {corpus.interactions[n].item for n in split["train"]}
    moved = 0
    for name in ("valid", "test"):
        keep = []
        for n in split[name]:
            e = corpus.interactions[n]
            if e.user in users and e.item in items:
                keep.append(n)
            else:  # would be unseen in training: move it there (and count it)
                split["train"].append(n)
                users.add(e.user)
                items.add(e.item)
                moved += 1
        split[name] = keep
    report["reviews_moved_to_train_unseen"] = moved
    return {s: sorted(v) for s, v in split.items()}


def _candidates(
    corpus: Corpus, next_item: dict[str, list[SequenceExample]], num: int, seed: int
) -> dict[str, dict[str, list[str]]]:
    catalogue = sorted(corpus.items)
    seqs = corpus.sequences()
    if num > len(catalogue):
        raise ValueError(f"data.num_candidates={num} exceeds the catalogue size {len(catalogue)}")
    out: dict[str, dict[str, list[str]]] = {}
    for split in ("valid", "test"):
        rng = random.Random(f"{seed}-{split}")
        out[split] = {}
        for ex in next_item[split]:
            interacted = set(seqs[ex.user])
            negatives: list[str] = []
            chosen: set[str] = set()
            if len(catalogue) - len(interacted) < num - 1:
                raise ValueError(
                    f"user {ex.user!r}: only {len(catalogue) - len(interacted)} items never "
                    f"interacted with, fewer than the {num - 1} negatives asked for"
                )
            while len(negatives) < num - 1:
                item = catalogue[rng.randrange(len(catalogue))]
                if item not in interacted and item not in chosen:
                    chosen.add(item)
                    negatives.append(item)
            out[split][ex.user] = [ex.target, *negatives]
    return out


def make_splits(corpus: Corpus, cfg: DataConfig) -> Splits:
    """Compute every split of PROTOCOLS.md for ``corpus`` (deterministic in the seeds)."""
    report: dict[str, int] = {}
    next_item, too_short = _next_item(corpus, cfg.max_history)
    report["users_too_short_for_next_item"] = too_short
    reviews = _reviews(corpus, cfg, report)
    with_categories = sorted(i for i, item in corpus.items.items() if item.categories)
    report["items_without_categories"] = len(corpus.items) - len(with_categories)
    category = _ratio_split(with_categories, cfg.category_split, random.Random(cfg.split_seed + 1))
    category = {s: sorted(v) for s, v in category.items()}
    candidates = _candidates(corpus, next_item, cfg.num_candidates, cfg.split_seed)
    return Splits(next_item, reviews, category, candidates, report)
