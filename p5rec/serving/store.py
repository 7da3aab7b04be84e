"""Where the service keeps what users did after the dataset: feedback events per user.

``HistoryStore`` is the interface the service talks to; ``SQLiteHistoryStore`` is the
default (one file, WAL journal so readers never wait for the writer, created on first
start). A server database can implement the same four methods.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path

__all__ = ["DISMISS", "EVENTS", "HistoryStore", "SQLiteHistoryStore"]

# Every event but "dismiss" puts the item at the end of the user's history; "dismiss" keeps
# the item out of the user's recommendations from then on.
EVENTS = ("view", "click", "cart", "purchase", "rating", "review", "dismiss")
DISMISS = "dismiss"
SCHEMA_VERSION = 1


class HistoryStore(ABC):
    """Feedback events per user, in arrival order."""

    @abstractmethod
    def add(
        self,
        user: str,
        item: str,
        event: str,
        rating: float | None = None,
        text: str | None = None,
    ) -> int:
        """Record one event; returns the user's number of stored events."""

    @abstractmethod
    def items(self, user: str) -> list[str]:
        """The items the user's events add to their history, oldest first."""

    @abstractmethod
    def dismissed(self, user: str) -> set[str]:
        """The items the user dismissed."""

    @abstractmethod
    def has_user(self, user: str) -> bool:
        """Whether any event of ``user`` is stored."""

    def close(self) -> None:  # noqa: B027  (optional for stores without resources)
        """Release the store's resources."""


class SQLiteHistoryStore(HistoryStore):
    """``HistoryStore`` in an SQLite file (WAL mode); safe to share between threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(
                """
                CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS feedback (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    user TEXT NOT NULL,
                    item TEXT NOT NULL,
                    event TEXT NOT NULL,
                    rating REAL,
                    text TEXT,
                    created REAL NOT NULL
                );
                CREATE INDEX IF NOT EXISTS feedback_user ON feedback (user, id);
                """
            )
            self._db.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
            (version,) = self._db.execute(
                "SELECT value FROM meta WHERE key = 'schema_version'"
            ).fetchone()
        except sqlite3.DatabaseError as err:
            raise ValueError(f"{self.path}: not a usable history store ({err})") from None
        if version != str(SCHEMA_VERSION):
            raise ValueError(
                f"{self.path}: history store schema {version}, this version reads {SCHEMA_VERSION}"
            )

    def add(self, user, item, event, rating=None, text=None) -> int:
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r}; known: {', '.join(EVENTS)}")
        with self._lock:
            self._db.execute(
                "INSERT INTO feedback (user, item, event, rating, text, created) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (user, item, event, rating, text, time.time()),
            )
            (n,) = self._db.execute(
                "SELECT COUNT(*) FROM feedback WHERE user = ?", (user,)
            ).fetchone()
        return n

    def _select(self, sql: str, user: str) -> list[str]:
        with self._lock:
            return [row[0] for row in self._db.execute(sql, (user, DISMISS))]

    def items(self, user: str) -> list[str]:
        return self._select(
            "SELECT item FROM feedback WHERE user = ? AND event != ? ORDER BY id", user
        )

    def dismissed(self, user: str) -> set[str]:
        return set(self._select("SELECT item FROM feedback WHERE user = ? AND event = ?", user))

    def has_user(self, user: str) -> bool:
        with self._lock:
            row = self._db.execute("SELECT 1 FROM feedback WHERE user = ? LIMIT 1", (user,))
            return row.fetchone() is not None

    def close(self) -> None:
        with self._lock:
            self._db.close()
