"""Networks (legacy, auto mode, custom mode) and subnetworks.

A legacy network's ``IPv4Range`` and each subnetwork's ``ipCidrRange`` become subnets on the
backend's cloud network (:meth:`MachineBackend.ensure_subnet`), answering on their gateway.
"""

from __future__ import annotations

from typing import Any

from localcloud.compute import crud, ipam
from localcloud.compute.catalog import AUTO_SUBNET_RANGES
from localcloud.compute.common import check_name, fingerprint, new_id, now
from localcloud.compute.context import Cloud, Request, Route
from localcloud.compute.links import Ref, link, parse
from localcloud.compute.operations import task
from localcloud.compute.projects import check_region
from localcloud.errors import bad_field, in_use, invalid, required

P = "projects/{project}"


def network_ref(project: str, name: str) -> Ref:
    return Ref(project, "global", "networks", name)


def subnet_ref(project: str, region: str, name: str) -> Ref:
    return Ref(project, f"regions/{region}", "subnetworks", name)


def find_subnet_for(
    cloud: Cloud, network: dict[str, Any], project: str, region: str
) -> dict[str, Any] | None:
    """The subnetwork of ``network`` in ``region`` (GCE's choice when an instance names only
    the network of an auto- or custom-mode VPC)."""
    for sub in sorted(
        cloud.store.list(project, "subnetworks", f"regions/{region}"),
        key=lambda s: s["creationTimestamp"],
    ):
        if sub["network"] == network["selfLink"]:
            return sub
    return None


def _subnet_doc(project: str, region: str, name: str, network_link: str, cidr: str) -> dict:
    return {
        "kind": "compute#subnetwork",
        "id": new_id(),
        "creationTimestamp": now(),
        "name": name,
        "network": network_link,
        "ipCidrRange": cidr,
        "gatewayAddress": ipam.gateway(cidr),
        "region": link(f"projects/{project}/regions/{region}"),
        "selfLink": subnet_ref(project, region, name).link,
        "privateIpGoogleAccess": False,
        "fingerprint": fingerprint([name, cidr]),
        "purpose": "PRIVATE",
        "stackType": "IPV4_ONLY",
        "state": "READY",
    }


def _overlapping(cloud: Cloud, cidr: str) -> str | None:
    """The self link of an existing range (any network: one host bridge) overlapping ``cidr``."""
    net = ipam.network(cidr, "ipCidrRange")
    for project in cloud.store.projects():
        for sub in cloud.store.list(project, "subnetworks"):
            if ipam.network(sub["ipCidrRange"], "ipCidrRange").overlaps(net):
                return sub["selfLink"]
        for nw in cloud.store.list(project, "networks"):
            if nw.get("IPv4Range") and ipam.network(nw["IPv4Range"], "IPv4Range").overlaps(net):
                return nw["selfLink"]
    return None


def _insert_network(cloud: Cloud, req: Request) -> dict[str, Any]:
    body = req.body
    name = check_name(body.get("name"))
    ref = network_ref(req.project, name)
    legacy_range = body.get("IPv4Range")
    auto = bool(body.get("autoCreateSubnetworks", False))
    if legacy_range and auto:
        raise invalid("IPv4Range and autoCreateSubnetworks cannot both be set.")
    doc: dict[str, Any] = {
        "kind": "compute#network",
        "id": new_id(),
        "creationTimestamp": now(),
        "name": name,
        "selfLink": ref.link,
        "routingConfig": {
            "routingMode": body.get("routingConfig", {}).get("routingMode") or "REGIONAL"
        },
        "networkFirewallPolicyEnforcementOrder": "AFTER_CLASSIC_FIREWALL",
    }
    doc["selfLinkWithId"] = link(f"projects/{req.project}/global/networks/{doc['id']}")
    if body.get("description"):
        doc["description"] = body["description"]
    subnets: list[dict[str, Any]] = []
    with cloud.store.lock:
        crud.absent(cloud, ref)
        cloud.quotas.check_project(req.project, {"NETWORKS": 1})
        if legacy_range:
            ipam.network(legacy_range, "resource.IPv4Range")
            clash = _overlapping(cloud, legacy_range)
            if clash:
                raise bad_field("resource.IPv4Range", legacy_range, f"Overlaps with {clash}.")
            doc["IPv4Range"] = legacy_range
            doc["gatewayIPv4"] = body.get("gatewayIPv4") or ipam.gateway(legacy_range)
        else:
            doc.update(autoCreateSubnetworks=auto, mtu=int(body.get("mtu") or 1460))
            if auto:
                for region, cidr in AUTO_SUBNET_RANGES.items():
                    clash = _overlapping(cloud, cidr)
                    if clash:
                        raise invalid(f"Auto-mode range {cidr} overlaps with {clash}.")
                    subnets.append(_subnet_doc(req.project, region, name, ref.link, cidr))
            doc["subnetworks"] = [s["selfLink"] for s in subnets]
        with cloud.store.batch():
            crud.save(cloud, ref, doc)
            for sub in subnets:
                region = sub["region"].rsplit("/", 1)[-1]
                crud.save(cloud, subnet_ref(req.project, region, name), sub)
    args = {"project": req.project, "name": name}
    return cloud.engine.submit(req, "global", "insert", ref.link, doc["id"], "network.create", args)


