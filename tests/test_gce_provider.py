"""kube-up/kube-down on the GCE provider against localcloud's simulated backend.

The CLI runs as users run it (a subprocess, env vars); what it made is checked by listing the
cloud with google-cloud-compute and google-cloud-storage, never by reading our own output.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.cloud import compute_v1

from cluster.release.builder import MANIFEST, ReleaseManifest
from gce.resources import CLUSTER_LABEL
from localcloud.daemon import Endpoints, ensure_running, stop
from localcloud.testing import ComputeClients, compute_clients, storage_client
from tests.local_cluster import private_cluster_env

REPO = Path(__file__).resolve().parents[1]
BIN = REPO / ".venv" / "bin"
RELEASE = REPO / "_output" / "release"
PROJECT, ZONE, REGION = "kube-local", "us-central1-b", "us-central1"
NODES = 3
LABEL = f"labels.{CLUSTER_LABEL} = kubernetes"


@pytest.fixture
def cloud(tmp_path) -> Iterator[tuple[dict[str, str], Endpoints, ComputeClients]]:
    env = {
        **os.environ,
        **private_cluster_env(tmp_path, nodes=NODES),
        "LOCALCLOUD_BACKEND": "simulated",
    }
    state_dir = Path(env["LOCALCLOUD_STATE_DIR"])
    endpoints = ensure_running(state_dir, backend="simulated")
    try:
        yield env, endpoints, compute_clients(endpoints.compute)
    finally:
        stop(state_dir)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]], env=env, capture_output=True, text=True, timeout=600
    )


def admin(endpoints: Endpoints, what: str, body: object = None, method: str = "GET") -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"{endpoints.admin}/{what}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def restarted(env: dict[str, str]) -> tuple[ComputeClients, Endpoints]:
    """The same cloud (its state on disk), served again."""
    endpoints = ensure_running(Path(env["LOCALCLOUD_STATE_DIR"]), backend="simulated")
    return compute_clients(endpoints.compute), endpoints


def labelled(c: ComputeClients) -> dict[str, set[str]]:
    """Every resource of the cluster, found by its label or its owner description."""
    mine = "kube-up cluster kubernetes"
    return {
        "instances": {
            i.name
            for i in c.instances.list(
                request=compute_v1.ListInstancesRequest(project=PROJECT, zone=ZONE, filter=LABEL)
            )
        },
        "disks": {
            d.name
            for d in c.disks.list(
                request=compute_v1.ListDisksRequest(project=PROJECT, zone=ZONE, filter=LABEL)
            )
        },
        "addresses": {
            a.name
            for a in c.addresses.list(
                request=compute_v1.ListAddressesRequest(
                    project=PROJECT, region=REGION, filter=LABEL
                )
            )
        },
        "firewalls": {f.name for f in c.firewalls.list(project=PROJECT) if f.description == mine},
        "routes": {r.name for r in c.routes.list(project=PROJECT) if r.description == mine},
        "templates": {
            t.name for t in c.instance_templates.list(project=PROJECT) if t.description == mine
        },
        "subnetworks": {
            s.name
            for s in c.subnetworks.list(project=PROJECT, region=REGION)
            if s.description == mine
        },
        "networks": {n.name for n in c.networks.list(project=PROJECT) if n.description == mine},
    }


def test_kube_up_creates_the_whole_wired_resource_set(cloud):
    env, endpoints, c = cloud
    proc = cli(env, "kube-up", "--no-wait")
    assert proc.returncode == 0, proc.stderr
    found = labelled(c)
    nodes = {f"kubernetes-minion-{i}" for i in range(1, NODES + 1)}
    assert found["instances"] == {"kubernetes-master", *nodes}
    assert found["firewalls"] == {
        "kubernetes-internal",
        "kubernetes-ssh",
        "kubernetes-master-https",
    }
    assert found["routes"] == {f"{n}-route" for n in nodes}
    assert found["addresses"] == {"kubernetes-master-ip", "kubernetes-master-internal-ip"}
    assert "kubernetes-master-pd" in found["disks"]
    assert len(found["templates"]) == 1 and found["subnetworks"] == {"kubernetes-subnet"}

    master = c.instances.get(project=PROJECT, zone=ZONE, instance="kubernetes-master")
    internal = c.addresses.get(
        project=PROJECT, region=REGION, address="kubernetes-master-internal-ip"
    )
    external = c.addresses.get(project=PROJECT, region=REGION, address="kubernetes-master-ip")
    nic = master.network_interfaces[0]
    assert nic.network_i_p == internal.address
    assert nic.access_configs[0].nat_i_p == external.address
    assert any(d.device_name == "master-pd" for d in master.disks)
    keys = {i.key for i in master.metadata.items}
    assert {"startup-script", "kube-env", "ssh-keys", "enable-guest-attributes"} <= keys

    cidrs = {}
    for name in nodes:
        node = c.instances.get(project=PROJECT, zone=ZONE, instance=name)
        metadata = {i.key: i.value for i in node.metadata.items}
        assert "APISERVER_KEY" not in metadata["kube-env"]
        assert "KUBELET_CERT" in metadata["kube-env"]
        mapping = dict(line.split() for line in metadata["pod-cidrs"].splitlines())
        cidrs[name] = mapping[name]
        assert node.can_ip_forward
    assert len(set(cidrs.values())) == NODES
    for route in c.routes.list(project=PROJECT):
        if route.name.endswith("-route"):
            node = route.name.removesuffix("-route")
            assert route.dest_range == cidrs[node]
            assert route.next_hop_instance.endswith(f"/instances/{node}")

    manifest = ReleaseManifest.load(RELEASE / MANIFEST)
    bucket = next(iter(storage_client(endpoints.storage, PROJECT).list_buckets()))
    staged = {b.name: (b.metadata or {}).get("sha256") for b in bucket.list_blobs()}
    for artifact in manifest.artifacts.values():
        assert staged[f"{manifest.kube_version}/{artifact.file}"] == artifact.sha256


def test_a_rerun_creates_nothing_and_kube_down_leaves_nothing(cloud):
    env, endpoints, c = cloud
    assert cli(env, "kube-up", "--no-wait").returncode == 0
    admin(endpoints, "stats", method="DELETE")
    assert cli(env, "kube-up", "--no-wait").returncode == 0
    calls = admin(endpoints, "stats")["calls"]
    writes = {m: n for m, n in calls.items() if m.endswith((".insert", ".bulkInsert"))}
    assert writes == {}

    dry = cli(env, "kube-down", "--dry-run")
    assert dry.returncode == 0 and "would delete instance kubernetes-master" in dry.stderr
    assert labelled(c)["instances"]  # a dry run deletes nothing
    down = cli(env, "kube-down")
    assert down.returncode == 0, down.stderr
    c, endpoints = restarted(env)  # kube-down stops a local cloud it left empty
    assert all(not names for names in labelled(c).values()), labelled(c)
    assert list(storage_client(endpoints.storage, PROJECT).list_buckets()) == []
    assert cli(env, "kube-down").returncode == 0  # idempotent


def test_overload_is_retried_and_a_failed_operation_is_one_clear_line(cloud):
    env, endpoints, c = cloud
    admin(
        endpoints,
        "faults",
        {
            "seed": 3,
            "rules": [
                {"api": "compute.firewalls.insert", "nth": [1, 2], "fault": "http_error"},
                {"api": "compute.instances.insert", "nth": [2], "fault": "rate_limit"},
                {
                    "api": "compute.routes.insert",
                    "nth": [2],
                    "fault": "quota",
                    "metric": "ROUTES",
                },
            ],
        },
        method="POST",
    )
    failed = cli(env, "kube-up", "--no-wait")
    assert failed.returncode == 4, failed.stderr
    last = failed.stderr.strip().splitlines()[-1]
    assert "QUOTA_EXCEEDED" in last and "route" in last and "Traceback" not in failed.stderr
    assert labelled(c)["firewalls"]  # the 503s on firewalls were retried

    admin(endpoints, "faults", method="DELETE")
    again = cli(env, "kube-up", "--no-wait")
    assert again.returncode == 0, again.stderr
    assert len(labelled(c)["routes"]) == NODES
    assert cli(env, "kube-down").returncode == 0
    c, _ = restarted(env)
    assert all(not names for names in labelled(c).values())


def test_bad_config_is_refused_before_any_cloud_call(cloud):
    env, endpoints, _ = cloud
    admin(endpoints, "stats", method="DELETE")
    proc = cli({**env, "NUM_NODES": "-3"}, "kube-up", "--no-wait")
    assert proc.returncode == 2
    assert "NUM_NODES" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert admin(endpoints, "stats")["total"] == 0
