"""Firewall rules: records here, enforcement by the backend (:func:`sync.push_firewalls`)."""

from __future__ import annotations

from typing import Any

from localcloud.compute import crud, ipam
from localcloud.compute.common import check_name, new_id, now
from localcloud.compute.context import Cloud, Request, Route
from localcloud.compute.links import Ref, parse
from localcloud.compute.operations import task
from localcloud.compute.sync import push_firewalls
from localcloud.errors import bad_field, invalid, required

_PROTOCOLS = {"tcp", "udp", "icmp", "esp", "ah", "sctp", "ipip", "all"}
_COPIED = (
    "description",
    "sourceTags",
    "targetTags",
    "sourceServiceAccounts",
    "targetServiceAccounts",
    "destinationRanges",
)


def _ref(project: str, name: str) -> Ref:
    return Ref(project, "global", "firewalls", name)


def _rules(value: Any, field: str) -> list[dict[str, Any]]:
    out = []
    for rule in value or []:
        proto = str(rule.get("IPProtocol", "")).lower()
        if not proto:
            raise required(f"{field}.IPProtocol")
        if proto not in _PROTOCOLS and not proto.isdigit():
            raise bad_field(f"{field}.IPProtocol", proto, "Unknown protocol.")
        item: dict[str, Any] = {"IPProtocol": proto}
        if rule.get("ports"):
            item["ports"] = [str(p) for p in rule["ports"]]
        out.append(item)
    return out


def _build(cloud: Cloud, project: str, body: dict[str, Any], base: dict[str, Any]) -> dict:
    """The firewall document for ``body`` applied over ``base`` (empty for insert)."""
    doc = dict(base)
    for key in _COPIED:
        if key in body:
            doc[key] = body[key]
    if "network" in body or "network" not in doc:
        net = parse(
            body.get("network") or "global/networks/default",
            project,
            "global",
            "networks",
            "resource.network",
        )
        doc["network"] = crud.require(cloud, net)["selfLink"]
    if "allowed" in body or "denied" in body:
        doc.pop("allowed", None)
        doc.pop("denied", None)
        if body.get("allowed"):
            doc["allowed"] = _rules(body["allowed"], "resource.allowed")
        if body.get("denied"):
            doc["denied"] = _rules(body["denied"], "resource.denied")
    if not doc.get("allowed") and not doc.get("denied"):
        raise invalid("Exactly one of 'allowed' or 'denied' must be specified.")
    if doc.get("allowed") and doc.get("denied"):
        raise invalid("Only one of 'allowed' or 'denied' may be specified.")
    if "sourceRanges" in body:
        for value in body["sourceRanges"]:
            ipam.check_range(value, "resource.sourceRanges")
        doc["sourceRanges"] = list(body["sourceRanges"])
    doc["direction"] = body.get("direction") or doc.get("direction") or "INGRESS"
    if doc["direction"] not in ("INGRESS", "EGRESS"):
        raise bad_field("resource.direction", doc["direction"], "Must be INGRESS or EGRESS.")
    if doc["direction"] == "INGRESS" and not doc.get("sourceRanges") and not doc.get("sourceTags"):
        doc["sourceRanges"] = ["0.0.0.0/0"]
    doc["priority"] = int(body.get("priority", doc.get("priority", 1000)))
    doc["disabled"] = bool(body.get("disabled", doc.get("disabled", False)))
    doc["logConfig"] = {"enable": bool(body.get("logConfig", {}).get("enable", False))}
    return doc


def _insert(cloud: Cloud, req: Request) -> dict[str, Any]:
    name = check_name(req.body.get("name"))
    ref = _ref(req.project, name)
    with cloud.store.lock:
        crud.absent(cloud, ref)
        doc = _build(cloud, req.project, req.body, {})
        cloud.quotas.check_project(req.project, {"FIREWALLS": 1})
        doc.update(
            kind="compute#firewall",
            id=new_id(),
            creationTimestamp=now(),
            name=name,
            selfLink=ref.link,
        )
        crud.save(cloud, ref, doc)
    args = {"project": req.project, "name": name, "change": None}
    return cloud.engine.submit(req, "global", "insert", ref.link, doc["id"], "firewall.sync", args)


def _change(cloud: Cloud, req: Request, replace: bool) -> dict[str, Any]:
    ref = _ref(req.project, req.params["firewall"])
    with cloud.store.lock:
        doc = crud.require(cloud, ref)
        base = (
            {k: doc[k] for k in ("kind", "id", "creationTimestamp", "name", "selfLink", "network")}
            if replace
            else doc
        )
        _build(cloud, req.project, req.body, base)  # validate now: a bad request is a 400
    args = {"project": req.project, "name": ref.name, "change": req.body, "replace": replace}
    op_type = "update" if replace else "patch"
    return cloud.engine.submit(req, "global", op_type, ref.link, doc["id"], "firewall.sync", args)


def _abort_insert(cloud: Cloud, args: dict[str, Any]) -> None:
    if args["change"] is None:
        crud.remove(cloud, _ref(args["project"], args["name"]))


@task("firewall.sync", seconds=0.5, abort=_abort_insert)
def _apply(cloud: Cloud, args: dict[str, Any]) -> None:
    ref = _ref(args["project"], args["name"])
    if args["change"] is not None:
        with cloud.store.lock:
            doc = crud.find(cloud, ref)
            if doc is not None:
                if args.get("replace"):
                    doc = {
                        k: doc[k]
                        for k in ("kind", "id", "creationTimestamp", "name", "selfLink", "network")
                    }
                crud.save(cloud, ref, _build(cloud, args["project"], args["change"], doc))
    push_firewalls(cloud)


def _delete(cloud: Cloud, req: Request) -> dict[str, Any]:
    ref = _ref(req.project, req.params["firewall"])
    doc = crud.require(cloud, ref)
    args = {"project": req.project, "name": ref.name}
    return cloud.engine.submit(
        req, "global", "delete", ref.link, doc["id"], "firewall.delete", args
    )


@task("firewall.delete", seconds=0.5)
def _remove(cloud: Cloud, args: dict[str, Any]) -> None:
    crud.remove(cloud, _ref(args["project"], args["name"]))
    push_firewalls(cloud)


def _get(cloud: Cloud, req: Request) -> dict[str, Any]:
    return crud.require(cloud, _ref(req.project, req.params["firewall"]))


def _list(cloud: Cloud, req: Request) -> dict[str, Any]:
    return crud.list_scope(cloud, req, "firewalls", "global", "compute#firewallList")


F = "projects/{project}/global/firewalls"
ROUTES = [
    Route("POST", F, "compute.firewalls.insert", _insert),
    Route("GET", F, "compute.firewalls.list", _list),
    Route("GET", f"{F}/{{firewall}}", "compute.firewalls.get", _get),
    Route("DELETE", f"{F}/{{firewall}}", "compute.firewalls.delete", _delete),
    Route(
        "PATCH", f"{F}/{{firewall}}", "compute.firewalls.patch", lambda c, r: _change(c, r, False)
    ),
    Route("PUT", f"{F}/{{firewall}}", "compute.firewalls.update", lambda c, r: _change(c, r, True)),
]
