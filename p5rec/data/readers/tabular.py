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
from p5rec.data.readers.base import SourceData, in_int64, parse_rating, register


def _timestamp(value) -> int | None:
    t = _parse_time(value)
    return t if t is not None and in_int64(t) else None


def _parse_time(value) -> int | None:
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


FIELDS = ("user", "item", "time", "rating", "review", "summary", "title", "category")


class _Rows:
    """Turns mapped rows into events and item metadata, reporting bad values.

    ``add`` takes one row's values in ``FIELDS`` order (None for an unmapped column).
    """

    def __init__(self, path: Path, options, problems):
        if not options.user_col or not options.item_col:
            raise ValueError(
                "sources csv/jsonl/parquet need a column mapping: --user-col and --item-col"
            )
        self.path, self.options, self.problems = path, options, problems
        self.cols = {f: getattr(options, f"{f}_col") for f in FIELDS}
        self.mapped = [c for c in self.cols.values() if c]
        self.has_time = bool(self.cols["time"])
        self.rng = options.ratings
        self.builder = EventBuilder()
        self.items: dict[str, Item] = {}

    def check_header(self, header, where) -> None:
        missing = [c for c in self.mapped if c not in header]
        if missing:
            raise ReadError(
                self.path,
                where,
                "missing_column",
                f"column(s) {missing} not found; the file has {list(header)[:30]}",
            )

    def add(self, values: tuple, where) -> None:
        user, item, t, rating, review, summary, title, category = values
        p, path = self.problems, self.path
        if user is None or user == "" or item is None or item == "":
            name = "user" if user is None or user == "" else "item"
            p.report(path, where, "missing_field", f"empty {name} column {self.cols[name]!r}")
            return
        if self.has_time:
            ts = _timestamp(t)
            if ts is None:
                p.report(
                    path,
                    where,
                    "bad_value",
                    f"column {self.cols['time']!r} is {t!r}, expected epoch seconds or an "
                    "ISO-8601 date",
                )
                return
        else:
            ts = len(self.builder)  # input order
        if rating is not None and rating != "":
            ok, rating = parse_rating(rating, self.rng, p, path, where, self.cols["rating"])
            if not ok:
                return
        else:
            rating = None
        texts = [review, summary, title, category]
        for n, v in enumerate(texts):
            if v is not None and not isinstance(v, str):
                if not isinstance(v, (int, float)) or isinstance(v, bool):
                    name = FIELDS[4 + n]
                    p.report(path, where, "bad_value", f"column {self.cols[name]!r} is not text")
                    return
                texts[n] = str(v)
        review, summary, title, category = (v or None for v in texts)
        item = str(item)
        self.builder.add(str(user), item, ts, rating, review, summary)
        if title or category:  # (most logs have neither: keep the per-row path short)
            known = self.items.get(item) or Item(item)
            if (title and not known.title) or (category and not known.categories):
                sep = self.options.category_sep
                cats = tuple(c.strip() for c in (category or "").split(sep) if c.strip())
                self.items[item] = Item(
                    item, known.title or title or "", "", known.categories or cats
                )

    def result(self) -> SourceData:
        return SourceData(
            self.builder.table(), self.items, files={"events": self.path}, rating_range=self.rng
        )


MAX_RECORD_LINES = 10000  # a CSV record spanning more lines than this has a stray quote


def _encoding(options) -> str:
    """The text encoding (default UTF-8, a leading byte-order mark ignored); lines are split
    on the byte ``\\n`` before decoding, so the encoding must be ASCII-compatible."""
    enc = options.encoding or "utf-8-sig"
    try:
        ok = "\n,".encode(enc).endswith(b"\n,")  # (utf-8-sig prefixes a byte-order mark)
    except LookupError:
        raise ValueError(f"--encoding {enc!r} is not a known text encoding") from None
    if not ok:
        raise ValueError(
            f"--encoding {enc!r} is not ASCII-compatible (e.g. UTF-16); "
            "convert the file to UTF-8 first"
        )
    return enc


