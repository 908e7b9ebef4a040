"""Per-region and per-project quotas, counted from the records themselves.

Usage is computed from the store on demand (it is all in memory), so it can never drift from
what exists. Limits are defaults overridden per daemon (``--quotas FILE`` or the admin
endpoint); a request that would go over ends in a ``QUOTA_EXCEEDED`` operation error, as in GCE.
"""

from __future__ import annotations

import threading
from typing import Any

from localcloud.compute.catalog import MACHINE_TYPES, REGIONS, region_of
from localcloud.errors import quota_exceeded
from localcloud.store import Store

REGION_LIMITS: dict[str, float] = {
    "CPUS": 4000,
    "INSTANCES": 3000,
    "DISKS_TOTAL_GB": 400000,
    "IN_USE_ADDRESSES": 3000,
    "STATIC_ADDRESSES": 100,
    "INSTANCE_GROUP_MANAGERS": 500,
}
PROJECT_LIMITS: dict[str, float] = {
    "FIREWALLS": 500,
    "ROUTES": 3000,
    "NETWORKS": 50,
    "SUBNETWORKS": 500,
    "INSTANCE_TEMPLATES": 1000,
}


def validate_limits(limits: Any) -> dict[str, float]:
    """``{"CPUS": 24, ...}`` checked against the metrics this cloud counts."""
    if not isinstance(limits, dict):
        raise ValueError("quotas must be a mapping of metric name to limit, e.g. {CPUS: 24}")
    out: dict[str, float] = {}
    for metric, limit in limits.items():
        if metric not in REGION_LIMITS and metric not in PROJECT_LIMITS:
            known = ", ".join(sorted({*REGION_LIMITS, *PROJECT_LIMITS}))
            raise ValueError(f"unknown quota metric {metric!r}; known metrics: {known}")
        if isinstance(limit, bool) or not isinstance(limit, int | float) or limit < 0:
            raise ValueError(f"quota {metric} must be a number >= 0, got {limit!r}")
        out[metric] = float(limit)
    return out


def _instance_cpus(instance: dict[str, Any]) -> int:
    machine = MACHINE_TYPES.get(instance["machineType"].rsplit("/", 1)[-1])
    return machine.cpus if machine else 0


class Quotas:
    """Limits (defaults + overrides) and usage counted from ``store``."""

    def __init__(self, store: Store, overrides: dict[str, float] | None = None) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._overrides = dict(overrides or {})

    def replace(self, overrides: dict[str, float]) -> None:
        with self._lock:
            self._overrides = dict(overrides)

    def limits(self) -> dict[str, float]:
        with self._lock:
            return {**REGION_LIMITS, **PROJECT_LIMITS, **self._overrides}

    def region_usage(self, project: str, region: str) -> dict[str, float]:
        usage = dict.fromkeys(REGION_LIMITS, 0.0)
        for zone_suffix in REGIONS.get(region, ()):
            scope = f"zones/{region}-{zone_suffix}"
            for inst in self.store.list(project, "instances", scope):
                usage["INSTANCES"] += 1
                if inst.get("status") != "TERMINATED":
                    usage["CPUS"] += _instance_cpus(inst)
                    for nic in inst.get("networkInterfaces", []):
                        usage["IN_USE_ADDRESSES"] += len(nic.get("accessConfigs", []))
            for disk in self.store.list(project, "disks", scope):
                usage["DISKS_TOTAL_GB"] += int(disk.get("sizeGb", 0))
            usage["INSTANCE_GROUP_MANAGERS"] += len(
                self.store.list(project, "instanceGroupManagers", scope)
            )
        for addr in self.store.list(project, "addresses", f"regions/{region}"):
            if addr.get("addressType") == "EXTERNAL":
                usage["STATIC_ADDRESSES"] += 1
                if addr.get("status") != "IN_USE":  # in-use ones are counted on the instance
                    usage["IN_USE_ADDRESSES"] += 1
        return usage

    def project_usage(self, project: str) -> dict[str, float]:
        count = {
            "FIREWALLS": "firewalls",
            "ROUTES": "routes",
            "NETWORKS": "networks",
            "SUBNETWORKS": "subnetworks",
            "INSTANCE_TEMPLATES": "instanceTemplates",
        }
        return {
            metric: float(len(self.store.list(project, coll))) for metric, coll in count.items()
        }

    def check_region(self, project: str, region: str, wanted: dict[str, float]) -> None:
        """Raise QUOTA_EXCEEDED if adding ``wanted`` would pass a regional limit."""
        self._check(self.region_usage(project, region), wanted, f"in region {region}")

    def check_project(self, project: str, wanted: dict[str, float]) -> None:
        self._check(self.project_usage(project), wanted, "globally")

    def check_zone(self, project: str, zone: str, wanted: dict[str, float]) -> None:
        self.check_region(project, region_of(zone), wanted)

    def _check(self, usage: dict[str, float], wanted: dict[str, float], where: str) -> None:
        limits = self.limits()
        for metric, amount in wanted.items():
            if amount > 0 and usage.get(metric, 0.0) + amount > limits[metric]:
                raise quota_exceeded(metric, limits[metric], where)

    def report(self, usage: dict[str, float]) -> list[dict[str, Any]]:
        """The ``quotas`` field of a Region or Project."""
        limits = self.limits()
        return [{"metric": m, "limit": limits[m], "usage": u} for m, u in sorted(usage.items())]
