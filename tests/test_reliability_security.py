"""Security properties that hold without real machines, checked on the simulated cloud.

- Every file of the cluster's state, the kubeconfig and ``~/.kubernetes_auth`` are 0600 (their
  directories 0700) even under umask 000.
- No secret (private keys, the admin password) in what the commands print (``-v`` included),
  in any process's arguments while they run, or in any file others may read (the run's files,
  localcloud's state, database and log).
- Each VM's metadata, as the cloud stores it, holds only the keys its role needs: nodes only
  the kubelet's and kube-proxy's; the master no CA key, password or SSH key; nothing in
  project-wide metadata.

The same checks on a real cluster (and those only a real cluster allows: the apiserver's
answers, open ports, host keys) are in tests/test_reliability_cluster.py.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from cluster.kubeconfig import write_kubeconfig
from cluster.state import ClusterState, write_auth_file
from tests.localcloud_support import http
from tests.reliability_cloud import (
    CLUSTER,
    PROJECT,
    SimCloud,
    metadata_items,
    private_mode_problems,
    sim_cloud,
    write_release,
)
from tests.reliability_runner import RunResult, run_cli
from tests.reliability_secrets import (
    MASTER_KEYS,
    NODE_KEYS,
    cluster_secrets,
    found_in,
    leaks_in_files,
    watching_command_lines,
)

WATCHER_CANARY = "watcher-canary-argument"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimCloud]:
    with sim_cloud(tmp_path_factory.mktemp("security")) as found:
        yield found


def _run(cloud: SimCloud, command: str, *args: str, umask: int = 0o022) -> RunResult:
    argv = list(args)
    if command in ("kube-up", "kube-push"):
        argv += ["--release-dir", str(cloud.release)]
    work = cloud.root / "runs" / f"{command}-{len(list(cloud.root.glob('runs/*')))}"
    return run_cli(command, ["-v", *argv], cloud.env(), work, umask=umask)


@pytest.fixture(scope="module")
def runs(cloud: SimCloud) -> Iterator[tuple[list[RunResult], set[bytes]]]:
    """kube-up (umask 000), kube-push of another release, watched; kube-down after the tests."""
    with watching_command_lines() as seen:
        subprocess.run([sys.executable, "-c", "import time; time.sleep(0.5)", WATCHER_CANARY])
        up = _run(cloud, "kube-up", "--no-wait", umask=0)
        assert up.returncode == 0, up.stderr
        v2 = write_release(cloud.root / "release-v2", tag="v2")
        push = run_cli(
            "kube-push", ["-v", "--release-dir", str(v2)], cloud.env(), cloud.root / "push"
        )
    yield [up, push], seen
    down = _run(cloud, "kube-down")
    assert down.returncode == 0, down.stderr


def test_state_files_are_private_even_under_umask_000(cloud: SimCloud, runs: object) -> None:
    assert private_mode_problems(cloud.cluster_state) == []


def test_kubeconfig_and_credentials_file_are_private_even_under_umask_000(
    cloud: SimCloud, runs: object, tmp_path: Path
) -> None:
    state = ClusterState(CLUSTER, cloud.run_root / "state")
    secrets = state.ensure_secrets()
    old = os.umask(0)
    try:
        kubeconfig = write_kubeconfig(
            CLUSTER,
            "https://203.0.113.1",
            secrets.ca.cert_pem,
            secrets.admin,
            path=tmp_path / "new-dir" / "config",
        )
        auth = write_auth_file(state, secrets, {"KUBERNETES_AUTH_FILE": str(tmp_path / "auth")})
    finally:
        os.umask(old)
    assert stat.S_IMODE(kubeconfig.stat().st_mode) == 0o600
    assert stat.S_IMODE(kubeconfig.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(auth.stat().st_mode) == 0o600
    config = yaml.safe_load(kubeconfig.read_text())
    assert "insecure-skip-tls-verify" not in kubeconfig.read_text()
    assert config["clusters"][0]["cluster"]["certificate-authority-data"]


def test_no_secret_in_output_process_arguments_or_files_others_can_read(
    cloud: SimCloud, runs: tuple[list[RunResult], set[bytes]]
) -> None:
    results, command_lines = runs
    secrets = cluster_secrets(cloud.cluster_state)
    assert len(secrets) >= 12
    state_files = b"".join(p.read_bytes() for p in cloud.cluster_state.rglob("*") if p.is_file())
    assert found_in(state_files, secrets) == {s.name for s in secrets}  # the search finds them
    for result in results:
        assert found_in(result.stdout + result.stderr, secrets) == set(), result.command
    leaked = {line[:200] for line in command_lines if found_in(line, secrets)}
    assert leaked == set()
    # the watcher saw a short-lived process come and go while the commands ran
    assert any(WATCHER_CANARY.encode() in line for line in command_lines)
    assert leaks_in_files([cloud.root], secrets) == {}
    localcloud = cloud.state_dir
    for name in ("localcloud.db", "localcloud.log"):
        assert stat.S_IMODE((localcloud / name).stat().st_mode) & 0o077 == 0, name


def test_each_vm_metadata_holds_only_the_keys_its_role_needs(cloud: SimCloud, runs: object) -> None:
    secrets = cluster_secrets(cloud.cluster_state)
    inventory = cloud.inventory()
    vms = {
        name: item
        for (kind, name), item in inventory.items()
        if kind == "instance" and item.get("labels", {}).get("kube-up-cluster") == CLUSTER
    }
    templates = [
        item
        for (kind, _), item in inventory.items()
        if kind == "instance-template" and item.get("description") == f"kube-up cluster {CLUSTER}"
    ]
    assert len(vms) == 3 and templates
    for name, vm in vms.items():
        text = "\n".join(metadata_items(vm).values())
        allowed = MASTER_KEYS if name == f"{CLUSTER}-master" else NODE_KEYS
        assert found_in(text, secrets) == allowed, name
    for template in templates:
        text = "\n".join(metadata_items(template["properties"]).values())
        assert found_in(text, secrets) == NODE_KEYS
    status, project = http(f"{cloud.endpoints.compute}/compute/v1/projects/{PROJECT}")
    assert status == 200 and project["name"] == PROJECT
    assert found_in(str(project.get("commonInstanceMetadata", {})), secrets) == set()
