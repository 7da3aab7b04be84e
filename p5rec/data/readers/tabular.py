"""Any interaction log as CSV / TSV, JSON lines or Parquet, given a column mapping.

``--user-col`` and ``--item-col`` are required; ``--time-col`` (integer or decimal epoch
seconds, or an ISO-8601 date/time; without it, the input order), ``--rating-col``,
``--review-col``, ``--summary-col``, ``--title-col`` and ``--category-col`` (split on
``--category-sep``) are optional. An item's title and categories are taken from its first
row that has them. CSV files have a header line.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from pathlib import Path

from p5rec.data.corpus import Item
from p5rec.data.events import EventBuilder
from p5rec.data.files import LineCursor, iter_lines
from p5rec.data.problems import ReadError
from p5rec.data.readers.base import SourceData, parse_rating, register

OPTIONAL = ("time", "rating", "review", "summary", "title", "category")


def _timestamp(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else None
    if isinstance(value, (dt.datetime, dt.date)):
        value = value.isoformat()
    if not isinstance(value, str) or not value.strip():
        return None
    v = value.strip()
    try:
        return int(v)
    except ValueError:
        pass
    try:
        f = float(v)
        return int(f) if math.isfinite(f) else None
    except ValueError:
        pass
    try:
        t = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return int(t.timestamp())


class _Rows:
    """Turns mapped rows into events and item metadata, reporting bad values."""

    def __init__(self, path: Path, options, problems):
        if not options.user_col or not options.item_col:
            raise ValueError(
                "sources csv/jsonl/parquet need a column mapping: --user-col and --item-col"
            )
        self.path, self.options, self.problems = path, options, problems
        self.cols = {"user": options.user_col, "item": options.item_col}
        for name in OPTIONAL:
            if getattr(options, f"{name}_col"):
                self.cols[name] = getattr(options, f"{name}_col")
        self.rng = options.rating_range or (1.0, 5.0)
        self.builder = EventBuilder()
        self.items: dict[str, Item] = {}
        self.order = 0

    def check_header(self, header, where) -> None:
        missing = [c for c in self.cols.values() if c not in header]
        if missing:
            raise ReadError(
                self.path,
                where,
                "missing_column",
                f"column(s) {missing} not found; the file has {list(header)[:30]}",
            )

    def add(self, get, where) -> None:
        p, path = self.problems, self.path
        user, item = get("user"), get("item")
        if user in (None, "") or item in (None, ""):
            p.report(
                path,
                where,
                "missing_field",
                f"empty {'user' if user in (None, '') else 'item'}"
                f" column {self.cols['user' if user in (None, '') else 'item']!r}",
            )
            return
        if "time" in self.cols:
            ts = _timestamp(get("time"))
            if ts is None:
                p.report(
                    path,
                    where,
                    "bad_value",
                    f"column {self.cols['time']!r} is {get('time')!r}, expected epoch "
                    "seconds or an ISO-8601 date",
                )
                return
        else:
            ts = self.order
        rating = None
        if "rating" in self.cols:
            raw = get("rating")
            if raw not in (None, ""):
                ok, rating = parse_rating(raw, self.rng, p, path, where, self.cols["rating"])
                if not ok:
                    return
        texts = {}
        for name in ("review", "summary", "title", "category"):
            v = get(name) if name in self.cols else None
            if v is not None and not isinstance(v, str):
                v = str(v) if isinstance(v, (int, float)) else None
                if v is None:
                    p.report(path, where, "bad_value", f"column {self.cols[name]!r} is not text")
                    return
            texts[name] = v or None
        user, item = str(user), str(item)
        self.order += 1
        self.builder.add(user, item, ts, rating, texts["review"], texts["summary"])
        if (texts["title"] or texts["category"]) and item not in self.items:
            sep = self.options.category_sep
            cats = tuple(c.strip() for c in (texts["category"] or "").split(sep) if c.strip())
            self.items[item] = Item(item, texts["title"] or "", "", cats)

    def result(self) -> SourceData:
        return SourceData(
            self.builder.table(), self.items, files={"events": self.path}, rating_range=self.rng
        )


def _input(path: Path | None, what: str) -> Path:
    if path is None or not path.is_file():
        raise ReadError(path or "--input", None, "missing_file", f"--input must be a {what} file")
    return path


@register("csv")
def read_csv(path, cfg, options, problems) -> SourceData:
    path = _input(path, "CSV")
    rows = _Rows(path, options, problems)
    delim = options.delimiter or ("\t" if path.name.endswith((".tsv", ".tsv.gz")) else ",")
    cursor = LineCursor(path)
    lines = (
        text
        for _, text in iter_lines(
            path, problems, options.encoding or "utf-8", cursor, False, options.progress
        )
    )
    reader = csv.reader(lines, delimiter=delim)
    try:
        header = next(reader)
    except StopIteration:
        raise ReadError(path, None, "empty_file", "the file is empty (no header)") from None
    except csv.Error as e:
        raise ReadError(path, 1, "malformed", f"bad CSV header: {e}") from None
    rows.check_header(header, 1)
    where = {c: header.index(c) for c in rows.cols.values()}
    width = len(header)
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            problems.report(path, cursor.line, "malformed", f"bad CSV: {e}")
            continue
        if not record or (len(record) == 1 and not record[0].strip()):
            continue  # blank line: no record
        if len(record) != width:
            problems.report(
                path, cursor.line, "columns", f"expected {width} columns, found {len(record)}"
            )
            continue
        rows.add(lambda k, r=record: r[where[rows.cols[k]]], cursor.line)
    return rows.result()


@register("jsonl")
def read_jsonl(path, cfg, options, problems) -> SourceData:
    path = _input(path, "JSON lines")
    rows = _Rows(path, options, problems)
    for n, text in iter_lines(
        path, problems, options.encoding or "utf-8", None, True, options.progress
    ):
        try:
            rec = json.loads(text)
        except json.JSONDecodeError as e:
            problems.report(path, n, "malformed", f"invalid JSON at column {e.colno}: {e.msg}")
            continue
        if not isinstance(rec, dict):
            problems.report(path, n, "malformed", "expected a JSON object")
            continue
        missing = [c for k, c in rows.cols.items() if k in ("user", "item") and c not in rec]
        if missing:
            problems.report(path, n, "missing_field", f"missing required field(s) {missing}")
            continue
        rows.add(lambda k, r=rec: r.get(rows.cols[k]), n)
    return rows.result()


@register("parquet")
def read_parquet(path, cfg, options, problems) -> SourceData:
    import pyarrow.parquet as pq
    from tqdm.auto import tqdm

    path = _input(path, "Parquet")
    rows = _Rows(path, options, problems)
    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises several types for a file that is not Parquet
        raise ReadError(path, None, "malformed", f"not a readable Parquet file: {e}") from None
    rows.check_header(pf.schema_arrow.names, None)
    if pf.metadata.num_rows == 0:
        raise ReadError(path, None, "empty_file", "the file has no rows")
    columns = sorted(set(rows.cols.values()))
    n = 0
    with tqdm(
        total=pf.metadata.num_rows,
        desc=f"read {path.name}",
        unit="row",
        disable=not options.progress or None,
        leave=False,
    ) as bar:
        for batch in pf.iter_batches(batch_size=65536, columns=columns):
            data = batch.to_pydict()
            for r in range(batch.num_rows):
                n += 1
                rows.add(lambda k, r=r, d=data: d[rows.cols[k]][r], f"row {n}")
            bar.update(batch.num_rows)
    return rows.result()
