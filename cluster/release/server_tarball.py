"""The server tarball: its upstream layout, checked on input and produced on output."""

from __future__ import annotations

import tarfile
from pathlib import Path, PurePosixPath

from cluster.errors import ConfigError
from cluster.release.gobuild import KUBE_COMMANDS
from cluster.release.tarball import Entry, write_tar_gz

SERVER_TARBALL = "kubernetes-server-linux-amd64.tar.gz"
BIN_PREFIX = "kubernetes/server/bin"
VERSION_FILE = "kubernetes/version"
ETCD_COMMANDS = ("etcd", "etcdctl")
REQUIRED_BINARIES = KUBE_COMMANDS + ETCD_COMMANDS


def _bad(path: Path, why: str) -> ConfigError:
    return ConfigError(
        f"--server-tarball {path}: {why}; pass a kubernetes-server-linux-amd64.tar.gz with "
        f"{BIN_PREFIX}/{{{','.join(REQUIRED_BINARIES)}}} and {VERSION_FILE}, "
        "or leave the option out to build one"
    )


def check_layout(path: Path) -> str:
    """Check a server tarball has the upstream layout; return the version it carries."""
    if not path.is_file():
        raise _bad(path, "no such file")
    try:
        with tarfile.open(path, "r:*") as tar:
            members = {m.name.removeprefix("./"): m for m in tar.getmembers()}
            unsafe = [n for n in members if n.startswith("/") or ".." in PurePosixPath(n).parts]
            if unsafe:
                raise _bad(path, f"member {unsafe[0]!r} would land outside the extraction dir")
            missing = [
                name
                for name in REQUIRED_BINARIES
                if not (m := members.get(f"{BIN_PREFIX}/{name}"))
                or not m.isfile()
                or not m.mode & 0o111
            ]
            if missing:
                raise _bad(path, f"missing executable {BIN_PREFIX}/{', '.join(missing)}")
            version_member = members.get(VERSION_FILE)
            handle = tar.extractfile(version_member) if version_member else None
            if handle is None:
                raise _bad(path, f"missing {VERSION_FILE}")
            version = handle.read(64).decode(errors="replace").strip()
    except (tarfile.TarError, EOFError, OSError) as err:
        raise _bad(path, f"not a readable tar.gz ({err})") from None
    if not version.startswith("v1."):
        raise _bad(path, f"{VERSION_FILE} says {version!r}, not a v1.x version")
    return version


def write_server_tarball(bin_dir: Path, version: str, dest: Path) -> str:
    """Pack ``bin_dir`` into the upstream layout; return the tarball's sha256."""
    entries = [
        Entry("kubernetes"),
        Entry("kubernetes/server"),
        Entry(BIN_PREFIX),
        Entry(VERSION_FILE, data=f"{version}\n".encode()),
    ]
    entries += [
        Entry(f"{BIN_PREFIX}/{name}", source=bin_dir / name, mode=0o755)
        for name in REQUIRED_BINARIES
    ]
    return write_tar_gz(entries, dest)
