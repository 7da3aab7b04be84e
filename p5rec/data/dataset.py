"""Processed dataset directories: ``p5rec prepare`` writes them, every later stage reads them.

Layout::

    DIR/interactions.parquet  user, item, timestamp, rating, review, summary (time order per
                              user) + next_item_split, review_split (train/valid/test/null)
    DIR/items.parquet         item, index, source_id, title, text, categories, category_split
    DIR/users.parquet         user, index, source_id, attributes (JSON)
    DIR/candidates.parquet    split, user, items (target first, then the sampled negatives)
    DIR/manifest.json         source files and hashes, reader options, skipped records,
                              cleaning report, counts, split sizes, tasks supported

``index`` is the dense 0-based id in sorted-id order; ``source_id`` is the id in the input
files (different when a reader maps ids, e.g. S3-Rec integers to Amazon ASINs). The
manifest is written last: a directory without one is not a dataset.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from p5rec.config import DataConfig, to_dict
from p5rec.data.corpus import Corpus, CorpusError, Item
from p5rec.data.events import EventTable, clean
from p5rec.data.files import file_sha256
from p5rec.data.problems import Problems
from p5rec.data.readers import READERS, ReadOptions, SourceData
from p5rec.data.splits import SPLITS, Assignment, Splits, assign_splits

__all__ = ["load_dataset", "prepare", "supported_tasks", "write_dataset"]

TABLES = ("interactions.parquet", "items.parquet", "users.parquet", "candidates.parquet")


def prepare(
    source: str,
    input_path: str | Path | None,
    out: str | Path,
    cfg: DataConfig,
    options: ReadOptions | None = None,
) -> dict:
    """Read ``source`` (a registered reader) and write a processed dataset directory."""
    options = options or ReadOptions()
    if source not in READERS:
        raise ValueError(f"unknown source {source!r}; known: {sorted(READERS)}")
    start = time.time()
    problems = Problems(options.on_error)
    data = READERS[source](Path(input_path) if input_path else None, cfg, options, problems)
    info = {
        "name": source,
        "input": str(Path(input_path).resolve()) if input_path else None,
        "files": {
            role: {"path": str(p.resolve()), "bytes": p.stat().st_size, "sha256": file_sha256(p)}
            for role, p in sorted(data.files.items())
        },
        "reader_options": options.to_dict(),
        "notes": data.notes,
    }
    return write_dataset(data, cfg, out, info, problems, options, started=start)


def _item_table(data: SourceData, table: EventTable) -> tuple[list[Item], dict[str, int]]:
    items = [data.items.get(i) or Item(i) for i in table.items]
    in_events = set(table.items)
    report = {
        "items_without_metadata": sum(i not in data.items for i in table.items),
        "metadata_items_without_events": sum(i not in in_events for i in data.items),
    }
    return items, report


def write_dataset(
    data: SourceData,
    cfg: DataConfig,
    out: str | Path,
    source: dict[str, Any],
    problems: Problems | None = None,
    options: ReadOptions | None = None,
    started: float | None = None,
) -> dict:
    """Clean, split and write ``data`` to ``out``; returns the manifest."""
    started = started or time.time()
    options = options or ReadOptions()
    table, cleaning = clean(data.events, options.k_core, options.dedupe)
    if len(table) == 0:
        raise CorpusError(f"{source.get('name')}: no interactions left after cleaning {cleaning}")
    items, item_report = _item_table(data, table)
    cleaning.update(item_report)
    rated = ~np.isnan(table.rating)
    has_cat = np.array([bool(i.categories) for i in items], dtype=bool)
    a = assign_splits(table.user, table.item, rated, len(table.users), has_cat, cfg)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").unlink(missing_ok=True)  # incomplete until rewritten
    (out / "splits.json").unlink(missing_ok=True)  # layout of earlier versions
    _write_tables(out, data, table, items, a)
    seqs = np.bincount(table.user, minlength=len(table.users))
    counts = {
        "users": len(table.users),
        "items": len(table.items),
        "interactions": len(table),
        "rated": int(rated.sum()),
        "reviews": _count_text(table.review),
        "summaries": _count_text(table.summary),
        "items_with_categories": int(has_cat.sum()),
        "density": round(len(table) / (len(table.users) * len(table.items)), 8),
        "sequence_length": _describe(seqs),
    }
    sizes = a.sizes()
    manifest = {
        "format": 2,
        "source": source,
        "data_config": to_dict(cfg),
        "fingerprint": _fingerprint(out),
        "rating_range": list(data.rating_range),
        "counts": counts,
        "rating_histogram": _histogram(table.rating[rated]),
        "skipped": (problems or Problems()).summary(),
        "cleaning": cleaning,
        "splits": sizes,
        "split_report": a.report,
        "tasks": supported_tasks(counts, sizes, a.report, cfg),
        "seconds": round(time.time() - started, 2),
    }
    _write_json(out / "manifest.json", manifest)
    return manifest


def supported_tasks(counts: dict, sizes: dict, report: dict, cfg: DataConfig) -> dict[str, str]:
    """Which task families the data carries a signal for, and why (or why not)."""

    def has(n: int, what: str) -> str:
        return f"yes ({n:,} {what})" if n else f"no (no {what})"

    n_test = sizes["next_item"]["test"]
    r_test = sizes["reviews"]["test"]
    return {
        "next_item": has(n_test, "test users with >= 3 events"),
        "candidate_ranking": (
            f"no (catalogue of {counts['items']} items < data.num_candidates={cfg.num_candidates})"
            if report.get("candidates_catalogue_too_small")
            else has(sizes["candidates"]["test"], "test users with candidates")
        ),
        "rating": has(r_test if counts["rated"] else 0, "rated test events"),
        "sentiment": has(r_test if counts["reviews"] else 0, "reviewed test events"),
        "explanation": has(r_test if counts["summaries"] else 0, "test events with a summary"),
        "category": has(sizes["category"]["test"], "labelled test items"),
    }


def _count_text(col) -> int:
    return 0 if col is None else sum(1 for t in col if t)


def _describe(values: np.ndarray) -> dict:
    if len(values) == 0:
        return {}
    q = np.percentile(values, [50, 90, 99])
    return {
        "min": int(values.min()),
        "median": float(q[0]),
        "p90": float(q[1]),
        "p99": float(q[2]),
        "max": int(values.max()),
        "mean": round(float(values.mean()), 3),
    }


def _histogram(ratings: np.ndarray) -> dict[str, int]:
    values, counts = np.unique(ratings, return_counts=True)
    return {f"{v:g}": int(c) for v, c in zip(values.tolist(), counts.tolist())}


def _fingerprint(out: Path) -> str:
    h = hashlib.sha256()
    for name in TABLES:
        h.update(file_sha256(out / name).encode())
    return h.hexdigest()[:16]


def _write_json(path: Path, blob: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(blob, indent=2), encoding="utf-8")
    tmp.replace(path)


def _split_column(codes: np.ndarray):
    import pyarrow as pa

    return pa.DictionaryArray.from_arrays(
        pa.array(codes.astype(np.int8) - 1, mask=codes == 0), pa.array(list(SPLITS))
    )


def _write_tables(
    out: Path, data: SourceData, t: EventTable, items: list[Item], a: Assignment
) -> None:
    import pyarrow as pa

    users = pa.array(t.users, pa.string())
    item_ids = pa.array(t.items, pa.string())
    interactions = pa.table(
        {
            "user": users.take(pa.array(t.user)),
            "item": item_ids.take(pa.array(t.item)),
            "timestamp": pa.array(t.timestamp, pa.int64()),
            "rating": pa.array(t.rating, pa.float64(), mask=np.isnan(t.rating)),
            "review": pa.array(t.review or [None] * len(t), pa.string()),
            "summary": pa.array(t.summary or [None] * len(t), pa.string()),
            "next_item_split": _split_column(a.next_item),
            "review_split": _split_column(a.review),
        }
    )
    _write_parquet(interactions, out / "interactions.parquet")
    src_items = data.source_ids.get("item", {})
    _write_parquet(
        pa.table(
            {
                "item": item_ids,
                "index": pa.array(np.arange(len(items)), pa.int64()),
                "source_id": [src_items.get(i.id, i.id) for i in items],
                "title": [i.title for i in items],
                "text": [i.text for i in items],
                "categories": pa.array([list(i.categories) for i in items], pa.list_(pa.string())),
                "category_split": _split_column(a.category),
            }
        ),
        out / "items.parquet",
    )
    src_users = data.source_ids.get("user", {})
    _write_parquet(
        pa.table(
            {
                "user": users,
                "index": pa.array(np.arange(len(t.users)), pa.int64()),
                "source_id": [src_users.get(u, u) for u in t.users],
                "attributes": [json.dumps(data.users.get(u, {}), sort_keys=True) for u in t.users],
            }
        ),
        out / "users.parquet",
    )
    parts = {"split": [], "user": [], "items": []}
    for name in ("valid", "test"):
        ucodes, rows = a.candidates[name]
        parts["split"].append(pa.array([name] * len(ucodes), pa.string()))
        parts["user"].append(users.take(pa.array(ucodes)))
        flat = item_ids.take(pa.array(rows.reshape(-1)))
        offsets = pa.array(np.arange(0, rows.size + 1, max(rows.shape[1], 1)), pa.int32())
        parts["items"].append(pa.ListArray.from_arrays(offsets, flat))
    _write_parquet(
        pa.table({k: pa.chunked_array(v) for k, v in parts.items()}), out / "candidates.parquet"
    )


def _write_parquet(table, path: Path) -> None:
    import pyarrow.parquet as pq

    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)


def load_dataset(directory: str | Path) -> tuple[Corpus, Splits, dict]:
    """Corpus, splits and manifest of a processed dataset directory."""
    import pyarrow.parquet as pq

    directory = Path(directory)
    manifest_path = directory / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(
            f"{directory}: no manifest.json; make a dataset with `p5rec prepare` first"
        )
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if manifest.get("format") != 2:
        raise CorpusError(f"{directory}: made by an older p5rec; run `p5rec prepare` again")
    corpus = Corpus.load(directory, rating_range=tuple(manifest["rating_range"]))
    ev = pq.read_table(
        directory / "interactions.parquet", columns=["next_item_split", "review_split"]
    ).to_pydict()
    it = pq.read_table(directory / "items.parquet", columns=["item", "category_split"])
    it = it.to_pydict()
    cand = pq.read_table(directory / "candidates.parquet").to_pydict()
    candidates: dict[str, dict[str, list[str]]] = {"valid": {}, "test": {}}
    for split, user, row in zip(cand["split"], cand["user"], cand["items"]):
        candidates[split][user] = row
    splits = Splits.from_codes(
        corpus,
        ev["next_item_split"],
        ev["review_split"],
        dict(zip(it["item"], it["category_split"])),
        candidates,
        manifest["data_config"]["max_history"],
        manifest.get("split_report"),
    )
    return corpus, splits, manifest
