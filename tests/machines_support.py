"""localcloud's own metadata server, for the machines backend's tests and benchmark.

The daemon serves :class:`localcloud.metadata.MetadataService` from its store; here the same
service runs on a store of its own, bound where the backend says the daemon would bind it, and
the tests put GCE-shaped instance records into it. Machines then reach it as 169.254.169.254,
identified by their own addresses, exactly as under the daemon.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from localcloud.httpd import HttpServer
from localcloud.metadata import InstanceResolver, MetadataService
from localcloud.store import Store

API = "https://www.googleapis.com/compute/v1"


def instance_record(
    project: str,
    zone: str,
    name: str,
    ip: str,
    metadata: dict[str, str],
    tags: Sequence[str] = (),
    data_disks: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An instance as the Compute API stores it (the fields the backend and metadata read).

    ``data_disks`` maps device names to disk names attached besides the boot disk."""
    zone_link = f"{API}/projects/{project}/zones/{zone}"
    disks = [
        {"source": f"{zone_link}/disks/{name}", "deviceName": "persistent-disk-0", "boot": True}
    ]
    disks += [
        {"source": f"{zone_link}/disks/{disk}", "deviceName": device, "boot": False}
        for device, disk in (data_disks or {}).items()
    ]
    for index, disk in enumerate(disks):
        disk.update(index=index, mode="READ_WRITE", type="PERSISTENT")
    return {
        "kind": "compute#instance",
        "id": str(zlib.crc32(f"{project}/{zone}/{name}".encode())),
        "name": name,
        "zone": zone_link,
        "selfLink": f"{zone_link}/instances/{name}",
        "machineType": f"{zone_link}/machineTypes/e2-small",
        "status": "RUNNING",
        "networkInterfaces": [
            {"networkIP": ip, "network": f"{API}/projects/{project}/global/networks/default"}
        ],
        "disks": disks,
        "tags": {"items": list(tags)},
        "metadata": {"items": [{"key": k, "value": v} for k, v in metadata.items()]},
    }


class Metadata:
    """The real metadata service on ``address``, with its own store under ``state``."""

    def __init__(self, state: Path, address: tuple[str, int]) -> None:
        self.store = Store(state / "metadata.db")
        service = MetadataService(self.store, InstanceResolver(self.store))
        self.server = HttpServer(service, *address)

    def __enter__(self) -> Metadata:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()
        self.store.close()

    def put(self, instance: dict[str, Any]) -> None:
        """Store (or update) ``instance``; waiting guests see the change."""
        project, zone = _where(instance)
        self.store.put(project, "instances", f"zones/{zone}", instance["name"], instance)

    def set_attribute(self, instance: dict[str, Any], key: str, value: str) -> None:
        items = instance["metadata"]["items"]
        items[:] = [i for i in items if i["key"] != key] + [{"key": key, "value": value}]
        self.put(instance)

    def guest_attribute(self, instance: dict[str, Any], key: str) -> str | None:
        project, zone = _where(instance)
        doc = self.store.peek(project, "guestAttributes", f"zones/{zone}", instance["name"])
        return (doc or {}).get("entries", {}).get(key)


def _where(instance: dict[str, Any]) -> tuple[str, str]:
    parts = instance["zone"].split("/")
    return parts[parts.index("projects") + 1], parts[-1]
