"""google-cloud-compute and google-cloud-storage clients, pointed where gcloud would point them.

The Compute endpoint follows gcloud's own override, ``CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE``
(``https://compute.googleapis.com/compute/v1/`` form); storage follows ``STORAGE_EMULATOR_HOST``,
as google-cloud-storage itself does. A plain ``http://`` Compute endpoint is an emulator and gets
anonymous credentials; anything else uses Application Default Credentials.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

import google.auth
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials, Credentials
from google.auth.exceptions import DefaultCredentialsError
from google.cloud import compute_v1, storage

from cluster.errors import PrereqError

ENDPOINT_OVERRIDE_ENV = "CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE"
_OPERATION_CLIENTS = {
    "zone_operations": compute_v1.ZoneOperationsClient,
    "region_operations": compute_v1.RegionOperationsClient,
    "global_operations": compute_v1.GlobalOperationsClient,
}


def compute_endpoint() -> str | None:
    """The Compute API host (``scheme://host[:port]``) from gcloud's override, or None for GCE."""
    override = os.environ.get(ENDPOINT_OVERRIDE_ENV, "").strip()
    if not override:
        return None
    parts = urlsplit(override)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise PrereqError(
            f"{ENDPOINT_OVERRIDE_ENV}={override!r} is not a URL; use gcloud's form, "
            "e.g. https://compute.googleapis.com/compute/v1/"
        )
    return f"{parts.scheme}://{parts.netloc}"


@dataclass
class GceClients:
    """Lazily built clients sharing one endpoint and one set of credentials."""

    endpoint: str | None = field(default_factory=compute_endpoint)

    @cached_property
    def credentials(self) -> Credentials:
        if self.endpoint and self.endpoint.startswith("http://"):
            return AnonymousCredentials()
        try:
            credentials, _ = google.auth.default(
                scopes=["https://www.googleapis.com/auth/cloud-platform"]
            )
        except DefaultCredentialsError:
            raise PrereqError(
                "no Google Cloud credentials found; run `gcloud auth application-default login` "
                "or set GOOGLE_APPLICATION_CREDENTIALS to a service account key file"
            ) from None
        return credentials

    def _options(self) -> ClientOptions | None:
        return ClientOptions(api_endpoint=self.endpoint) if self.endpoint else None

    def compute(self, client_class: type) -> Any:
        """A Compute client whose extended operations poll the same endpoint.

        google-cloud-compute builds the operations clients that ``ExtendedOperation.result()``
        polls without the caller's client options, so against an emulator they would poll the
        real GCE; we hand it ours.
        """
        client = client_class(credentials=self.credentials, client_options=self._options())
        services = getattr(client._transport, "_extended_operations_services", None)
        if services is not None and self.endpoint:
            for key, op_class in _OPERATION_CLIENTS.items():
                services[key] = self.operations(op_class)
        return client

    def operations(self, op_class: type) -> Any:
        return op_class(credentials=self.credentials, client_options=self._options())

    @cached_property
    def instances(self) -> compute_v1.InstancesClient:
        return self.compute(compute_v1.InstancesClient)

    @cached_property
    def instance_templates(self) -> compute_v1.InstanceTemplatesClient:
        return self.compute(compute_v1.InstanceTemplatesClient)

    @cached_property
    def networks(self) -> compute_v1.NetworksClient:
        return self.compute(compute_v1.NetworksClient)

    @cached_property
    def subnetworks(self) -> compute_v1.SubnetworksClient:
        return self.compute(compute_v1.SubnetworksClient)

    @cached_property
    def firewalls(self) -> compute_v1.FirewallsClient:
        return self.compute(compute_v1.FirewallsClient)

    @cached_property
    def routes(self) -> compute_v1.RoutesClient:
        return self.compute(compute_v1.RoutesClient)

    @cached_property
    def addresses(self) -> compute_v1.AddressesClient:
        return self.compute(compute_v1.AddressesClient)

    @cached_property
    def disks(self) -> compute_v1.DisksClient:
        return self.compute(compute_v1.DisksClient)

    @cached_property
    def projects(self) -> compute_v1.ProjectsClient:
        return self.compute(compute_v1.ProjectsClient)

    @cached_property
    def zone_operations(self) -> compute_v1.ZoneOperationsClient:
        return self.operations(compute_v1.ZoneOperationsClient)

    @cached_property
    def region_operations(self) -> compute_v1.RegionOperationsClient:
        return self.operations(compute_v1.RegionOperationsClient)

    @cached_property
    def global_operations(self) -> compute_v1.GlobalOperationsClient:
        return self.operations(compute_v1.GlobalOperationsClient)

    def storage(self, project: str) -> storage.Client:
        """A storage client; under ``STORAGE_EMULATOR_HOST`` it talks to the emulator anonymously
        (google-cloud-storage's own behaviour)."""
        if os.environ.get("STORAGE_EMULATOR_HOST"):
            return storage.Client(project=project, credentials=AnonymousCredentials())
        return storage.Client(project=project, credentials=self.credentials)
