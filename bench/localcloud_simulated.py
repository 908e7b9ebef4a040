"""How long localcloud takes to create 1000 instances through google-cloud-compute.

A daemon with the simulated backend (operation latencies at scale 1, the default per-client
rate limit) in a temporary state dir. Three ways of creating N instances, each timed from
the first call until a paged ``instances.list`` shows all N RUNNING (target: at most 30 s
each): ``instances.bulkInsert`` in one zone, an instance group manager (template +
targetSize) in another, and N single ``instances.insert`` calls from 8 threads in a third.
Prints wall times and API calls per method; writes them to
bench/results/localcloud_simulated.json.

    .venv/bin/python -m bench.localcloud_simulated [--instances N] [--latency-scale F]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from google.api_core import exceptions
from google.cloud import compute_v1

from bench.results import write_result
from localcloud import daemon
from localcloud.testing import ComputeClients, compute_clients

PROJECT = "bench"
# One region per phase: each phase's 1000 instances fit the default regional CPU quota.
BULK_ZONE, IGM_ZONE, SINGLE_ZONE = "us-central1-a", "us-east1-b", "us-west1-a"
STALL_SECONDS = 30


def _admin(ep: daemon.Endpoints, method: str, path: str) -> Any:
    req = urllib.request.Request(f"{ep.admin}/{path}", method=method)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def _properties() -> compute_v1.InstanceProperties:
    return compute_v1.InstanceProperties(
        machine_type="e2-small",
        network_interfaces=[compute_v1.NetworkInterface(network="global/networks/bench")],
        disks=[
            compute_v1.AttachedDisk(
                boot=True,
                auto_delete=True,
                initialize_params=compute_v1.AttachedDiskInitializeParams(
                    source_image="projects/debian-cloud/global/images/family/debian-12"
                ),
            )
        ],
        labels={"role": "node"},
    )


def _running(c: ComputeClients, zone: str) -> int:
    """Instances RUNNING in ``zone``, read page by page as a client would."""
    pager = c.instances.list(request={"project": PROJECT, "zone": zone, "max_results": 500})
    return sum(1 for i in pager if i.status == "RUNNING")


def _until_running(c: ComputeClients, zone: str, count: int, started: float) -> float:
    seen, progress = 0, time.monotonic()
    while (running := _running(c, zone)) < count:
        if running > seen:
            seen, progress = running, time.monotonic()
        elif time.monotonic() - progress > STALL_SECONDS:
            failed = c.zone_operations.list(
                request={"project": PROJECT, "zone": zone, "filter": "error:*", "max_results": 1}
            )
            why = next((op.error.errors[0].message for op in failed), "no failed operation")
            raise SystemExit(f"{zone}: stuck at {running}/{count} RUNNING; {why}")
        time.sleep(0.5)
    return round(time.monotonic() - started, 2)


def bulk(c: ComputeClients, count: int) -> float:
    started = time.monotonic()
    body = compute_v1.BulkInsertInstanceResource(
        count=count, name_pattern="node-####", instance_properties=_properties()
    )
    c.instances.bulk_insert(
        project=PROJECT, zone=BULK_ZONE, bulk_insert_instance_resource_resource=body
    ).result(timeout=600)
    return _until_running(c, BULK_ZONE, count, started)


def group(c: ComputeClients, count: int) -> float:
    started = time.monotonic()
    c.instance_templates.insert(
        project=PROJECT,
        instance_template_resource=(
            compute_v1.InstanceTemplate(name="bench-node", properties=_properties())
        ),
    ).result(timeout=600)
    c.instance_group_managers.insert(
        project=PROJECT,
        zone=IGM_ZONE,
        instance_group_manager_resource=compute_v1.InstanceGroupManager(
            name="bench-nodes",
            base_instance_name="bench-node",
            target_size=count,
            instance_template="global/instanceTemplates/bench-node",
        ),
    ).result(timeout=600)
    return _until_running(c, IGM_ZONE, count, started)


def singles(c: ComputeClients, count: int) -> float:
    """One ``instances.insert`` per instance from 8 threads, not waiting on each operation;
    a 429 from the rate limit is retried after a short pause, as a careful client would."""
    started = time.monotonic()

    def insert(i: int) -> None:
        body = compute_v1.Instance(
            name=f"single-{i:04d}",
            machine_type=f"zones/{SINGLE_ZONE}/machineTypes/e2-small",
            network_interfaces=[compute_v1.NetworkInterface(network="global/networks/bench")],
            disks=_properties().disks,
        )
        while True:
            try:
                c.instances.insert(project=PROJECT, zone=SINGLE_ZONE, instance_resource=body)
                return
            except exceptions.TooManyRequests:
                time.sleep(0.2)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(insert, range(count)))
    return _until_running(c, SINGLE_ZONE, count, started)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--latency-scale", type=float, default=1.0)
    args = parser.parse_args(argv)
    figures: dict[str, Any] = {"instances": args.instances, "latency_scale": args.latency_scale}
    with tempfile.TemporaryDirectory(prefix="localcloud-bench-") as tmp:
        state = Path(tmp) / "state"
        ep = daemon.ensure_running(state, latency_scale=args.latency_scale)
        try:
            c = compute_clients(ep.compute)
            # Auto mode: a /20 subnetwork in every region, 4000 addresses each.
            c.networks.insert(
                project=PROJECT,
                network_resource=compute_v1.Network(name="bench", auto_create_subnetworks=True),
            ).result(timeout=60)
            phases = (
                ("bulk_insert", bulk),
                ("instance_group_manager", group),
                ("single_inserts", singles),
            )
            for name, create in phases:
                _admin(ep, "DELETE", "stats")
                seconds = create(c, args.instances)
                calls = _admin(ep, "GET", "stats")
                figures[f"{name}_wall_s"] = seconds
                figures[f"{name}_calls"] = calls["calls"]
                figures[f"{name}_calls_total"] = calls["total"]
                print(
                    f"{name}: {args.instances} instances RUNNING in {seconds:.2f} s "
                    f"(target <= 30 s), {calls['total']} API calls",
                    flush=True,
                )
                for method, n in calls["calls"].items():
                    print(f"  {method:50s} {n:6d}")
        finally:
            daemon.stop(state)
    path = write_result("localcloud_simulated", figures)
    print(f"figures written to {path}")


if __name__ == "__main__":
    main()
