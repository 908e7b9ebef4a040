"""Where a test's or benchmark's own local cluster keeps its files, and when one may start.

Everything a run writes (the cloud's state, the cluster's secrets, the kubeconfig, the
credentials file) goes below one directory, so the developer's own stay untouched.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RELEASE = REPO / "_output" / "release"
BRIDGE = "lcbr0"


def private_cluster_env(root: Path, nodes: int) -> dict[str, str]:
    """The settings of a local cluster of ``nodes`` nodes whose every file is below ``root``."""
    return {
        "KUBERNETES_PROVIDER": "local",
        "NUM_NODES": str(nodes),
        "LOCALCLOUD_STATE_DIR": str(root / "localcloud"),
        "KUBE_UP_STATE_DIR": str(root / "state"),
        "KUBECONFIG": str(root / "kube" / "config"),
        "KUBERNETES_AUTH_FILE": str(root / "kubernetes_auth"),
    }


def require_release_and_free_bridge() -> None:
    """Fail a real-machine test early: it needs the release, and the host bridge to itself."""
    if not (RELEASE / "release.json").exists():
        pytest.fail("no release in _output/release: run `make release` (make test does)")
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        pytest.fail(f"{BRIDGE} exists: a local cluster is up; run `make down` first")
