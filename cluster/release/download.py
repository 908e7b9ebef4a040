"""The official server tarball, from the Kubernetes release site, checked by its sha512.

Only used when asked (``--download`` or ``KUBE_RELEASE_DOWNLOAD=1``): on a machine without
internet a probe would only cost a timeout and send traffic off the host.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

from cluster.errors import PrereqError
from cluster.release.gobuild import KUBE_COMMANDS
from cluster.release.server_tarball import BIN_PREFIX, SERVER_TARBALL
from cluster.release.tarball import atomic_output

DEFAULT_BASE_URL = "https://dl.k8s.io/release"
TIMEOUT_S = 30


def release_base_url() -> str:
    """``$KUBE_RELEASE_BASE_URL`` (a mirror, or a test server) or the official site."""
    return os.environ.get("KUBE_RELEASE_BASE_URL", DEFAULT_BASE_URL).rstrip("/")


def _fetch(url: str, dest: Path) -> None:
    try:
        with (
            urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp,
            atomic_output(dest) as tmp,
            tmp.open("wb") as out,
        ):
            shutil.copyfileobj(resp, out, 1 << 20)
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        raise PrereqError(
            f"cannot download {url} ({err}); without network access leave --download out "
            "to build the binaries with Go"
        ) from None


def download_kube_binaries(version: str, workdir: Path) -> Path:
    """Download and verify the official server tarball; extract its Kubernetes commands into
    ``workdir/bin`` and return that directory."""
    url = f"{release_base_url()}/{version}/{SERVER_TARBALL}"
    tarball = workdir / SERVER_TARBALL
    _fetch(url + ".sha512", workdir / f"{SERVER_TARBALL}.sha512")
    expected = (workdir / f"{SERVER_TARBALL}.sha512").read_text().split()[0].strip().lower()
    _fetch(url, tarball)
    digest = hashlib.sha512()
    with tarball.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != expected:
        tarball.unlink()
        raise PrereqError(f"{url} does not match its published sha512; try again or build with Go")
    bin_dir = workdir / "bin"
    shutil.rmtree(bin_dir, ignore_errors=True)
    bin_dir.mkdir(parents=True)
    with tarfile.open(tarball, "r:gz") as tar:
        for name in KUBE_COMMANDS:
            member = tar.getmember(f"{BIN_PREFIX}/{name}")
            source = tar.extractfile(member)
            if source is None:
                raise PrereqError(f"{url} has no {BIN_PREFIX}/{name}")
            with (bin_dir / name).open("wb") as out:
                shutil.copyfileobj(source, out)
            (bin_dir / name).chmod(0o755)
    tarball.unlink()
    return bin_dir
