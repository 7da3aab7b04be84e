"""Reading input files: plain, ``.gz`` or ``.zip``, line by line, with progress and hashes.

Lines are read as bytes and decoded one at a time, so a file of any size streams in
bounded memory and a line that is not valid in the expected encoding is reported with its
line number (through ``Problems``) instead of failing the whole read.
"""

from __future__ import annotations

import gzip
import hashlib
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from tqdm.auto import tqdm

from p5rec.data.problems import Problems, ReadError

__all__ = ["LineCursor", "file_sha256", "iter_lines", "open_binary"]

PROGRESS_EVERY = 65536  # lines between progress-bar updates
CORRUPT = (OSError, EOFError, zlib.error, zipfile.BadZipFile)  # damaged .gz / .zip data


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@contextmanager
def open_binary(path: str | Path) -> Iterator[tuple[BinaryIO, BinaryIO]]:
    """(decompressed stream, raw file) for a plain, gzip or single-member zip file."""
    path = Path(path)
    with open(path, "rb") as raw:
        magic = raw.read(4)
        raw.seek(0)
        if magic[:2] == b"\x1f\x8b":
            with gzip.GzipFile(fileobj=raw) as stream:
                yield stream, raw
        elif magic == b"PK\x03\x04":
            with zipfile.ZipFile(raw) as zf:
                members = [m for m in zf.infolist() if not m.is_dir()]
                if len(members) != 1:
                    names = [m.filename for m in members]
                    raise ReadError(
                        path,
                        None,
                        "archive",
                        f"expected one file in the zip archive, found {names}",
                    )
                with zf.open(members[0]) as stream:
                    yield stream, raw
        else:
            yield raw, raw


class LineCursor:
    """Where a streaming reader is: the file and the physical line last read."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.line = 0


def iter_lines(
    path: str | Path,
    problems: Problems,
    encoding: str = "utf-8",
    cursor: LineCursor | None = None,
    skip_blank: bool = True,
    progress: bool = True,
) -> Iterator[tuple[int, str]]:
    """Yield ``(line number, text without the line break)`` for each line of ``path``.

    Blank lines carry no record and are passed over when ``skip_blank``. A line that does
    not decode is reported as an ``encoding`` problem. A file with no lines at all is an
    error under every policy: there is nothing to read.
    """
    path = Path(path)
    cursor = cursor or LineCursor(path)
    size = path.stat().st_size
    seen = 0
    n = 0
    try:
        with (
            open_binary(path) as (stream, raw),
            tqdm(
                total=size,
                unit="B",
                unit_scale=True,
                desc=f"read {path.name}",
                disable=not progress or None,
                leave=False,
            ) as bar,
        ):
            for n, data in enumerate(stream, 1):
                cursor.line = n
                if n % PROGRESS_EVERY == 0:
                    bar.update(raw.tell() - bar.n)
                try:
                    text = data.decode(encoding)
                except UnicodeDecodeError as e:
                    problems.report(
                        path,
                        n,
                        "encoding",
                        f"bytes at column {e.start + 1} are not valid {encoding}",
                    )
                    seen += 1
                    continue
                text = text.rstrip("\r\n")
                if skip_blank and not text.strip():
                    continue
                seen += 1
                yield n, text
            bar.update(raw.tell() - bar.n)
    except CORRUPT as e:  # a damaged compressed stream cannot be resynchronised: stop
        raise ReadError(path, n + 1, "corrupt_archive", f"cannot decompress: {e}") from None
    if seen == 0:
        raise ReadError(path, None, "empty_file", "the file is empty (no records)")
