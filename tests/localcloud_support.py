"""Helpers for the localcloud tests: daemons, raw HTTP, resource builders.

Every daemon started here records its answers (``--record``); when it stops, the recording is
validated against the Compute v1 discovery document, so each test that talks to a daemon also
checks the shapes of everything it was answered.
"""

from __future__ import annotations

import itertools
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.cloud import compute_v1

from localcloud import daemon
from localcloud.service import Options
from localcloud.testing import ComputeClients, compute_clients
from tests.localcloud_schema import Validator

ZONE = "us-central1-b"
REGION = "us-central1"
# One host bridge serves every project, so ranges must not overlap even across test projects.
_RANGES = (f"10.{n}.0.0/16" for n in itertools.count(100))


@dataclass
class LocalCloud:
    """A running daemon, its clients, and where its recording goes."""

    endpoints: daemon.Endpoints
    clients: ComputeClients
    state_dir: Path
    record: Path

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = http(self.endpoints.admin + "/" + path, method, body)
        assert status == 200, f"admin {method} {path}: {status} {answer}"
        return answer

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """A raw Compute API call (path after /compute/v1/)."""
        return http(f"{self.endpoints.compute}/compute/v1/{path}", method, body)


def http(
    url: str, method: str = "GET", body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            raw, status = resp.read(), resp.status
    except urllib.error.HTTPError as err:
        raw, status = err.read(), err.code
    try:
        return status, json.loads(raw) if raw else {}
    except ValueError:
        return status, raw.decode()


def start(
    state_dir: Path,
    record: Path,
    faults_file: Path | None = None,
    quotas_file: Path | None = None,
    **options: Any,
) -> LocalCloud:
    """A detached daemon as `localcloud serve` starts it (files are passed as CLI flags)."""
    settings = {"latency_scale": 0.0, "rate": 0, **options}
    opts = Options(state_dir=state_dir, record=record, **settings)
    ep = daemon.spawn(state_dir, daemon.serve_args(opts, faults_file, quotas_file))
    return LocalCloud(ep, compute_clients(ep.compute), state_dir, record)


@contextmanager
def running_cloud(tmp: Path, **options: Any) -> Iterator[LocalCloud]:
    """A daemon for the duration of the block; its answers must conform to the discovery doc."""
    cloud = start(tmp / "state", tmp / "responses.jsonl", **options)
    try:
        yield cloud
    finally:
        daemon.stop(cloud.state_dir)
    problems = Validator().check_file(cloud.record)
    assert not problems, "non-conforming answers:\n" + "\n".join(problems[:50])


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


# --- resource builders ----------------------------------------------------------------------


def make_network(
    c: ComputeClients, project: str, name: str = "net", cidr: str | None = None, subnet: bool = True
) -> None:
    """A custom-mode network with one subnetwork ``<name>-sub`` in REGION (a fresh /16 unless
    ``cidr`` is given)."""
    c.networks.insert(
        project=project,
        network_resource=compute_v1.Network(name=name, auto_create_subnetworks=False),
    ).result(timeout=30)
    if subnet:
        cidr = cidr or next(_RANGES)
        c.subnetworks.insert(
            project=project,
            region=REGION,
            subnetwork_resource=(
                compute_v1.Subnetwork(
                    name=f"{name}-sub", network=f"global/networks/{name}", ip_cidr_range=cidr
                )
            ),
        ).result(timeout=30)


def instance_body(
    name: str,
    network: str = "net",
    machine: str = "e2-small",
    external: bool = False,
    **fields: Any,
) -> compute_v1.Instance:
    nic = compute_v1.NetworkInterface(network=f"global/networks/{network}")
    if external:
        nic.access_configs = [compute_v1.AccessConfig(name="External NAT")]
    return compute_v1.Instance(
        name=name,
        machine_type=f"zones/{ZONE}/machineTypes/{machine}",
        network_interfaces=[nic],
        disks=[
            compute_v1.AttachedDisk(
                boot=True,
                auto_delete=True,
                initialize_params=compute_v1.AttachedDiskInitializeParams(
                    source_image="projects/debian-cloud/global/images/family/debian-12"
                ),
            )
        ],
        **fields,
    )


def properties(
    network: str = "net", machine: str = "e2-small", **fields: Any
) -> compute_v1.InstanceProperties:
    return compute_v1.InstanceProperties(
        machine_type=machine,
        network_interfaces=[compute_v1.NetworkInterface(network=f"global/networks/{network}")],
        disks=[
            compute_v1.AttachedDisk(
                boot=True,
                auto_delete=True,
                initialize_params=compute_v1.AttachedDiskInitializeParams(source_image="debian"),
            )
        ],
        **fields,
    )


def create_instance(c: ComputeClients, project: str, name: str, **kw: Any) -> compute_v1.Instance:
    c.instances.insert(
        project=project, zone=ZONE, instance_resource=instance_body(name, **kw)
    ).result(timeout=30)
    return c.instances.get(project=project, zone=ZONE, instance=name)
