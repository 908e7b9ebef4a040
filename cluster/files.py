"""Writing files that hold secrets: private from their first byte, replaced atomically.

A reader never sees a half-written key or kubeconfig (the new content is renamed over the old),
and no secret is ever readable by others, not even for a moment: the temporary file is created
0600 by ``mkstemp`` before anything is written to it, whatever the umask.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

from cluster.errors import PrereqError

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and make it 0700, tightening it if it already existed."""
    try:
        path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        if path.stat().st_mode & 0o777 != PRIVATE_DIR:
            path.chmod(PRIVATE_DIR)
    except OSError as exc:
        raise unusable(path, exc) from None
    return path


def write_private(path: Path, data: bytes | str) -> None:
    """Atomically replace ``path`` with ``data``, mode 0600 from creation."""
    payload = data.encode() if isinstance(data, str) else data
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise unusable(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), PRIVATE_FILE)
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise unusable(path, exc) from None
        raise


def check_writable(path: Path) -> None:
    """Fail now, not after the cluster is built, if ``path`` could not be written later.

    Nothing is created: where the directory exists a scratch file is made and removed there,
    otherwise its nearest existing ancestor must be a directory we may write to."""
    try:
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        ancestor = path.parent
        while not ancestor.exists():
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        if ancestor == path.parent:
            fd, scratch = tempfile.mkstemp(dir=ancestor, prefix=f".{path.name}.", suffix=".check")
            os.close(fd)
            os.unlink(scratch)
        elif not os.access(ancestor, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
    except OSError as exc:
        raise unusable(path, exc) from None


def unusable(path: Path, exc: OSError) -> PrereqError:
    """A local file kube-up cannot write (full disk, a file where a directory should be...)."""
    return PrereqError(
        f"cannot write {path}: {exc.strerror or exc}",
        fix="make room or fix its permissions there (or point KUBE_UP_STATE_DIR, KUBECONFIG "
        "or KUBERNETES_AUTH_FILE elsewhere), then re-run",
    )


def _fsync_dir(path: Path) -> None:
    """Make the rename durable, so a crash cannot bring the old file back."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
