"""Salt for the VMs, staged with the release because VMs reach no package index.

``pip install --target`` gives a directory of packages that any CPython of the same minor version
runs with ``PYTHONPATH`` set; Debian 12 VMs (and localcloud's machines) have python3.11.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from cluster.release.gobuild import BuildFailed
from cluster.release.tarball import entries_from_tree, write_tar_gz

SALT_REQUIREMENT = "salt==3008.4"
PYTHON_TAG = f"py{sys.version_info.major}.{sys.version_info.minor}"
RUNTIME_NAME = f"salt-runtime-{PYTHON_TAG}-linux-amd64.tar.gz"


def build_salt_runtime(dest: Path) -> str:
    """Install salt into a fresh directory and pack it as ``salt-runtime/``; return the sha256."""
    with tempfile.TemporaryDirectory(prefix="salt-runtime-") as tmp:
        target = Path(tmp) / "salt-runtime"
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile",
             "--disable-pip-version-check", "--target", str(target), SALT_REQUIREMENT],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            lines = proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"]
            raise BuildFailed(f"pip install of {SALT_REQUIREMENT} failed: {lines[-1]}")
        return write_tar_gz(entries_from_tree(target, "salt-runtime"), dest)
