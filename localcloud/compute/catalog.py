"""The fixed world every project sees: regions, zones and machine types.

These are static in GCE too (a project cannot create zones), so they are data, not records.
IDs are derived from names so that they are stable across daemon restarts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

REGIONS: dict[str, tuple[str, ...]] = {
    "us-central1": ("a", "b", "c", "f"),
    "us-east1": ("b", "c", "d"),
    "us-west1": ("a", "b", "c"),
    "europe-west1": ("b", "c", "d"),
    "asia-east1": ("a", "b", "c"),
}

# Auto-mode networks get one subnetwork per region from 10.128.0.0/9, as in GCE.
AUTO_SUBNET_RANGES: dict[str, str] = {
    "us-central1": "10.128.0.0/20",
    "europe-west1": "10.132.0.0/20",
    "us-west1": "10.138.0.0/20",
    "asia-east1": "10.140.0.0/20",
    "us-east1": "10.142.0.0/20",
}

CPU_PLATFORMS = ["Intel Broadwell", "Intel Cascade Lake", "AMD Rome"]


@dataclass(frozen=True)
class MachineType:
    name: str
    cpus: int
    memory_mb: int
    shared: bool = False

    @property
    def description(self) -> str:
        return f"{self.cpus} vCPU{'s' if self.cpus > 1 else ''}, {self.memory_mb / 1024:g} GB RAM"


MACHINE_TYPES: dict[str, MachineType] = {
    m.name: m
    for m in (
        MachineType("f1-micro", 1, 614, shared=True),
        MachineType("g1-small", 1, 1740, shared=True),
        MachineType("e2-micro", 2, 1024, shared=True),
        MachineType("e2-small", 2, 2048, shared=True),
        MachineType("e2-medium", 2, 4096, shared=True),
        MachineType("e2-standard-2", 2, 8192),
        MachineType("e2-standard-4", 4, 16384),
        MachineType("e2-standard-8", 8, 32768),
        MachineType("n1-standard-1", 1, 3840),
        MachineType("n1-standard-2", 2, 7680),
        MachineType("n1-standard-4", 4, 15360),
        MachineType("n1-standard-8", 8, 30720),
        MachineType("n1-highmem-2", 2, 13312),
        MachineType("n1-highcpu-4", 4, 3686),
    )
}

CREATED = "2015-06-01T00:00:00.000-07:00"


def stable_id(*parts: str) -> str:
    """A uint64 id (as GCE prints it: a decimal string) that depends only on ``parts``."""
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return str(int.from_bytes(digest[:8], "big") >> 1)


def zones() -> dict[str, str]:
    """zone name -> region name."""
    return {
        f"{region}-{suffix}": region for region, suffixes in REGIONS.items() for suffix in suffixes
    }


def region_of(zone: str) -> str:
    return zone.rsplit("-", 1)[0]