def _network_ranges(cloud: Cloud, project: str, name: str) -> list[str]:
    doc = cloud.store.peek(project, "networks", "global", name)
    if doc is None:
        return []
    if doc.get("IPv4Range"):
        return [doc["IPv4Range"]]
    return [
        sub["ipCidrRange"]
        for sub in cloud.store.list(project, "subnetworks")
        if sub["network"] == doc["selfLink"]
    ]


def _abort_network(cloud: Cloud, args: dict[str, Any]) -> None:
    project, name = args["project"], args["name"]
    with cloud.store.batch():
        doc = cloud.store.peek(project, "networks", "global", name)
        for sub in list(cloud.store.list(project, "subnetworks")):
            if doc and sub["network"] == doc["selfLink"]:
                region = sub["region"].rsplit("/", 1)[-1]
                crud.remove(cloud, subnet_ref(project, region, sub["name"]))
        crud.remove(cloud, network_ref(project, name))


@task("network.create", seconds=1.0, abort=_abort_network)
def _create_network(cloud: Cloud, args: dict[str, Any]) -> None:
    for cidr in _network_ranges(cloud, args["project"], args["name"]):
        cloud.backend.ensure_subnet(cidr, ipam.gateway(cidr))


def _users_of_network(cloud: Cloud, project: str, doc: dict[str, Any]) -> str | None:
    self_link = doc["selfLink"]
    for inst in cloud.store.list(project, "instances"):
        if any(nic.get("network") == self_link for nic in inst.get("networkInterfaces", [])):
            return inst["selfLink"]
    for coll in ("firewalls", "routes"):
        for item in cloud.store.list(project, coll):
            if item.get("network") == self_link:
                return item["selfLink"]
    if not doc.get("autoCreateSubnetworks"):
        for sub in cloud.store.list(project, "subnetworks"):
            if sub["network"] == self_link:
                return sub["selfLink"]
    return None


def _delete_network(cloud: Cloud, req: Request) -> dict[str, Any]:
    ref = network_ref(req.project, req.params["network"])
    with cloud.store.lock:
        doc = crud.require(cloud, ref)
        user = _users_of_network(cloud, req.project, doc)
        if user:
            raise in_use(ref.path, user)
    args = {"project": req.project, "name": ref.name}
    return cloud.engine.submit(req, "global", "delete", ref.link, doc["id"], "network.delete", args)


@task("network.delete", seconds=1.0)
def _remove_network(cloud: Cloud, args: dict[str, Any]) -> None:
    ranges = _network_ranges(cloud, args["project"], args["name"])
    _abort_network(cloud, args)
    for cidr in ranges:
        cloud.backend.remove_subnet(cidr, ipam.gateway(cidr))


def _get_network(cloud: Cloud, req: Request) -> dict[str, Any]:
    return crud.require(cloud, network_ref(req.project, req.params["network"]))


def _list_networks(cloud: Cloud, req: Request) -> dict[str, Any]:
    return crud.list_scope(cloud, req, "networks", "global", "compute#networkList")


# --- subnetworks ----------------------------------------------------------------------------


