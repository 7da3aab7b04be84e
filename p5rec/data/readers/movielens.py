"""MovieLens 100K (``u.data``, ``u.item``, ``u.user``, ``u.genre``) and 1M (``ratings.dat``,
``movies.dat``, ``users.dat``, ``::``-separated), both latin-1, from the ``--input``
directory. Genres become the items' category labels; user demographics are kept as user
attributes; titles are the item titles. Ratings must be 1..5 (``--rating-range``).
"""

from __future__ import annotations

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

GENRES_100K = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)


def _fields(path, problems, sep: str, expect: int, encoding: str, progress: bool, at_least=False):
    """Yield (line, fields) for lines with ``expect`` fields (or more when ``at_least``)."""
    for n, line in iter_lines(path, problems, encoding=encoding, progress=progress):
        parts = line.split(sep)
        if len(parts) != expect and not (at_least and len(parts) > expect):
            problems.report(
                path,
                n,
                "columns",
                f"expected {expect} {sep!r}-separated fields, found {len(parts)}",
            )
            continue
        yield n, parts


def _int(value: str, path, n, field: str, problems) -> int | None:
    v = value.strip()
    if is_integer(v) and in_int64(int(v)):
        return int(v)
    problems.report(path, n, "bad_value", f"field {field!r} is {value!r}, expected an integer")
    return None


def _genres_100k(folder: Path, options, problems) -> tuple[str, ...]:
    path = locate(folder, options, "genres", ("u.genre",), "genre list", False)
    if path is None:
        return GENRES_100K
    names: dict[int, str] = {}
    for n, (name, idx) in _fields(path, problems, "|", 2, "latin-1", False):
        i = _int(idx, path, n, "index", problems)
        if i is not None and not name.strip():
            problems.report(path, n, "bad_value", "empty genre name")
        elif i is not None:
            names[i] = name.strip()
    return tuple(names[i] for i in sorted(names))


def _items_100k(path, genres, options, problems) -> dict[str, Item]:
    items = {}
    width = 5 + len(genres)
    for n, f in _fields(path, problems, "|", width, "latin-1", options.progress):
        if not is_integer(f[0]):
            problems.report(path, n, "bad_value", f"movie id {f[0]!r} is not an integer")
            continue
        flags = f[5:]
        if any(x not in ("0", "1") for x in flags):
            problems.report(path, n, "bad_value", "genre flags must be 0 or 1")
            continue
        cats = tuple(g for g, x in zip(genres, flags) if x == "1")
        items[f[0].strip()] = Item(f[0].strip(), f[1].strip(), "", cats)
    return items


def _items_1m(path, options, problems) -> dict[str, Item]:
    items = {}
    for n, f in _fields(path, problems, "::", 3, "latin-1", options.progress):
        if not is_integer(f[0]):
            problems.report(path, n, "bad_value", f"movie id {f[0]!r} is not an integer")
            continue
        cats = tuple(g for g in f[2].split("|") if g and g != "(no genres listed)")
        items[f[0].strip()] = Item(f[0].strip(), f[1].strip(), "", cats)
    return items


def _users(path, sep, names, options, problems) -> dict[str, dict[str, str]]:
    users = {}
    for n, f in _fields(path, problems, sep, len(names) + 1, "latin-1", options.progress):
        if not is_integer(f[0]):
            problems.report(path, n, "bad_value", f"user id {f[0]!r} is not an integer")
            continue
        users[f[0].strip()] = dict(zip(names, (x.strip() for x in f[1:])))
    return users


@register("movielens")
def read_movielens(path, cfg, options, problems) -> SourceData:
    folder = path if path is not None and path.is_dir() else (path.parent if path else None)
    one_m = locate(folder, options, "ratings", ("ratings.dat",), "ratings.dat", False)
    if one_m is not None:
        ratings, sep = one_m, "::"
        items_path = locate(folder, options, "items", ("movies.dat",), "movies.dat")
        users_path = locate(folder, options, "users", ("users.dat",), "users.dat", False)
        items = _items_1m(items_path, options, problems)
        user_sep, user_fields = "::", ("gender", "age", "occupation", "zip")
    else:
        ratings, sep = (
            locate(folder, options, "ratings", ("u.data",), "u.data (or ratings.dat)"),
            "\t",
        )
        items_path = locate(folder, options, "items", ("u.item",), "u.item")
        users_path = locate(folder, options, "users", ("u.user",), "u.user", False)
        items = _items_100k(items_path, _genres_100k(folder, options, problems), options, problems)
        user_sep, user_fields = "|", ("age", "gender", "occupation", "zip")
    users = _users(users_path, user_sep, user_fields, options, problems) if users_path else {}
    rng = options.ratings
    builder = EventBuilder()
    for n, f in _fields(ratings, problems, sep, 4, "latin-1", options.progress):
        user, item = f[0].strip(), f[1].strip()
        ts = _int(f[3], ratings, n, "timestamp", problems)
        if ts is None or _int(user, ratings, n, "user", problems) is None:
            continue
        if item not in items:
            problems.report(
                ratings, n, "unknown_item", f"movie {item!r} is not in {items_path.name}"
            )
            continue
        if users and user not in users:
            problems.report(
                ratings, n, "unknown_user", f"user {user!r} is not in {users_path.name}"
            )
            continue
        ok, rating = parse_rating(f[2].strip(), rng, problems, ratings, n, "rating")
        if ok:
            builder.add(user, item, ts, rating)
    files = {"ratings": ratings, "items": items_path}
    if users_path:
        files["users"] = users_path
    return SourceData(builder.table(), items, users, files=files, rating_range=rng)
