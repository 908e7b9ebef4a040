"""The one interface the provisioner knows clouds by (the classic ``kube-util.sh`` verbs).

A provider finds what exists (by its cluster label or tag), creates only what is missing, and
reports what it did through the progress object it is given. It never renders node
configuration itself: the provisioner hands it the metadata each VM gets.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cluster.kube_env import Artifact
from cluster.release.builder import ReleaseManifest


@dataclass(frozen=True)
class MasterAddresses:
    """Where the master is: the internal IP nodes use, the external IP users reach."""

    internal_ip: str
    external_ip: str


@dataclass(frozen=True)
class VmMetadata:
    """What every VM of a role gets: its startup script, its kube-env and the cluster's SSH key."""

    startup_script: str
    kube_env: str
    ssh_public_key: str


@dataclass(frozen=True)
class OwnedResource:
    """One cloud resource that carries this cluster's label (for ``kube-down --dry-run``)."""

    kind: str
    name: str
    location: str = ""

    def __str__(self) -> str:
        where = f" ({self.location})" if self.location else ""
        return f"{self.kind} {self.name}{where}"


class Provider(ABC):
    """One cloud, as the provisioner sees it."""

    name: str

    @abstractmethod
    def verify_prereqs(self) -> None:
        """Credentials, project/account and endpoints work; fail in one line otherwise."""

    @abstractmethod
    def ensure_network(self) -> None:
        """The cluster's network, subnet and firewall rules (or security groups) exist."""

    @abstractmethod
    def ensure_master_addresses(self) -> MasterAddresses:
        """Reserve (or find) the master's internal and external addresses."""

    @abstractmethod
    def stage(self, release_dir: Path, manifest: ReleaseManifest) -> Mapping[str, Artifact]:
        """Upload the release artifacts that are not already there (by sha256); return, per
        artifact key of the manifest, where VMs download it and its sha256."""

    @abstractmethod
    def ensure_master(self, metadata: VmMetadata, addresses: MasterAddresses) -> None:
        """The master VM and its persistent disk exist, with this metadata."""

    @abstractmethod
    def ensure_nodes(self, metadata: VmMetadata) -> None:
        """NUM_NODES node VMs exist, each with its own pod CIDR routed to it."""

    @abstractmethod
    def host_key(self, instance: str) -> str | None:
        """The SSH host key a VM published (``ssh-ed25519 AAAA...``), None until it has."""

    @abstractmethod
    def serial_log_hint(self, instance: str) -> str:
        """How a user reads an instance's boot log (for timeout messages)."""

    @abstractmethod
    def update_metadata(self, master: VmMetadata, node: VmMetadata) -> None:
        """kube-push: give every existing VM (and future nodes) the new metadata."""

    @abstractmethod
    def node_addresses(self) -> dict[str, str]:
        """Each node's name and the address kube-up reaches it at over SSH."""

    @abstractmethod
    def owned_resources(self) -> list[OwnedResource]:
        """Everything in the cloud that carries this cluster's label, in deletion order."""

    @abstractmethod
    def delete(self, resources: list[OwnedResource]) -> None:
        """Delete ``resources`` (from :meth:`owned_resources`), dependents first; idempotent."""
