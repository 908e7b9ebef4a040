"""Static routes: records here, kernel routes by the backend (:func:`sync.push_routes`).

``nextHopInstance`` resolves to the instance's internal IP each time routes are pushed, so a
route made before its instance exists (or after it is re-created) converges by itself.
"""

from __future__ import annotations

from typing import Any

from localcloud.compute import crud, ipam
from localcloud.compute.common import check_name, new_id, now
from localcloud.compute.context import Cloud, Request, Route
from localcloud.compute.links import Ref, parse
from localcloud.compute.operations import task
from localcloud.compute.sync import push_routes
from localcloud.errors import invalid, required

_HOPS = ("nextHopInstance", "nextHopIp", "nextHopGateway")


def _ref(project: str, name: str) -> Ref:
    return Ref(project, "global", "routes", name)


def _insert(cloud: Cloud, req: Request) -> dict[str, Any]:
    body = req.body
    name = check_name(body.get("name"))
    ref = _ref(req.project, name)
    if not body.get("destRange"):
        raise required("resource.destRange")
    dest = str(ipam.network(body["destRange"], "resource.destRange"))
    hops = [h for h in _HOPS if body.get(h)]
    if len(hops) != 1:
        raise invalid("Exactly one of nextHopInstance, nextHopIp, nextHopGateway must be set.")
    doc: dict[str, Any] = {
        "kind": "compute#route",
        "id": new_id(),
        "creationTimestamp": now(),
        "name": name,
        "destRange": dest,
        "priority": int(body.get("priority", 1000)),
        "routeType": "STATIC",
        "selfLink": ref.link,
    }
    for key in ("description", "tags"):
        if body.get(key):
            doc[key] = body[key]
    with cloud.store.lock:
        crud.absent(cloud, ref)
        net = parse(
            body.get("network") or "global/networks/default",
            req.project,
            "global",
            "networks",
            "resource.network",
        )
        doc["network"] = crud.require(cloud, net)["selfLink"]
        if hops[0] == "nextHopInstance":
            inst = parse(
                body["nextHopInstance"], req.project, "", "instances", "resource.nextHopInstance"
            )
            if not inst.scope:
                raise invalid("nextHopInstance must name the instance's zone.")
            doc["nextHopInstance"] = crud.require(cloud, inst)["selfLink"]
        elif hops[0] == "nextHopIp":
            doc["nextHopIp"] = body["nextHopIp"]
        else:
            doc["nextHopGateway"] = parse(
                body["nextHopGateway"], req.project, "global", "gateways", "resource.nextHopGateway"
            ).link
        cloud.quotas.check_project(req.project, {"ROUTES": 1})
        crud.save(cloud, ref, doc)
    args = {"project": req.project, "name": name}
    return cloud.engine.submit(req, "global", "insert", ref.link, doc["id"], "route.insert", args)


def _abort_insert(cloud: Cloud, args: dict[str, Any]) -> None:
    crud.remove(cloud, _ref(args["project"], args["name"]))


@task("route.insert", seconds=0.5, abort=_abort_insert)
def _apply_insert(cloud: Cloud, args: dict[str, Any]) -> None:
    push_routes(cloud)


def _delete(cloud: Cloud, req: Request) -> dict[str, Any]:
    ref = _ref(req.project, req.params["route"])
    doc = crud.require(cloud, ref)
    args = {"project": req.project, "name": ref.name}
    return cloud.engine.submit(req, "global", "delete", ref.link, doc["id"], "route.delete", args)


@task("route.delete", seconds=0.5)
def _apply_delete(cloud: Cloud, args: dict[str, Any]) -> None:
    crud.remove(cloud, _ref(args["project"], args["name"]))
    push_routes(cloud)


def _get(cloud: Cloud, req: Request) -> dict[str, Any]:
    return crud.require(cloud, _ref(req.project, req.params["route"]))


def _list(cloud: Cloud, req: Request) -> dict[str, Any]:
    return crud.list_scope(cloud, req, "routes", "global", "compute#routeList")


R = "projects/{project}/global/routes"
ROUTES = [
    Route("POST", R, "compute.routes.insert", _insert),
    Route("GET", R, "compute.routes.list", _list),
    Route("GET", f"{R}/{{route}}", "compute.routes.get", _get),
    Route("DELETE", f"{R}/{{route}}", "compute.routes.delete", _delete),
]
