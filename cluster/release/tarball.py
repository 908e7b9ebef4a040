"""Deterministic tarballs and atomic file output.

The salt tarball and the images are named by their sha256, so the same inputs must give the same
bytes: entries sorted, mtimes fixed, owners root, gzip header without a timestamp.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

FIXED_MTIME = 0


@dataclass(frozen=True)
class Entry:
    """One member of a tarball: a regular file, a directory or a symlink."""

    name: str
    data: bytes | None = None
    source: Path | None = None
    mode: int = 0o644
    link_target: str | None = None

    @property
    def is_dir(self) -> bool:
        return self.data is None and self.source is None and self.link_target is None


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks so large tarballs stay out of memory."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_output(dest: Path, mode: int = 0o644) -> Iterator[Path]:
    """Yield a temp path beside ``dest``; rename it over ``dest`` only if the block succeeds.

    A failure or a kill leaves no half-written ``dest``; the temp file is removed on error.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        tmp.chmod(mode)
        os.replace(tmp, dest)
        # rename() does nothing when both names are links to one file (a cached artifact
        # placed again), so the temp name may still be there.
        tmp.unlink(missing_ok=True)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def entries_from_tree(root: Path, prefix: str) -> list[Entry]:
    """Every file, directory and symlink under ``root``, named under ``prefix``.

    Modes are normalised to 0755 (executables, directories) or 0644 so a checkout's umask does not
    change the bytes.
    """
    entries = [Entry(name=prefix)]
    for path in sorted(root.rglob("*")):
        if "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        name = f"{prefix}/{path.relative_to(root).as_posix()}"
        if path.is_symlink():
            entries.append(Entry(name=name, link_target=os.readlink(path)))
        elif path.is_dir():
            entries.append(Entry(name=name))
        else:
            executable = os.access(path, os.X_OK)
            entries.append(Entry(name=name, source=path, mode=0o755 if executable else 0o644))
    return entries


def _tarinfo(entry: Entry, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(entry.name)
    info.mtime = FIXED_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    if entry.link_target is not None:
        info.type = tarfile.SYMTYPE
        info.linkname = entry.link_target
        info.mode = 0o777
    elif entry.is_dir:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    else:
        info.size = size
        info.mode = entry.mode
    return info


def write_tar(entries: Iterable[Entry], out: io.BufferedIOBase) -> None:
    """Write ``entries`` as an uncompressed tar stream, sorted by name."""
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.source is not None:
                with entry.source.open("rb") as handle:
                    size = os.fstat(handle.fileno()).st_size
                    tar.addfile(_tarinfo(entry, size), handle)
            elif entry.data is not None:
                tar.addfile(_tarinfo(entry, len(entry.data)), io.BytesIO(entry.data))
            else:
                tar.addfile(_tarinfo(entry, 0))


def tar_bytes(entries: Iterable[Entry]) -> bytes:
    """The uncompressed tar of ``entries`` in memory (for small image layers)."""
    buffer = io.BytesIO()
    write_tar(entries, buffer)
    return buffer.getvalue()


def gzip_bytes(data: bytes) -> bytes:
    """Gzip with no name and mtime 0, so equal input gives equal output."""
    return gzip.compress(data, compresslevel=6, mtime=0)


def write_tar_gz(entries: Iterable[Entry], dest: Path) -> str:
    """Write a deterministic ``.tar.gz`` atomically; return its sha256."""
    with (
        atomic_output(dest) as tmp,
        tmp.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz,
    ):
        write_tar(entries, gz)
    return sha256_file(dest)