def _input(path: Path | None, what: str) -> Path:
    if path is None or not path.is_file():
        raise ReadError(path or "--input", None, "missing_file", f"--input must be a {what} file")
    return path


@register("csv")
def read_csv(path, cfg, options, problems) -> SourceData:
    path = _input(path, "CSV")
    rows = _Rows(path, options, problems)
    delim = options.delimiter or ("\t" if path.name.endswith((".tsv", ".tsv.gz")) else ",")
    encoding = _encoding(options)
    cursor = LineCursor(path)
    state = {"start": 1}

    def lines():
        for n, text in iter_lines(path, problems, encoding, cursor, False, options.progress):
            if n - state["start"] >= MAX_RECORD_LINES:
                raise ReadError(
                    path,
                    state["start"],
                    "malformed",
                    f"a quoted field is still open {MAX_RECORD_LINES} lines later "
                    "(unbalanced quote?)",
                )
            yield text + "\n"  # line breaks inside quoted fields are kept

    # strict: an unbalanced quote is an error, not a field that runs to the end of the file
    reader = csv.reader(lines(), delimiter=delim, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise ReadError(path, None, "empty_file", "the file is empty (no header)") from None
    except csv.Error as e:
        raise ReadError(path, 1, "malformed", f"bad CSV header: {e}") from None
    rows.check_header(header, 1)
    index = [header.index(rows.cols[f]) if rows.cols[f] else None for f in FIELDS]
    width = len(header)
    while True:
        state["start"] = cursor.line + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            problems.report(path, state["start"], "malformed", f"bad CSV: {e}")
            continue
        if not record or (len(record) == 1 and not record[0].strip()):
            continue  # blank line: no record
        if len(record) != width:
            problems.report(
                path, state["start"], "columns", f"expected {width} columns, found {len(record)}"
            )
            continue
        rows.add(tuple(None if i is None else record[i] for i in index), state["start"])
    return rows.result()


@register("jsonl")
def read_jsonl(path, cfg, options, problems) -> SourceData:
    path = _input(path, "JSON lines")
    rows = _Rows(path, options, problems)
    for n, text in iter_lines(path, problems, _encoding(options), None, True, options.progress):
        try:
            rec = json.loads(text)
        except json.JSONDecodeError as e:
            problems.report(path, n, "malformed", f"invalid JSON at column {e.colno}: {e.msg}")
            continue
        except ValueError as e:  # e.g. an integer too long to convert
            problems.report(path, n, "malformed", f"invalid JSON: {e}")
            continue
        if not isinstance(rec, dict):
            problems.report(path, n, "malformed", "expected a JSON object")
            continue
        missing = [rows.cols[k] for k in ("user", "item") if rows.cols[k] not in rec]
        if missing:
            problems.report(path, n, "missing_field", f"missing required field(s) {missing}")
            continue
        rows.add(tuple(rec.get(c) if c else None for c in rows.cols.values()), n)
    return rows.result()


@register("parquet")
def read_parquet(path, cfg, options, problems) -> SourceData:
    import pyarrow as pa
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
    columns = sorted(set(rows.mapped))
    n = 0
    bar = tqdm(
        total=pf.metadata.num_rows,
        desc=f"read {path.name}",
        unit="row",
        disable=not options.progress or None,
        leave=False,
    )
    try:
        for batch in pf.iter_batches(batch_size=65536, columns=columns):
            data = batch.to_pydict()
            none = [None] * batch.num_rows
            cols = [data[c] if c else none for c in rows.cols.values()]
            for values in zip(*cols):
                n += 1
                rows.add(values, f"row {n}")
            bar.update(batch.num_rows)
    except UnicodeDecodeError as e:
        raise ReadError(
            path, f"row {n + 1}", "encoding", f"a text value in this batch is not UTF-8: {e}"
        ) from None
    except (OSError, pa.ArrowException) as e:  # damaged pages: the rest cannot be read
        raise ReadError(
            path, f"row {n + 1}", "malformed", f"unreadable Parquet data: {e}"
        ) from None
    finally:
        bar.close()
    return rows.result()
