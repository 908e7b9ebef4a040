"""kube-down on GCE: find everything that carries this cluster's mark, delete it in waves.

Each wave holds resources nothing left depends on, deleted in parallel: routes and VMs first,
then what VMs used (template, disk, addresses, firewall rules), then the subnetwork, the
network, and the staging bucket. Networks and subnetworks are deleted only when kube-up created
them (their description says so); a pre-existing ``default`` network is left alone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from google.api_core import exceptions as gexc
from google.cloud import compute_v1

from cluster.errors import CloudError
from cluster.provider import OwnedResource
from gce import calls, resources
from gce.fanout import settle
from gce.staging import OWNER_OBJECT, owns

if TYPE_CHECKING:
    from gce.provider import GceProvider

WAVES = (
    ("route", "instance"),
    ("instance-template", "disk", "address", "firewall"),
    ("subnetwork",),
    ("network",),
    ("bucket",),
)
PAGE = 500


def find_owned(provider: GceProvider) -> list[OwnedResource]:
    """Everything of this cluster, in the order it would be deleted."""
    config, clients, project = provider.config, provider.clients, provider.project
    mine = resources.owner_description(config)
    label = f"labels.{resources.CLUSTER_LABEL} = {config.cluster_name}"
    found: list[OwnedResource] = []
    found += [OwnedResource("route", r.name) for r in provider.routes()]
    found += [OwnedResource("instance", i.name, config.zone) for i in provider.instances()]
    templates = _listed(
        clients.instance_templates.list,
        compute_v1.ListInstanceTemplatesRequest(project=project),
        "templates",
    )
    found += [
        OwnedResource("instance-template", t.name) for t in templates if t.description == mine
    ]
    disks = _listed(
        clients.disks.list,
        compute_v1.ListDisksRequest(project=project, zone=config.zone, filter=label),
        "disks",
    )
    # Boot disks go with their instances (autoDelete); deleting one already gone is a no-op.
    found += [OwnedResource("disk", d.name, config.zone) for d in disks]
    addresses = _listed(
        clients.addresses.list,
        compute_v1.ListAddressesRequest(project=project, region=config.region, filter=label),
        "addresses",
    )
    found += [OwnedResource("address", a.name, config.region) for a in addresses]
    firewalls = _listed(
        clients.firewalls.list, compute_v1.ListFirewallsRequest(project=project), "firewalls"
    )
    found += [OwnedResource("firewall", f.name) for f in firewalls if f.description == mine]
    subnet = calls.find(
        lambda: clients.subnetworks.get(
            project=project, region=config.region, subnetwork=provider.names.subnetwork
        ),
        "subnetwork",
    )
    if subnet is not None and subnet.description == mine:
        found.append(OwnedResource("subnetwork", subnet.name, config.region))
    network = calls.find(
        lambda: clients.networks.get(project=project, network=config.network), "network"
    )
    if network is not None and network.description == mine:
        found.append(OwnedResource("network", network.name))
    bucket = _owned_bucket(provider)
    if bucket is not None:
        found.append(OwnedResource("bucket", bucket))
    return found


def _listed(method: Callable[..., Any], request: Any, what: str) -> Any:
    """Every item of a list call, fetched in pages of ``PAGE``."""
    request.max_results = PAGE
    return calls.call(lambda: method(request=request), what)


def _owned_bucket(provider: GceProvider) -> str | None:
    name = provider.config.staging_bucket(provider.project)
    try:
        bucket = provider.clients.storage(provider.project).lookup_bucket(name)
        derived = not provider.config.staging_bucket_setting
        mine = bucket is not None and owns(
            bucket, provider.config.cluster_name, derived_name=derived
        )
    except gexc.GoogleAPICallError as exc:
        raise CloudError(str(exc.message), resource=f"bucket {name}") from None
    return name if mine else None


def _deleter(provider: GceProvider, kind: str) -> Callable[[str], Any]:
    clients, project, config = provider.clients, provider.project, provider.config
    return {
        "route": lambda n: clients.routes.delete(project=project, route=n),
        "instance": lambda n: clients.instances.delete(
            project=project, zone=config.zone, instance=n
        ),
        "instance-template": lambda n: clients.instance_templates.delete(
            project=project, instance_template=n
        ),
        "disk": lambda n: clients.disks.delete(project=project, zone=config.zone, disk=n),
        "address": lambda n: clients.addresses.delete(
            project=project, region=config.region, address=n
        ),
        "firewall": lambda n: clients.firewalls.delete(project=project, firewall=n),
        "subnetwork": lambda n: clients.subnetworks.delete(
            project=project, region=config.region, subnetwork=n
        ),
        "network": lambda n: clients.networks.delete(project=project, network=n),
    }[kind]


def _delete_bucket(provider: GceProvider, name: str) -> None:
    bucket = provider.clients.storage(provider.project).bucket(name)
    try:
        # The owner marker last: a kube-down cut short still finds the bucket next time.
        for blob in sorted(bucket.list_blobs(), key=lambda b: b.name == OWNER_OBJECT):
            blob.delete()
        bucket.delete()
    except gexc.NotFound:
        return
    except gexc.GoogleAPICallError as exc:
        raise CloudError(str(exc.message), resource=f"bucket {name}") from None


def _present(provider: GceProvider, kind: str) -> Callable[[], set[str]]:
    """How to see which resources of a bulk kind are still there (one list per 500)."""
    if kind == "instance":
        return lambda: {i.name for i in provider.instances()}
    return lambda: {r.name for r in provider.routes()}


def _operations(provider: GceProvider, kind: str) -> Callable[[str], list[Any]]:
    return provider.zone_operations if kind == "instance" else provider.global_operations


def delete_owned(provider: GceProvider, found: list[OwnedResource]) -> None:
    by_kind: dict[str, list[str]] = defaultdict(list)
    for item in found:
        by_kind[item.kind].append(item.name)
    for wave in WAVES:
        work: list[Callable[[], None]] = []
        for kind in wave:
            names = by_kind.get(kind, [])
            if not names:
                continue
            provider.progress.detail(f"deleting {len(names)} {kind}(s)")
            if kind == "bucket":
                work += [lambda n=n: _delete_bucket(provider, n) for n in names]
            elif kind in ("instance", "route"):
                work.append(lambda k=kind, ns=names: _delete_bulk(provider, k, ns))
            else:
                send = _deleter(provider, kind)
                work += [lambda n=n, s=send: provider.delete_one(lambda: s(n), n) for n in names]
        provider.parallel(work)


def _delete_bulk(provider: GceProvider, kind: str, names: list[str]) -> None:
    send = _deleter(provider, kind)

    def request(name: str) -> Any:
        return calls.find(lambda: send(name), f"{kind} {name}")

    settle(
        names,
        request,
        _operations(provider, kind),
        _present(provider, kind),
        present=False,
        what=f"{kind}s",
        poll_s=1.0,
    )
