"""Static addresses, regional and global.

This host reaches the cloud network directly, so a regional EXTERNAL address is taken from a
subnet range of its region (an instance using it as ``natIP`` also gets it as internal IP and
is reachable at it). Without any range in the region, and for global addresses, addresses come
from documentation ranges (TEST-NET-3, TEST-NET-2): recorded, but routed nowhere.
"""

from __future__ import annotations

from typing import Any

from localcloud.compute import crud, ipam
from localcloud.compute.common import check_name, fingerprint, new_id, now
from localcloud.compute.context import Cloud, Request, Route
from localcloud.compute.links import Ref, link, parse
from localcloud.compute.operations import task
from localcloud.compute.projects import check_region
from localcloud.errors import bad_field, in_use, required

REGIONAL_FALLBACK = "203.0.113.0/24"
GLOBAL_POOL = "198.51.100.0/24"


def address_ref(project: str, scope: str, name: str) -> Ref:
    return Ref(project, scope, "addresses", name)


def external_range(cloud: Cloud, project: str, region: str) -> str:
    """Where a regional EXTERNAL address comes from: the region's oldest subnet, else the
    oldest legacy network, else the documentation fallback."""
    subs = sorted(
        cloud.store.list(project, "subnetworks", f"regions/{region}"),
        key=lambda s: s["creationTimestamp"],
    )
    if subs:
        return subs[0]["ipCidrRange"]
    legacy = sorted(
        (n for n in cloud.store.list(project, "networks") if n.get("IPv4Range")),
        key=lambda n: n["creationTimestamp"],
    )
    return legacy[0]["IPv4Range"] if legacy else REGIONAL_FALLBACK


def _insert(cloud: Cloud, req: Request) -> dict[str, Any]:
    regional = "region" in req.params
    region = check_region(req.project, req.params["region"]) if regional else ""
    scope = f"regions/{region}" if regional else "global"
    body = req.body
    name = check_name(body.get("name"))
    ref = address_ref(req.project, scope, name)
    kind = body.get("addressType") or "EXTERNAL"
    if kind not in ("EXTERNAL", "INTERNAL"):
        raise bad_field("resource.addressType", kind, "Must be EXTERNAL or INTERNAL.")
    doc: dict[str, Any] = {
        "kind": "compute#address",
        "id": new_id(),
        "creationTimestamp": now(),
        "name": name,
        "status": "RESERVING",
        "addressType": kind,
        "selfLink": ref.link,
    }
    if body.get("description"):
        doc["description"] = body["description"]
    labels = body.get("labels") or {}
    doc.update(labels=labels, labelFingerprint=fingerprint(labels))
    with cloud.store.lock:
        crud.absent(cloud, ref)
        used = ipam.taken(cloud.store)
        if kind == "INTERNAL":
            if not regional:
                raise bad_field("resource.addressType", kind, "Global addresses are EXTERNAL.")
            if not body.get("subnetwork"):
                raise required("resource.subnetwork")
            sub_ref = parse(
                body["subnetwork"], req.project, scope, "subnetworks", "resource.subnetwork"
            )
            sub = crud.require(cloud, sub_ref)
            cidr = sub["ipCidrRange"]
            doc.update(subnetwork=sub["selfLink"], purpose=body.get("purpose") or "GCE_ENDPOINT")
        else:
            cidr = external_range(cloud, req.project, region) if regional else GLOBAL_POOL
            doc["networkTier"] = body.get("networkTier") or "PREMIUM"
            if regional:
                cloud.quotas.check_region(req.project, region, {"STATIC_ADDRESSES": 1})
        if body.get("address"):
            doc["address"] = ipam.claim(used, cidr, body["address"], "resource.address")
        else:
            doc["address"] = ipam.allocate(used, cidr, ref.path)
        if regional:
            doc["region"] = link(f"projects/{req.project}/{scope}")
        else:
            doc["ipVersion"] = "IPV4"
        crud.save(cloud, ref, doc)
    args = {"project": req.project, "scope": scope, "name": name}
    return cloud.engine.submit(req, scope, "insert", ref.link, doc["id"], "address.insert", args)


def _abort_insert(cloud: Cloud, args: dict[str, Any]) -> None:
    crud.remove(cloud, address_ref(args["project"], args["scope"], args["name"]))


@task("address.insert", seconds=0.3, abort=_abort_insert)
def _reserve(cloud: Cloud, args: dict[str, Any]) -> None:
    ref = address_ref(args["project"], args["scope"], args["name"])
    with cloud.store.lock:
        doc = crud.find(cloud, ref)
        if doc is not None and doc["status"] == "RESERVING":
            doc["status"] = "RESERVED"
            crud.save(cloud, ref, doc)


def _scope(req: Request) -> str:
    if "region" in req.params:
        return f"regions/{check_region(req.project, req.params['region'])}"
    return "global"


def _delete(cloud: Cloud, req: Request) -> dict[str, Any]:
    scope = _scope(req)
    ref = address_ref(req.project, scope, req.params["address"])
    doc = crud.require(cloud, ref)
    if doc.get("users"):
        raise in_use(ref.path, doc["users"][0])
    args = {"project": req.project, "scope": scope, "name": ref.name}
    return cloud.engine.submit(req, scope, "delete", ref.link, doc["id"], "address.delete", args)


@task("address.delete", seconds=0.3)
def _release(cloud: Cloud, args: dict[str, Any]) -> None:
    crud.remove(cloud, address_ref(args["project"], args["scope"], args["name"]))


def _get(cloud: Cloud, req: Request) -> dict[str, Any]:
    return crud.require(cloud, address_ref(req.project, _scope(req), req.params["address"]))


def _list(cloud: Cloud, req: Request) -> dict[str, Any]:
    return crud.list_scope(cloud, req, "addresses", _scope(req), "compute#addressList")


RA = "projects/{project}/regions/{region}/addresses"
GA = "projects/{project}/global/addresses"
ROUTES = [
    Route("POST", RA, "compute.addresses.insert", _insert),
    Route("GET", RA, "compute.addresses.list", _list),
    Route("GET", f"{RA}/{{address}}", "compute.addresses.get", _get),
    Route("DELETE", f"{RA}/{{address}}", "compute.addresses.delete", _delete),
    Route("POST", GA, "compute.globalAddresses.insert", _insert),
    Route("GET", GA, "compute.globalAddresses.list", _list),
    Route("GET", f"{GA}/{{address}}", "compute.globalAddresses.get", _get),
    Route("DELETE", f"{GA}/{{address}}", "compute.globalAddresses.delete", _delete),
]
