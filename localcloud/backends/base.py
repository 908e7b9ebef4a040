"""The contract between localcloud's Compute API and what an instance really is.

The API layer owns every record (instances, disks, routes, firewalls) and their GCE shapes; a
backend only makes them real. Records are passed as the GCE resource dicts the API stores
(for an instance: ``name``, ``zone``, ``id``, ``networkInterfaces[0].networkIP``, ``metadata``,
``disks`` ...), so a backend never needs its own copy of cloud state and a restarted daemon can
hand the same records back through :meth:`MachineBackend.adopt`. Links inside records
(``selfLink``, ``network``, ``source`` ...) start with :data:`localcloud.compute.links.LINK`
instead of a host; :func:`localcloud.compute.links.relative` turns them into
``projects/...`` paths.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

Resource = dict[str, Any]


class MachineBackend(ABC):
    """What creating, starting, stopping and deleting an instance does on this host."""

    name: str

    @abstractmethod
    def ensure_subnet(self, cidr: str, gateway: str) -> None:
        """Make ``gateway`` (the subnet's first address) answer on the cloud network."""

    @abstractmethod
    def remove_subnet(self, cidr: str, gateway: str) -> None:
        """Undo :meth:`ensure_subnet`; a no-op when it is already gone."""

    @abstractmethod
    def start(self, instance: Resource) -> None:
        """Boot the instance (creating its boot disk on first start); return once init runs."""

    @abstractmethod
    def stop(self, instance: Resource) -> None:
        """Power the instance off cleanly, keeping its boot disk and attached disks."""

    @abstractmethod
    def delete(self, instance: Resource) -> None:
        """Power off and remove every trace of the instance on this host. Idempotent."""

    @abstractmethod
    def running(self, instance: Resource) -> bool:
        """Whether the instance's machine is up right now."""

    @abstractmethod
    def serial_output(self, instance: Resource, start: int) -> str:
        """Serial port 1 contents from byte offset ``start`` (empty when nothing new)."""

    @abstractmethod
    def attach_disk(self, instance: Resource, disk: Resource, device_name: str) -> None:
        """Make ``disk`` visible inside the instance at ``/dev/disk/by-id/google-<device_name>``
        (a directory on this host, bind-mounted), surviving restarts."""

    @abstractmethod
    def sync_routes(self, routes: list[tuple[str, str]]) -> None:
        """Make the kernel routes match ``(destRange, next_hop_ip)`` pairs exactly."""

    @abstractmethod
    def sync_firewalls(self, firewalls: list[Resource]) -> None:
        """Enforce the GCE firewall resources for traffic entering the cloud network."""

    def reset(self, instance: Resource) -> None:
        """GCE's reset: a hard power cycle. The default is a clean stop and a start."""
        self.stop(instance)
        self.start(instance)

    def delete_disk(self, disk: Resource) -> None:
        """Remove a standalone persistent disk's data once its record is deleted.

        Boot disks go with :meth:`delete`. The default has nothing to remove."""
        return None

    def metadata_bind_address(self) -> tuple[str, int]:
        """Where the daemon serves the metadata server for this backend's instances.

        Asked once at daemon start, after construction. The default (loopback, any free port)
        suits backends whose instances are not real machines."""
        return ("127.0.0.1", 0)

    def storage_bind_host(self) -> str:
        """The host address the daemon serves object storage on, reachable by instances."""
        return "127.0.0.1"

    @abstractmethod
    def adopt(self, instances: list[Resource]) -> set[str]:
        """After a daemon restart: take over machines still running; return their names."""

    @abstractmethod
    def close(self) -> None:
        """Daemon shutdown: release host resources the backend holds, leaving machines running."""
