"""Amazon review dumps (McAuley et al.), 2014 and 2018 layouts, with optional metadata.

Inputs: the reviews file (``--input FILE``, or the one ``reviews_*.json*`` / ``*_5.json*``
/ ``*.json*`` in the ``--input`` directory), plain, ``.gz`` or ``.zip``; optionally the
metadata file (``meta_*.json[.gz]`` beside it, or ``--file meta=PATH``).

Each line is one JSON object. The original 2014 dumps hold Python literals instead
(single quotes); those are parsed with ``ast.literal_eval``, which reads literals only and
never runs code. Fields: ``reviewerID``, ``asin``, ``overall`` (required), the time from
``unixReviewTime`` (or ``reviewTime``, "MM DD, YYYY"), ``reviewText`` and ``summary``; the
2018 fields ``verified`` and ``style`` are counted in the manifest notes.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
from collections import Counter
from pathlib import Path

from p5rec.data.corpus import Item
from p5rec.data.events import EventBuilder
from p5rec.data.files import iter_lines
from p5rec.data.readers.base import (
    SourceData,
    in_int64,
    is_integer,
    locate,
    parse_rating,
    register,
)

REVIEW_PATTERNS = ("reviews_*.json*", "*_5.json*", "*.json.gz", "*.json", "*.zip")
META_PATTERNS = ("meta_*.json*",)


def parse_record(text: str):
    """A JSON object, or a Python-literal dict as in the 2014 dumps; None if neither."""
    try:
        return json.loads(text)
    except ValueError:  # JSONDecodeError, or e.g. an integer too long to convert
        pass
    if not text.lstrip().startswith("{"):
        return None
    try:
        return ast.literal_eval(text)  # literals only: no names, calls or attributes
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        return None


def _time(rec: dict) -> int | None:
    t = _raw_time(rec)
    return t if t is not None and in_int64(t) else None


def _raw_time(rec: dict) -> int | None:
    t = rec.get("unixReviewTime")
    if isinstance(t, int) and not isinstance(t, bool):
        return t
    if isinstance(t, str) and is_integer(t):
        return int(t)
    s = rec.get("reviewTime")
    if isinstance(s, str):
        try:
            return int(
                dt.datetime.strptime(s.strip(), "%m %d, %Y")
                .replace(tzinfo=dt.timezone.utc)
                .timestamp()
            )
        except ValueError:
            return None
    return None


def _text(rec: dict, key: str):
    """(ok, value): a string field, missing as None; other types are not ok."""
    v = rec.get(key)
    return (v is None or isinstance(v, str)), v


def _reviews(path: Path, options, problems, builder: EventBuilder, notes: Counter, rng):
    for n, line in iter_lines(path, problems, progress=options.progress):
        rec = parse_record(line)
        if not isinstance(rec, dict):
            problems.report(path, n, "malformed", "not a JSON object (or Python dict literal)")
            continue
        missing = [k for k in ("reviewerID", "asin", "overall") if rec.get(k) in (None, "")]
        if missing:
            problems.report(path, n, "missing_field", f"missing required field(s) {missing}")
            continue
        user, item = rec["reviewerID"], rec["asin"]
        if not isinstance(user, str) or not isinstance(item, str):
            problems.report(path, n, "bad_value", "reviewerID and asin must be text")
            continue
        ts = _time(rec)
        if ts is None:
            problems.report(path, n, "missing_field", "no usable 'unixReviewTime' or 'reviewTime'")
            continue
        ok, rating = parse_rating(rec["overall"], rng, problems, path, n, "overall")
        if not ok:
            continue
        (ok_r, review), (ok_s, summary) = _text(rec, "reviewText"), _text(rec, "summary")
        if not (ok_r and ok_s):
            problems.report(path, n, "bad_value", "reviewText and summary must be text")
            continue
        builder.add(user, item, ts, rating, review, summary)
        if "verified" in rec:
            notes["verified" if rec["verified"] is True else "not_verified"] += 1
        if isinstance(rec.get("style"), dict):
            notes["with_style"] += 1


def _categories(rec: dict) -> tuple[str, ...]:
    cats = rec.get("categories")  # 2014: a list of paths; the first is the item's own
    if isinstance(cats, list) and cats and isinstance(cats[0], list):
        cats = cats[0]
    elif cats is None:
        cats = rec.get("category")  # 2018: one path
    if not isinstance(cats, list):
        return ()
    return tuple(c.strip() for c in cats if isinstance(c, str) and c.strip())


def _meta(path: Path, options, problems) -> dict[str, Item]:
    items: dict[str, Item] = {}
    for n, line in iter_lines(path, problems, progress=options.progress):
        rec = parse_record(line)
        if not isinstance(rec, dict):
            problems.report(path, n, "malformed", "not a JSON object (or Python dict literal)")
            continue
        asin = rec.get("asin")
        if not isinstance(asin, str) or not asin:
            problems.report(path, n, "missing_field", "missing required field 'asin'")
            continue
        title = rec.get("title") if isinstance(rec.get("title"), str) else ""
        brand = rec.get("brand") if isinstance(rec.get("brand"), str) else ""
        items[asin] = Item(
            asin, title.strip(), f"brand {brand.strip()}" if brand else "", _categories(rec)
        )
    # A root shared by every categorised item (the dump's own name, e.g. "Beauty") says
    # nothing about an item: drop it, as the P5 / S3-Rec preprocessing does.
    roots = {i.categories[0] for i in items.values() if i.categories}
    if len(roots) == 1:
        items = {k: Item(i.id, i.title, i.text, i.categories[1:]) for k, i in items.items()}
    return items


@register("amazon")
def read_amazon(path, cfg, options, problems) -> SourceData:
    if path is not None and path.is_file() and not options.file("reviews"):
        reviews = path
    else:
        reviews = locate(path, options, "reviews", REVIEW_PATTERNS, "reviews file")
    rng = options.ratings
    builder, notes = EventBuilder(), Counter()
    _reviews(reviews, options, problems, builder, notes, rng)
    files = {"reviews": reviews}
    meta_path = locate(reviews.parent, options, "meta", META_PATTERNS, "metadata file", False)
    items: dict[str, Item] = {}
    if meta_path:
        files["meta"] = meta_path
        items = _meta(meta_path, options, problems)
    return SourceData(builder.table(), items, files=files, rating_range=rng, notes=dict(notes))
