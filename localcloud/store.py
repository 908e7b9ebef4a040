"""Durable resource store: sqlite3 (WAL) on disk, mirrored in memory for fast reads.

Every API record is a JSON document keyed by (project, collection, scope, name), where scope is
``global``, ``zones/<zone>`` or ``regions/<region>``. The daemon is the only writer, so an
in-memory mirror loaded at start stays exact and lets lists of thousands of instances be served
without touching sqlite; writes go through to disk in the same critical section.
"""

from __future__ import annotations

import copy
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

Doc = dict[str, Any]
Key = tuple[str, str, str, str]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    project TEXT NOT NULL, collection TEXT NOT NULL, scope TEXT NOT NULL, name TEXT NOT NULL,
    body TEXT NOT NULL, PRIMARY KEY (project, collection, scope, name));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class Store:
    """Resources by key, with one re-entrant lock guarding memory and disk together.

    ``lock`` is public on purpose: API handlers hold it across read-check-write sequences
    (name uniqueness, IP allocation, fingerprints). ``changed`` is notified after every write,
    which is how the metadata server implements ``wait_for_change``.
    """

    def __init__(self, path: Path) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.version = 0
        # Records hold instance metadata, which may carry secrets (kube-env): owner only.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._batch_depth = 0
        self._docs: dict[tuple[str, str, str], dict[str, Doc]] = {}
        for project, collection, scope, name, body in self._db.execute(
            "SELECT project, collection, scope, name, body FROM resources"
        ):
            self._docs.setdefault((project, collection, scope), {})[name] = json.loads(body)

    def close(self) -> None:
        with self.lock:
            self._db.close()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group writes into one sqlite transaction (one commit for a 1000-instance bulk insert)."""
        with self.lock:
            if self._batch_depth == 0:
                self._db.execute("BEGIN")
            self._batch_depth += 1
            try:
                yield
            finally:
                self._batch_depth -= 1
                if self._batch_depth == 0:
                    self._db.execute("COMMIT")

    def get(self, project: str, collection: str, scope: str, name: str) -> Doc | None:
        """A private copy of one document, or None."""
        with self.lock:
            doc = self._docs.get((project, collection, scope), {}).get(name)
            return copy.deepcopy(doc) if doc is not None else None

    def peek(self, project: str, collection: str, scope: str, name: str) -> Doc | None:
        """The stored document itself: read it, never modify it."""
        with self.lock:
            return self._docs.get((project, collection, scope), {}).get(name)

    def list(self, project: str, collection: str, scope: str | None = None) -> list[Doc]:
        """Stored documents (read-only) of one scope, or of every scope when ``scope`` is None."""
        with self.lock:
            if scope is not None:
                return list(self._docs.get((project, collection, scope), {}).values())
            return [
                doc
                for (proj, coll, _), docs in self._docs.items()
                if proj == project and coll == collection
                for doc in docs.values()
            ]

    def keys(self, collection: str) -> list[tuple[str, str, str]]:
        """(project, scope, name) of every document in ``collection``, across projects."""
        with self.lock:
            return [
                (proj, scope, name)
                for (proj, coll, scope), docs in self._docs.items()
                if coll == collection
                for name in docs
            ]

    def projects(self) -> list[str]:
        with self.lock:
            return sorted({proj for proj, _, _ in self._docs})

    def put(self, project: str, collection: str, scope: str, name: str, doc: Doc) -> None:
        with self.lock:
            self._db.execute(
                "INSERT OR REPLACE INTO resources VALUES (?, ?, ?, ?, ?)",
                (project, collection, scope, name, json.dumps(doc, separators=(",", ":"))),
            )
            self._docs.setdefault((project, collection, scope), {})[name] = doc
            self._touch()

    def delete(self, project: str, collection: str, scope: str, name: str) -> bool:
        with self.lock:
            docs = self._docs.get((project, collection, scope), {})
            if docs.pop(name, None) is None:
                return False
            self._db.execute(
                "DELETE FROM resources WHERE project=? AND collection=? AND scope=? AND name=?",
                (project, collection, scope, name),
            )
            self._touch()
            return True

    def get_meta(self, key: str) -> str | None:
        with self.lock:
            row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
            return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.lock:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def _touch(self) -> None:
        self.version += 1
        self.changed.notify_all()
