"""The GCE provider: the cluster's resources on Compute Engine (or anything that speaks its API).

Every ``ensure_*`` method finds what exists, then creates only what is missing, so a re-run after
any failure converges. Nodes are created from an instance template, one insert each so every node
is born with its own ``pod-cidr`` attribute, and a route sends that range to it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import google.auth
from google.cloud import compute_v1

from cluster.config import ClusterConfig
from cluster.errors import CloudError, ClusterTimeout, PrereqError
from cluster.kube_env import Artifact
from cluster.progress import Progress
from cluster.provider import MasterAddresses, OwnedResource, Provider, VmMetadata
from cluster.release.builder import ReleaseManifest
from gce import calls, resources, teardown
from gce.clients import GceClients
from gce.fanout import settle
from gce.resources import CLUSTER_LABEL, Names, api
from gce.staging import stage_release

DELETE_THREADS = 16
OPERATION_TIMEOUT_S = 600.0
PAGE = 500


class GceProvider(Provider):
    name = "gce"

    def __init__(
        self, config: ClusterConfig, progress: Progress, clients: GceClients | None = None
    ):
        self.config = config
        self.progress = progress
        self._clients = clients
        self.names = Names(config)
        self._project = config.project

    @property
    def clients(self) -> GceClients:
        """Built on first use, so constructing a provider talks to nothing."""
        if self._clients is None:
            self._clients = self.make_clients()
        return self._clients

    def make_clients(self) -> GceClients:
        return GceClients()

    # -- helpers -----------------------------------------------------------------------------

    @property
    def project(self) -> str:
        if not self._project:
            try:
                _, found = google.auth.default()
            except google.auth.exceptions.DefaultCredentialsError:
                found = None
            if not found:
                raise PrereqError(
                    "PROJECT is not set and the credentials name no project; "
                    "set PROJECT=<your-gcp-project>"
                )
            self._project = found
        return self._project

    @property
    def zone(self) -> str:
        return self.config.zone

    @property
    def region(self) -> str:
        return self.config.region

    def _label_filter(self) -> str:
        return f"labels.{CLUSTER_LABEL} = {self.config.cluster_name}"

    def instances(self) -> list[compute_v1.Instance]:
        request = compute_v1.ListInstancesRequest(
            project=self.project, zone=self.zone, filter=self._label_filter(), max_results=PAGE
        )
        return list(calls.call(lambda: self.clients.instances.list(request=request), "instances"))

    def _metadata_items(self, metadata: VmMetadata, role: str) -> dict[str, str]:
        return {
            "startup-script": metadata.startup_script,
            "kube-env": metadata.kube_env,
            "cluster-name": self.config.cluster_name,
            "kube-up-role": role,
            "ssh-keys": f"root:{metadata.ssh_public_key}",
            # The guest environment publishes the SSH host key here; kube-up verifies it.
            "enable-guest-attributes": "TRUE",
        }

    # -- Provider ----------------------------------------------------------------------------

    def verify_prereqs(self) -> None:
        project = self.project
        found = calls.find(lambda: self.clients.projects.get(project=project), f"project {project}")
        if found is None:
            raise CloudError(
                "project not found", resource=f"project {project}", fix="check PROJECT"
            )

    def ensure_network(self) -> None:
        config, project = self.config, self.project
        networks, subnets, firewalls = (
            self.clients.networks,
            self.clients.subnetworks,
            self.clients.firewalls,
        )
        network = calls.find(
            lambda: networks.get(project=project, network=config.network),
            f"network {config.network}",
        )
        if network is None:
            self.progress.detail(f"creating network {config.network}")
            self.create(
                lambda: networks.insert(
                    project=project,
                    network_resource=api(compute_v1.Network, resources.network_body(config)),
                ),
                f"network {config.network}",
            )
        subnet_name = self.names.subnetwork
        subnet = calls.find(
            lambda: subnets.get(project=project, region=self.region, subnetwork=subnet_name),
            f"subnetwork {subnet_name}",
        )
        if subnet is None:
            self.progress.detail(f"creating subnetwork {subnet_name}")
            self.create(
                lambda: subnets.insert(
                    project=project,
                    region=self.region,
                    subnetwork_resource=api(
                        compute_v1.Subnetwork, resources.subnetwork_body(config)
                    ),
                ),
                f"subnetwork {subnet_name}",
            )

        def ensure_firewall(body: dict[str, Any]) -> None:
            name = body["name"]
            if calls.find(lambda: firewalls.get(project=project, firewall=name), name) is None:
                self.progress.detail(f"creating firewall rule {name}")
                self.create(
                    lambda: firewalls.insert(
                        project=project, firewall_resource=api(compute_v1.Firewall, body)
                    ),
                    f"firewall {name}",
                )

        self.parallel([lambda b=b: ensure_firewall(b) for b in resources.firewall_bodies(config)])

    def _ensure_address(self, body: dict[str, Any]) -> str:
        addresses, project, name = self.clients.addresses, self.project, body["name"]

        def get() -> compute_v1.Address:
            return addresses.get(project=project, region=self.region, address=name)

        found = calls.find(get, f"address {name}")
        if found is None:
            self.progress.detail(f"reserving address {name}")
            self.create(
                lambda: addresses.insert(
                    project=project,
                    region=self.region,
                    address_resource=api(compute_v1.Address, body),
                ),
                f"address {name}",
            )
            found = calls.call(get, f"address {name}")
        return found.address

    def ensure_master_addresses(self) -> MasterAddresses:
        found: dict[str, str] = {}
        bodies = {
            "internal": resources.master_internal_address_body(self.config),
            "external": resources.master_address_body(self.config),
        }
        self.parallel(
            [
                lambda k=k, b=b: found.__setitem__(k, self._ensure_address(b))
                for k, b in bodies.items()
            ]
        )
        return MasterAddresses(internal_ip=found["internal"], external_ip=found["external"])

    def stage(self, release_dir: Path, manifest: ReleaseManifest) -> Mapping[str, Artifact]:
        bucket = self.config.staging_bucket(self.project)
        client = self.clients.storage(self.project)
        return stage_release(
            client,
            bucket,
            release_dir,
            manifest,
            self.config.cluster_name,
            self.progress,
            derived_name=not self.config.staging_bucket_setting,
        )

    def ensure_master(self, metadata: VmMetadata, addresses: MasterAddresses) -> None:
        config, project, zone = self.config, self.project, self.zone
        disks, instances = self.clients.disks, self.clients.instances
        disk = self.names.master_disk
        if calls.find(lambda: disks.get(project=project, zone=zone, disk=disk), disk) is None:
            self.progress.detail(f"creating persistent disk {disk}")
            self.create(
                lambda: disks.insert(
                    project=project,
                    zone=zone,
                    disk_resource=api(compute_v1.Disk, resources.master_disk_body(config)),
                ),
                f"disk {disk}",
            )
        name = config.master_name
        if calls.find(lambda: instances.get(project=project, zone=zone, instance=name), name):
            return
        body = resources.master_instance_body(
            config,
            self._metadata_items(metadata, "master"),
            external_ip=addresses.external_ip,
            internal_ip=addresses.internal_ip,
        )
        self.progress.detail(f"creating instance {name}")
        self.create(
            lambda: instances.insert(
                project=project, zone=zone, instance_resource=api(compute_v1.Instance, body)
            ),
            f"instance {name}",
        )

    def _ensure_template(self, items: dict[str, str]) -> str:
        templates, project = self.clients.instance_templates, self.project
        body = resources.node_template_body(self.config, items)
        name = body["name"]
        if calls.find(lambda: templates.get(project=project, instance_template=name), name) is None:
            self.progress.detail(f"creating instance template {name}")
            self.create(
                lambda: templates.insert(
                    project=project,
                    instance_template_resource=api(compute_v1.InstanceTemplate, body),
                ),
                f"instance template {name}",
            )
        return f"projects/{project}/global/instanceTemplates/{name}"

    def _pod_cidrs(self) -> dict[str, str]:
        config = self.config
        return {
            config.node_name(i): str(config.pod_cidr_for(i)) for i in range(1, config.num_nodes + 1)
        }

    def _node_items(self, metadata: VmMetadata) -> dict[str, str]:
        """One template for all nodes names each node's pod CIDR, so they are made in one call."""
        cidrs = self._pod_cidrs()
        return {
            **self._metadata_items(metadata, "node"),
            "pod-cidrs": "".join(f"{node} {cidr}\n" for node, cidr in cidrs.items()),
        }

    def ensure_nodes(self, metadata: VmMetadata) -> None:
        project, zone = self.project, self.zone
        cidrs = self._pod_cidrs()
        template = self._ensure_template(self._node_items(metadata))
        missing = sorted(set(cidrs) - {i.name for i in self.instances()})
        if missing:
            self.progress.detail(f"creating {len(missing)} node instances from {template}")
            request = compute_v1.BulkInsertInstanceRequest(
                project=project,
                zone=zone,
                bulk_insert_instance_resource_resource=api(
                    compute_v1.BulkInsertInstanceResource,
                    {
                        "count": str(len(missing)),
                        "sourceInstanceTemplate": template,
                        "perInstanceProperties": {name: {} for name in missing},
                    },
                ),
            )
            self.create(
                lambda: self.clients.instances.bulk_insert(request=request),
                f"{len(missing)} node instances",
            )
        self._ensure_routes(cidrs)

    def routes(self) -> list[compute_v1.Route]:
        request = compute_v1.ListRoutesRequest(project=self.project, max_results=PAGE)
        description = resources.owner_description(self.config)
        found = calls.call(lambda: self.clients.routes.list(request=request), "routes")
        return [r for r in found if r.description == description]

    def _ensure_routes(self, cidrs: Mapping[str, str]) -> None:
        routes, project = self.clients.routes, self.project
        wanted = {self.names.route(node): (node, cidr) for node, cidr in cidrs.items()}
        existing = {r.name for r in self.routes()}

        def insert(name: str) -> Any:
            node, cidr = wanted[name]
            body = resources.route_body(self.config, node, cidr)
            return calls.call(
                lambda: routes.insert(project=project, route_resource=api(compute_v1.Route, body)),
                f"route {name}",
            )

        missing = [n for n in wanted if n not in existing]
        if missing:
            self.progress.detail(f"creating {len(missing)} pod routes")
        settle(
            missing,
            insert,
            self.global_operations,
            lambda: {r.name for r in self.routes()},
            present=True,
            what="pod routes",
            poll_s=self.config.poll_interval,
        )

    def create(self, fn: Callable[[], object], resource: str) -> None:
        calls.create(fn, resource, self.wait_operation)

    def delete_one(self, fn: Callable[[], object], resource: str) -> None:
        calls.delete(fn, resource, self.wait_operation)

    def wait_operation(self, operation: Any) -> None:
        """Wait with the API's own ``wait`` (it answers as soon as the operation is done, or
        after a while server-side): one call per operation instead of a polling loop."""
        name, zone, region = operation.name, operation.zone, operation.region
        project, clients = self.project, self.clients
        deadline = time.monotonic() + OPERATION_TIMEOUT_S
        while True:
            if zone:
                done = clients.zone_operations.wait(
                    project=project, zone=zone.rsplit("/", 1)[-1], operation=name
                )
            elif region:
                done = clients.region_operations.wait(
                    project=project, region=region.rsplit("/", 1)[-1], operation=name
                )
            else:
                done = clients.global_operations.wait(project=project, operation=name)
            if done.status == compute_v1.Operation.Status.DONE:
                break
            if time.monotonic() > deadline:
                raise ClusterTimeout(f"operation {name} not done after {OPERATION_TIMEOUT_S:g}s")
        failure = calls.operation_exception(done)
        if failure is not None:
            raise failure

    def zone_operations(self, filter_: str) -> list[compute_v1.Operation]:
        request = compute_v1.ListZoneOperationsRequest(
            project=self.project, zone=self.zone, filter=filter_, max_results=PAGE
        )
        return list(
            calls.call(lambda: self.clients.zone_operations.list(request=request), "operations")
        )

    def global_operations(self, filter_: str) -> list[compute_v1.Operation]:
        request = compute_v1.ListGlobalOperationsRequest(
            project=self.project, filter=filter_, max_results=PAGE
        )
        return list(
            calls.call(lambda: self.clients.global_operations.list(request=request), "operations")
        )

    def host_key(self, instance: str) -> str | None:
        request = compute_v1.GetGuestAttributesInstanceRequest(
            project=self.project, zone=self.zone, instance=instance, query_path="hostkeys/"
        )
        found = calls.find(
            lambda: self.clients.instances.get_guest_attributes(request=request),
            f"guest attributes of {instance}",
        )
        if found is None:
            return None
        for item in found.query_value.items:
            if item.key == "ssh-ed25519":
                value = item.value.strip()
                return value if value.startswith("ssh-ed25519 ") else f"ssh-ed25519 {value}"
        return None

    def serial_log_hint(self, instance: str) -> str:
        return (
            f"read its boot log with: gcloud compute instances get-serial-port-output {instance} "
            f"--zone {self.zone} --project {self.project}"
        )

    def node_addresses(self) -> dict[str, str]:
        found = {}
        for instance in self.instances():
            if instance.labels.get(resources.ROLE_LABEL) != "node":
                continue
            nic = instance.network_interfaces[0]
            configs = list(nic.access_configs)
            found[instance.name] = (
                configs[0].nat_i_p if configs and configs[0].nat_i_p else nic.network_i_p
            )
        return found

    def update_metadata(self, master: VmMetadata, node: VmMetadata) -> None:
        """kube-push: a new template for future nodes, new metadata on every existing VM."""
        node_items = self._node_items(node)
        self._ensure_template(node_items)
        instances, project, zone = self.clients.instances, self.project, self.zone
        for instance in self.instances():
            role = instance.labels.get(resources.ROLE_LABEL, "node")
            items = dict(node_items) if role == "node" else self._metadata_items(master, role)
            old = {i.key: i.value for i in instance.metadata.items}
            if "pod-cidr" in old:
                items["pod-cidr"] = old["pod-cidr"]
            body = {
                "fingerprint": instance.metadata.fingerprint,
                "items": [{"key": k, "value": v} for k, v in sorted(items.items())],
            }
            self.create(
                lambda n=instance.name, b=body: instances.set_metadata(
                    project=project,
                    zone=zone,
                    instance=n,
                    metadata_resource=api(compute_v1.Metadata, b),
                ),
                f"metadata of {instance.name}",
            )

    # -- teardown ----------------------------------------------------------------------------

    def owned_resources(self) -> list[OwnedResource]:
        return teardown.find_owned(self)

    def delete(self, found: list[OwnedResource]) -> None:
        teardown.delete_owned(self, found)

    def parallel(self, work: list[Any]) -> None:
        """Run callables a few at a time; re-raise the first failure once all have ended."""
        with ThreadPoolExecutor(max_workers=DELETE_THREADS) as pool:
            futures = [pool.submit(w) for w in work]
        errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            raise errors[0]
