"""Per-method call counters (for the bench's "API calls per method") and a response recorder
(for the conformance tests, which validate every body the daemon produced)."""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from pathlib import Path
from typing import Any


class CallStats:
    """Calls and error answers per API method id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: Counter[str] = Counter()
        self._errors: Counter[str] = Counter()

    def count(self, method_id: str, status: int) -> None:
        with self._lock:
            self._calls[method_id] += 1
            if status >= 400:
                self._errors[method_id] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "calls": dict(sorted(self._calls.items())),
                "errors": dict(sorted(self._errors.items())),
                "total": sum(self._calls.values()),
            }

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()
            self._errors.clear()


class Recorder:
    """Appends ``{"method", "status", "body"}`` JSON lines to a file, one per API answer."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)  # answers carry metadata
        self._file = os.fdopen(fd, "a", encoding="utf-8")

    def record(self, method_id: str, status: int, body: Any) -> None:
        line = json.dumps({"method": method_id, "status": status, "body": body})
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()
