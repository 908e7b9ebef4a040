"""The per-user release cache: artifacts keyed by version, checked by their sha256.

Each cached file has a ``.sha256`` sidecar written after the file itself, so a file without a
sidecar is an interrupted write and a file whose content no longer hashes to its sidecar is
corrupt; both count as misses and are rebuilt.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from cluster.release.tarball import atomic_output, sha256_file


def cache_root() -> Path:
    """``$KUBE_UP_CACHE_DIR`` or ``~/.cache/kube-up``."""
    override = os.environ.get("KUBE_UP_CACHE_DIR")
    return Path(override) if override else Path.home() / ".cache" / "kube-up"


class ReleaseCache:
    """Verified artifacts under ``<root>/release/<key>/``."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or cache_root()) / "release"

    def path(self, key: str, name: str) -> Path:
        return self.root / key / name

    def lookup(self, key: str, name: str) -> tuple[Path, str] | None:
        """The cached file and its sha256, or None when absent, unfinished or corrupt."""
        path = self.path(key, name)
        sidecar = path.with_name(path.name + ".sha256")
        if not path.is_file() or not sidecar.is_file():
            return None
        expected = sidecar.read_text().strip()
        if sha256_file(path) != expected:
            path.unlink(missing_ok=True)
            sidecar.unlink(missing_ok=True)
            return None
        return path, expected

    def store(self, key: str, name: str, source: Path) -> tuple[Path, str]:
        """Copy ``source`` into the cache (atomically) and record its sha256."""
        path = self.path(key, name)
        with atomic_output(path) as tmp:
            shutil.copyfile(source, tmp)
        digest = sha256_file(path)
        with atomic_output(path.with_name(path.name + ".sha256")) as tmp:
            tmp.write_text(digest + "\n")
        return path, digest
