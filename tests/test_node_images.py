"""salt/node-images: the import command and its `unless` check against a private containerd
(own root, state and socket; no CRI plugin), with an OCI archive made by the release code."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster.release.images import busybox_image, oci_archive
from cluster.release.tarball import Entry
from tests.salt_harness import role_config, show_highstate

CHECK = Path(__file__).resolve().parent.parent / "salt" / "node-images" / "image-current.sh"
REF = "localhost/busybox:latest"


@pytest.fixture
def containerd(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A containerd of its own; yields the environment that points ctr at it."""
    sock = tmp_path / "containerd.sock"
    config = tmp_path / "config.toml"
    config.write_text(
        f'version = 2\nroot = "{tmp_path}/root"\nstate = "{tmp_path}/state"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        f'[grpc]\n  address = "{sock}"\n'
    )
    log = (tmp_path / "containerd.log").open("wb")
    proc = subprocess.Popen(["containerd", "--config", str(config)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            assert proc.poll() is None, (tmp_path / "containerd.log").read_text()
            assert time.monotonic() < deadline, "containerd did not start"
            time.sleep(0.1)
        yield {**os.environ, "CONTAINERD_ADDRESS": str(sock)}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _node_image_states(tmp_path: Path) -> dict[str, str]:
    states = show_highstate(role_config(tmp_path / "salt", "node"))
    return {
        str(s.args["name"]): str(s.args["unless"])
        for sid, s in states.items()
        if sid == f"node-image-{REF}"
    }


def _sh(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True)


def test_import_runs_once_per_image_content(tmp_path: Path, containerd: dict[str, str]) -> None:
    ((command, unless),) = _node_image_states(tmp_path).items()
    archive = tmp_path / "busybox.oci.tar"
    archive.write_bytes(busybox_image())
    command = command.replace("/opt/kubernetes/images/busybox.oci.tar", str(archive))
    unless = unless.replace("/usr/local/lib/kube-up/image-current.sh", str(CHECK))
    unless = unless.replace("/opt/kubernetes/images/busybox.oci.tar", str(archive))
    # native: this test's containerd root may sit on any filesystem.
    command = command.replace("--snapshotter overlayfs", "--snapshotter native")

    assert _sh(unless, containerd).returncode != 0  # not imported yet: salt runs the import
    imported = _sh(command, containerd)
    assert imported.returncode == 0, imported.stderr
    assert _sh(unless, containerd).returncode == 0  # now current: salt skips it

    # A new release's image under the same name is imported again.
    changed = oci_archive(REF, [Entry("hello", data=b"v2\n")], {"Cmd": ["/hello"]})
    archive.write_bytes(changed)
    assert _sh(unless, containerd).returncode != 0
    assert _sh(command, containerd).returncode == 0
    assert _sh(unless, containerd).returncode == 0
