"""google-cloud-compute and google-cloud-storage clients pointed at a localcloud endpoint.

Why this exists: an ``ExtendedOperation.result()`` polls through operations clients that the
service client builds itself, without the ``client_options`` it was given — they would call
compute.googleapis.com. :func:`compute_clients` builds every client against the endpoint and
hands each one the same zone/region/global operations clients.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1, storage


@dataclass
class ComputeClients:
    """One REST client per service this emulator serves."""

    projects: compute_v1.ProjectsClient
    zones: compute_v1.ZonesClient
    regions: compute_v1.RegionsClient
    machine_types: compute_v1.MachineTypesClient
    networks: compute_v1.NetworksClient
    subnetworks: compute_v1.SubnetworksClient
    firewalls: compute_v1.FirewallsClient
    routes: compute_v1.RoutesClient
    addresses: compute_v1.AddressesClient
    global_addresses: compute_v1.GlobalAddressesClient
    disks: compute_v1.DisksClient
    instances: compute_v1.InstancesClient
    instance_templates: compute_v1.InstanceTemplatesClient
    instance_group_managers: compute_v1.InstanceGroupManagersClient
    zone_operations: compute_v1.ZoneOperationsClient
    region_operations: compute_v1.RegionOperationsClient
    global_operations: compute_v1.GlobalOperationsClient


def compute_clients(endpoint: str) -> ComputeClients:
    """Every client of :class:`ComputeClients` for ``endpoint`` (``http://127.0.0.1:PORT``)."""
    made: dict[str, Any] = {}
    for f in fields(ComputeClients):
        cls = getattr(compute_v1, f.type.split(".")[-1]) if isinstance(f.type, str) else f.type
        made[f.name] = cls(
            credentials=AnonymousCredentials(),
            transport="rest",
            client_options=ClientOptions(api_endpoint=endpoint),
        )
    operations = {
        "zone_operations": made["zone_operations"],
        "region_operations": made["region_operations"],
        "global_operations": made["global_operations"],
    }
    for client in made.values():
        # The attribute behind transport._zone_operations_client & co (see module docstring);
        # only services with long-running methods have it.
        services = getattr(client._transport, "_extended_operations_services", None)
        if services is not None:
            services.update(operations)
    return ComputeClients(**made)


def storage_client(endpoint: str, project: str) -> storage.Client:
    """A google-cloud-storage client for the emulator at ``endpoint`` (no credentials)."""
    return storage.Client(
        project=project,
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=endpoint),
    )
