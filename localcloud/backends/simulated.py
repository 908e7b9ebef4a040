"""The ``simulated`` backend: instances are records only.

Every call is cheap and in memory, so the API can be driven with thousands of instances and
seeded faults; an instance "runs" exactly when the API says so. What the API asked of it is
kept (subnets, routes, firewalls, serial output) and shown by :meth:`describe`, which the
admin API serves so tests can check what a real backend would have been told.
"""

from __future__ import annotations

import threading
from typing import Any

from localcloud.backends.base import MachineBackend, Resource


class SimulatedBackend(MachineBackend):
    name = "simulated"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subnets: dict[str, str] = {}
        self._routes: list[tuple[str, str]] = []
        self._firewalls: list[str] = []
        self._consoles: dict[str, str] = {}
        self._disks: dict[str, list[str]] = {}

    @staticmethod
    def _key(instance: Resource) -> str:
        return f"{instance['zone'].rsplit('/', 1)[-1]}/{instance['name']}"

    def _log(self, instance: Resource, line: str) -> None:
        key = self._key(instance)
        with self._lock:
            self._consoles[key] = self._consoles.get(key, "") + line + "\n"

    def ensure_subnet(self, cidr: str, gateway: str) -> None:
        with self._lock:
            self._subnets[cidr] = gateway

    def remove_subnet(self, cidr: str, gateway: str) -> None:
        with self._lock:
            self._subnets.pop(cidr, None)

    def start(self, instance: Resource) -> None:
        self._log(instance, f"simulated: {instance['name']} booted")

    def stop(self, instance: Resource) -> None:
        self._log(instance, f"simulated: {instance['name']} powered off")

    def delete(self, instance: Resource) -> None:
        with self._lock:
            self._consoles.pop(self._key(instance), None)
            self._disks.pop(self._key(instance), None)

    def running(self, instance: Resource) -> bool:
        return instance.get("status") == "RUNNING"

    def serial_output(self, instance: Resource, start: int) -> str:
        with self._lock:
            data = self._consoles.get(self._key(instance), "").encode()
        return data[start:].decode(errors="replace")

    def attach_disk(self, instance: Resource, disk: Resource, device_name: str) -> None:
        with self._lock:
            self._disks.setdefault(self._key(instance), []).append(device_name)

    def sync_routes(self, routes: list[tuple[str, str]]) -> None:
        with self._lock:
            self._routes = sorted(routes)

    def sync_firewalls(self, firewalls: list[Resource]) -> None:
        with self._lock:
            self._firewalls = sorted(fw["name"] for fw in firewalls)

    def adopt(self, instances: list[Resource]) -> set[str]:
        return {i["name"] for i in instances if i.get("status") == "RUNNING"}

    def close(self) -> None:
        """Nothing is held outside this process."""

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {
                "subnets": dict(sorted(self._subnets.items())),
                "routes": [list(r) for r in self._routes],
                "firewalls": list(self._firewalls),
                "disks": {k: list(v) for k, v in sorted(self._disks.items())},
            }
