"""Tiny input files in each source format (written into a test's tmp_path)."""

from __future__ import annotations

import gzip
import json
import zipfile
from pathlib import Path

S3REC_SEQ = "1 1 2 3 4\n2 2 3 5\n3 1 4 5 2\n4 5 1 3\n"
S3REC_ATTRS = {"1": [10, 1, 2], "2": [1, 3], "3": [11, 1, 2], "4": [1, 2], "5": [10, 3]}
S3REC_NAMES = {"1": "Makeup", "2": "Eyes", "3": "Face", "10": "Acme", "11": "Bolt"}
S3REC_MAPS = {
    "id2user": {str(n): f"U{n}" for n in range(1, 5)},
    "id2item": {str(n): f"ASIN{n}" for n in range(1, 6)},
}
S3REC_TEXTS = "".join(f"ASIN{n} product number {n}\n" for n in range(1, 6))


def write(path: Path, data: str | bytes, compress: str | None = None) -> Path:
    raw = data.encode() if isinstance(data, str) else data
    if compress == "gz":
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(raw))
    elif compress == "zip":
        inner = path.name
        path = path.with_suffix(".zip")
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr(inner, raw)
    else:
        path.write_bytes(raw)
    return path


def s3rec_dir(root: Path, seq: str | bytes = S3REC_SEQ, **override) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    write(root / "Toy.txt", seq)
    parts = {
        "Toy_item2attributes.json": S3REC_ATTRS,
        "Toy_attrid2name.json": S3REC_NAMES,
        "datamaps.json": S3REC_MAPS,
        "item_texts.txt": S3REC_TEXTS,
    }
    parts.update(override)
    for name, content in parts.items():
        if content is None:
            continue
        write(root / name, content if isinstance(content, (str, bytes)) else json.dumps(content))
    return root


def review(user: str, item: str, t: int, rating: float = 5.0, **extra) -> dict:
    rec = {
        "reviewerID": user,
        "asin": item,
        "overall": rating,
        "unixReviewTime": t,
        "reviewText": f"{user} on {item}",
        "summary": "fine thing",
    }
    rec.update(extra)
    return rec


def amazon_lines(literal_every: int = 0) -> list[str]:
    """Four users x three items, JSON lines; every ``literal_every``-th a Python literal."""
    lines = []
    for u in range(4):
        for k in range(3):
            rec = review(f"U{u}", f"I{(u + k) % 4}", 100 * u + k, float(1 + (u + k) % 5))
            n = len(lines) + 1
            lines.append(repr(rec) if literal_every and n % literal_every == 0 else json.dumps(rec))
    return lines


MOVIES_100K = "".join(
    f"{n}|Movie {n} (1995)|01-Jan-1995||http://x/{n}|"
    + "|".join("1" if g == n % 19 else "0" for g in range(19))
    + "\n"
    for n in range(1, 6)
)
USERS_100K = "".join(f"{n}|{20 + n}|M|engineer|0000{n}\n" for n in range(1, 5))
RATINGS_100K = "".join(
    f"{u}\t{i}\t{1 + (u * i) % 5}\t{880000000 + 10 * u + i}\n"
    for u in range(1, 5)
    for i in range(1, 5)
)
MOVIES_1M = "".join(f"{n}::Movie {n} (1999)::Comedy|Drama\n" for n in range(1, 6))
USERS_1M = "".join(f"{n}::F::25::3::5555{n}\n" for n in range(1, 5))
RATINGS_1M = RATINGS_100K.replace("\t", "::")


def movielens_dir(root: Path, one_m: bool = False, **override) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    if one_m:
        parts = {"ratings.dat": RATINGS_1M, "movies.dat": MOVIES_1M, "users.dat": USERS_1M}
    else:
        parts = {"u.data": RATINGS_100K, "u.item": MOVIES_100K, "u.user": USERS_100K}
    parts.update(override)
    for name, content in parts.items():
        if content is not None:
            write(root / name, content.encode("latin-1") if isinstance(content, str) else content)
    return root


CSV = "user,item,when,stars,title,genre\n" + "".join(
    f"u{u},i{(u + k) % 5},2020-01-0{k + 1}T00:00:00,{1 + (u + k) % 5},Thing {(u + k) % 5},"
    f"toys|{'red' if (u + k) % 2 else 'blue'}\n"
    for u in range(4)
    for k in range(4)
)
CSV_COLUMNS = dict(
    user_col="user",
    item_col="item",
    time_col="when",
    rating_col="stars",
    title_col="title",
    category_col="genre",
)
