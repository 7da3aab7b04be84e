"""Processed dataset directories: ``p5rec prepare`` writes them, every later stage reads them.

Layout::

    DIR/interactions.parquet   user, item, timestamp, rating, review, summary (time order)
    DIR/items.parquet          item, title, text, categories
    DIR/splits.json            every split of PROTOCOLS.md (fixed seeds)
    DIR/manifest.json          source, options, counts, split sizes, fingerprint
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from p5rec.config import DataConfig, to_dict
from p5rec.data.corpus import Corpus
from p5rec.data.splits import Splits, make_splits

__all__ = ["SOURCES", "load_dataset", "prepare", "write_dataset"]


def _synthetic(input_path: str | None, cfg: DataConfig) -> Corpus:
    from p5rec.data.synthetic import generate

    if input_path:
        raise ValueError("source 'synthetic' takes no --input (it is generated from the config)")
    return generate(cfg.synthetic)


# Readers by source name: (input path, data config) -> Corpus.
SOURCES: dict[str, Callable[[str | None, DataConfig], Corpus]] = {"synthetic": _synthetic}


def write_dataset(corpus: Corpus, cfg: DataConfig, out: str | Path, source: dict[str, Any]) -> dict:
    """Validate, split and write ``corpus`` to ``out``; returns the manifest."""
    corpus.validate()
    splits = make_splits(corpus, cfg)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    corpus.save(out)
    splits.save(out / "splits.json")
    splits_hash = hashlib.sha256((out / "splits.json").read_bytes()).hexdigest()[:16]
    seqs = corpus.sequences()
    manifest = {
        "source": source,
        "data_config": to_dict(cfg),
        "fingerprint": corpus.fingerprint(),
        "splits_sha256": splits_hash,
        "rating_range": list(corpus.rating_range),
        "counts": {
            "users": len(seqs),
            "items": len(corpus.items),
            "interactions": len(corpus.interactions),
            "rated": sum(e.rating is not None for e in corpus.interactions),
            "reviews": sum(bool(e.review) for e in corpus.interactions),
        },
        "splits": splits.sizes(),
        "split_report": splits.report,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest


def prepare(source: str, input_path: str | None, out: str | Path, cfg: DataConfig) -> dict:
    """Read ``source`` (a registered reader name) and write a processed dataset directory."""
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; known: {sorted(SOURCES)}")
    corpus = SOURCES[source](input_path, cfg)
    return write_dataset(corpus, cfg, out, {"name": source, "input": input_path})


def load_dataset(directory: str | Path) -> tuple[Corpus, Splits, dict]:
    """Corpus, splits and manifest of a processed dataset directory."""
    directory = Path(directory)
    manifest_path = directory / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(
            f"{directory}: no manifest.json; make a dataset with `p5rec prepare` first"
        )
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    corpus = Corpus.load(directory, rating_range=tuple(manifest["rating_range"]))
    return corpus, Splits.load(directory / "splits.json"), manifest
