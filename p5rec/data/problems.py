"""Bad input policy: stop at the first problem, or skip the record and count it by kind.

Every reader reports a bad record through ``Problems.report`` with the file, the line (or
record) and what was expected. Under ``on_error="raise"`` (the default) that is an error;
under ``"skip"`` the record is skipped and counted per kind, the first few places kept as
examples, so nothing is dropped silently: the counts go to the manifest and the screen.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["POLICIES", "Problems", "ReadError"]

POLICIES = ("raise", "skip")
EXAMPLES_PER_KIND = 5


class ReadError(ValueError):
    """An input file is unusable; the message names the file, the line and the problem."""

    def __init__(self, path: str | Path, line: int | str | None, kind: str, message: str):
        self.path, self.line, self.kind = str(path), line, kind
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message} [{kind}]")


@dataclass
class Problems:
    """Counts skipped records per problem kind (or raises, under the default policy)."""

    on_error: str = "raise"
    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.on_error not in POLICIES:
            raise ValueError(f"on_error must be one of {POLICIES}, got {self.on_error!r}")

    def report(self, path: str | Path, line: int | str | None, kind: str, message: str) -> None:
        """Raise ``ReadError`` or, under ``skip``, count the record as skipped."""
        err = ReadError(path, line, kind, message)
        if self.on_error == "raise":
            raise err
        self.counts[kind] += 1
        kept = self.examples.setdefault(kind, [])
        if len(kept) < EXAMPLES_PER_KIND:
            kept.append(str(err))

    @property
    def skipped(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> dict:
        return {
            "on_error": self.on_error,
            "skipped": dict(sorted(self.counts.items())),
            "examples": {k: self.examples[k] for k in sorted(self.examples)},
        }
