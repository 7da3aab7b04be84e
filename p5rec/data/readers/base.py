"""What every reader gets (options, a problem policy) and returns (a ``SourceData``)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from p5rec.config import DataConfig
from p5rec.data.corpus import Item
from p5rec.data.events import DEDUPE, EventTable
from p5rec.data.problems import POLICIES, Problems, ReadError

__all__ = [
    "READERS",
    "in_int64",
    "is_integer",
    "ReadOptions",
    "Reader",
    "SourceData",
    "load_json",
    "locate",
    "parse_rating",
    "register",
]


@dataclass(frozen=True)
class ReadOptions:
    """Options of ``p5rec prepare`` that concern reading and cleaning (saved in the manifest).

    ``files`` names inputs explicitly by role (e.g. ``("meta", "meta_Beauty.json.gz")``)
    where a reader would otherwise look for them in the ``--input`` directory.
    """

    on_error: str = "raise"
    k_core: int = 0
    dedupe: str = "exact"
    files: tuple[tuple[str, str], ...] = ()
    rating_range: tuple[float, float] | None = None  # None: 1..5 (see ``ratings``)
    encoding: str | None = None  # csv/jsonl only; None: UTF-8
    user_col: str | None = None
    item_col: str | None = None
    time_col: str | None = None
    rating_col: str | None = None
    review_col: str | None = None
    summary_col: str | None = None
    category_col: str | None = None
    title_col: str | None = None
    category_sep: str = "|"
    delimiter: str | None = None  # CSV only; None: ',' (or tab for .tsv)
    progress: bool = True

    def __post_init__(self) -> None:
        if self.on_error not in POLICIES:
            raise ValueError(f"--on-error must be one of {POLICIES}, got {self.on_error!r}")
        if self.dedupe not in DEDUPE:
            raise ValueError(f"--dedupe must be one of {DEDUPE}, got {self.dedupe!r}")
        if self.k_core < 0:
            raise ValueError(f"--k-core must be >= 0, got {self.k_core}")
        if self.rating_range is not None:
            lo, hi = self.rating_range
            if not lo < hi:
                raise ValueError(f"--rating-range must be LOW,HIGH with LOW < HIGH, got {lo},{hi}")

    @property
    def ratings(self) -> tuple[float, float]:
        """The valid rating range: ``--rating-range``, else 1..5 (every supported source)."""
        return self.rating_range or (1.0, 5.0)

    def file(self, role: str) -> str | None:
        found = [p for r, p in self.files if r == role]
        return found[-1] if found else None

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "progress"}
        out["files"] = dict(self.files)
        return out


@dataclass
class SourceData:
    """What a reader produces, before cleaning and splitting."""

    events: EventTable
    items: dict[str, Item] = field(default_factory=dict)  # metadata; may cover more or fewer
    users: dict[str, dict[str, str]] = field(default_factory=dict)  # user attributes
    source_ids: dict[str, dict[str, str]] = field(default_factory=dict)  # "user"/"item" -> map
    files: dict[str, Path] = field(default_factory=dict)  # role -> path (hashed)
    rating_range: tuple[float, float] = (1.0, 5.0)
    notes: dict = field(default_factory=dict)  # reader-specific facts for the manifest


# (input path, data config, options, problem policy) -> SourceData
Reader = Callable[[Path | None, DataConfig, ReadOptions, Problems], SourceData]
READERS: dict[str, Reader] = {}


def register(name: str) -> Callable[[Reader], Reader]:
    def deco(fn: Reader) -> Reader:
        if name in READERS:
            raise ValueError(f"reader {name!r} is already registered")
        READERS[name] = fn
        return fn

    return deco


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def in_int64(value: int) -> bool:
    """Timestamps are stored as int64: larger values are bad input, not a crash."""
    return INT64_MIN <= value <= INT64_MAX


def is_integer(text: str) -> bool:
    """An optionally signed run of ASCII digits (``int`` accepts it; unlike ``isdigit``,
    superscripts and other Unicode digits do not pass)."""
    t = text.strip()
    t = t[1:] if t[:1] in "+-" else t
    return t.isascii() and t.isdigit()


def parse_rating(
    value, rng: tuple[float, float], problems: Problems, path, line, field_name: str
) -> tuple[bool, float | None]:
    """(ok, rating): a number within ``rng``, or a reported problem (ok False)."""
    try:
        if isinstance(value, bool):
            raise TypeError
        r = float(value)
    except (TypeError, ValueError):
        problems.report(path, line, "bad_value", f"field {field_name!r} is {value!r}, not a number")
        return False, None
    if math.isnan(r) or not rng[0] <= r <= rng[1]:
        problems.report(
            path,
            line,
            "rating_out_of_range",
            f"field {field_name!r} is {value!r}, expected {rng[0]:g}..{rng[1]:g}",
        )
        return False, None
    return True, r


def locate(
    path: Path | None,
    options: ReadOptions,
    role: str,
    patterns: tuple[str, ...],
    what: str,
    required: bool = True,
) -> Path | None:
    """The input file for ``role``: ``--file role=PATH``, else the one file in the directory
    ``path`` matching the first pattern that matches anything (several: an error)."""
    explicit = options.file(role)
    if explicit:
        p = Path(explicit)
        if not p.is_file():
            raise ReadError(p, None, "missing_file", f"{what} (--file {role}=...) not found")
        return p
    if path is not None and path.is_dir():
        for pattern in patterns:
            found = sorted(p for p in path.glob(pattern) if p.is_file())
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                names = [p.name for p in found]
                raise ReadError(
                    path,
                    None,
                    "ambiguous_input",
                    f"several files could be the {what}: {names}; name one with --file {role}=PATH",
                )
    if required:
        where = f"in {path}" if path is not None else "(no --input given)"
        raise ReadError(
            path or "--input",
            None,
            "missing_file",
            f"no {what} found {where}; expected one of {list(patterns)} or --file {role}=PATH",
        )
    return None


def load_json(path: Path, what: str):
    """A whole JSON document (metadata files are small), errors naming line and column."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ReadError(path, line, "encoding", f"{what}: bytes are not valid UTF-8") from None
    if not text.strip():
        raise ReadError(path, None, "empty_file", f"{what}: the file is empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ReadError(
            path, e.lineno, "malformed", f"{what}: invalid JSON at column {e.colno}: {e.msg}"
        ) from None