def _insert_subnet(cloud: Cloud, req: Request) -> dict[str, Any]:
    region = check_region(req.project, req.params["region"])
    body = req.body
    name = check_name(body.get("name"))
    if not body.get("network"):
        raise required("resource.network")
    if not body.get("ipCidrRange"):
        raise required("resource.ipCidrRange")
    cidr = body["ipCidrRange"]
    ipam.network(cidr, "resource.ipCidrRange")
    ref = subnet_ref(req.project, region, name)
    net_ref = parse(body["network"], req.project, "global", "networks", "resource.network")
    with cloud.store.lock:
        crud.absent(cloud, ref)
        network = crud.require(cloud, net_ref)
        if network.get("IPv4Range"):
            raise invalid(f"Legacy network '{net_ref.path}' cannot have subnetworks.")
        if network.get("autoCreateSubnetworks"):
            raise invalid(f"Network '{net_ref.path}' is in auto mode; its subnetworks are fixed.")
        clash = _overlapping(cloud, cidr)
        if clash:
            raise bad_field("resource.ipCidrRange", cidr, f"Overlaps with {clash}.")
        cloud.quotas.check_project(req.project, {"SUBNETWORKS": 1})
        doc = _subnet_doc(req.project, region, name, network["selfLink"], cidr)
        if body.get("description"):
            doc["description"] = body["description"]
        if body.get("privateIpGoogleAccess"):
            doc["privateIpGoogleAccess"] = True
        if body.get("secondaryIpRanges"):
            doc["secondaryIpRanges"] = [
                {"rangeName": r.get("rangeName"), "ipCidrRange": r.get("ipCidrRange")}
                for r in body["secondaryIpRanges"]
            ]
        network["subnetworks"] = [*network.get("subnetworks", []), doc["selfLink"]]
        with cloud.store.batch():
            crud.save(cloud, ref, doc)
            crud.save(cloud, net_ref, network)
    args = {"project": req.project, "region": region, "name": name}
    return cloud.engine.submit(
        req, f"regions/{region}", "insert", ref.link, doc["id"], "subnet.create", args
    )


def _detach_subnet(cloud: Cloud, args: dict[str, Any]) -> dict[str, Any] | None:
    ref = subnet_ref(args["project"], args["region"], args["name"])
    with cloud.store.batch():
        doc = crud.find(cloud, ref)
        if doc is None:
            return None
        net_ref = parse(doc["network"], ref.project, "global", "networks", "network")
        network = crud.find(cloud, net_ref)
        if network is not None:
            network["subnetworks"] = [s for s in network["subnetworks"] if s != doc["selfLink"]]
            crud.save(cloud, net_ref, network)
        crud.remove(cloud, ref)
    return doc


@task("subnet.create", seconds=1.0, abort=_detach_subnet)
def _create_subnet(cloud: Cloud, args: dict[str, Any]) -> None:
    doc = crud.require(cloud, subnet_ref(args["project"], args["region"], args["name"]))
    cloud.backend.ensure_subnet(doc["ipCidrRange"], doc["gatewayAddress"])


def _delete_subnet(cloud: Cloud, req: Request) -> dict[str, Any]:
    region = check_region(req.project, req.params["region"])
    ref = subnet_ref(req.project, region, req.params["subnetwork"])
    with cloud.store.lock:
        doc = crud.require(cloud, ref)
        for inst in cloud.store.list(req.project, "instances"):
            for nic in inst.get("networkInterfaces", []):
                if nic.get("subnetwork") == doc["selfLink"]:
                    raise in_use(ref.path, inst["selfLink"])
        network = cloud.store.peek(req.project, "networks", "global", doc["network"].split("/")[-1])
        if network and network.get("autoCreateSubnetworks"):
            raise invalid("Subnetworks of an auto-mode network are deleted with the network.")
    args = {"project": req.project, "region": region, "name": ref.name}
    return cloud.engine.submit(
        req, f"regions/{region}", "delete", ref.link, doc["id"], "subnet.delete", args
    )


@task("subnet.delete", seconds=1.0)
def _remove_subnet(cloud: Cloud, args: dict[str, Any]) -> None:
    doc = _detach_subnet(cloud, args)
    if doc is not None:
        cloud.backend.remove_subnet(doc["ipCidrRange"], doc["gatewayAddress"])


def _get_subnet(cloud: Cloud, req: Request) -> dict[str, Any]:
    region = check_region(req.project, req.params["region"])
    return crud.require(cloud, subnet_ref(req.project, region, req.params["subnetwork"]))


def _list_subnets(cloud: Cloud, req: Request) -> dict[str, Any]:
    region = check_region(req.project, req.params["region"])
    return crud.list_scope(cloud, req, "subnetworks", f"regions/{region}", "compute#subnetworkList")


N = f"{P}/global/networks"
S = f"{P}/regions/{{region}}/subnetworks"
ROUTES = [
    Route("POST", N, "compute.networks.insert", _insert_network),
    Route("GET", N, "compute.networks.list", _list_networks),
    Route("GET", f"{N}/{{network}}", "compute.networks.get", _get_network),
    Route("DELETE", f"{N}/{{network}}", "compute.networks.delete", _delete_network),
    Route("POST", S, "compute.subnetworks.insert", _insert_subnet),
    Route("GET", S, "compute.subnetworks.list", _list_subnets),
    Route("GET", f"{S}/{{subnetwork}}", "compute.subnetworks.get", _get_subnet),
    Route("DELETE", f"{S}/{{subnetwork}}", "compute.subnetworks.delete", _delete_subnet),
]
