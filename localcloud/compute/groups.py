"""Instance templates and zonal instance group managers.

A manager owns the instances whose ``created-by`` metadata names it (as in GCE). Its
operations reconcile: create ``<baseInstanceName>-<4 random chars>`` instances from the
template, or delete the newest ones, until the group has ``targetSize`` members. A manager
does not watch its group between operations (no auto-healing).
"""

from __future__ import annotations

import secrets
import string
from typing import Any

from localcloud.compute import crud, instance_build, instance_life, metadata_items
from localcloud.compute.catalog import MACHINE_TYPES
from localcloud.compute.common import as_int, check_name, fingerprint, new_id, now, project_number
from localcloud.compute.context import Cloud, Request, Route
from localcloud.compute.links import Ref, link, parse
from localcloud.compute.listing import page
from localcloud.compute.operations import task
from localcloud.compute.projects import check_zone
from localcloud.errors import ApiError, OperationFailed, bad_field, in_use, required

_PROPERTY_KEYS = (
    "canIpForward",
    "description",
    "disks",
    "labels",
    "machineType",
    "metadata",
    "minCpuPlatform",
    "networkInterfaces",
    "scheduling",
    "serviceAccounts",
    "shieldedInstanceConfig",
    "tags",
    "guestAccelerators",
)
_SUFFIX_CHARS = string.ascii_lowercase + string.digits


def template_ref(project: str, name: str) -> Ref:
    return Ref(project, "global", "instanceTemplates", name)


def igm_ref(project: str, zone: str, name: str) -> Ref:
    return Ref(project, f"zones/{zone}", "instanceGroupManagers", name)


# --- instance templates ---------------------------------------------------------------------


def _insert_template(cloud: Cloud, req: Request) -> dict[str, Any]:
    name = check_name(req.body.get("name"))
    ref = template_ref(req.project, name)
    given = req.body.get("properties") or {}
    props = {k: given[k] for k in _PROPERTY_KEYS if k in given}
    machine = props.get("machineType")
    if not machine:
        raise required("resource.properties.machineType")
    if str(machine).rsplit("/", 1)[-1] not in MACHINE_TYPES:
        raise bad_field("resource.properties.machineType", machine, "Unknown machine type.")
    props["metadata"] = metadata_items.build(
        (props.get("metadata") or {}).get("items"), "resource.properties.metadata"
    )
    for nic in props.get("networkInterfaces") or []:
        if nic.get("network"):
            nref = parse(
                nic["network"],
                req.project,
                "global",
                "networks",
                "resource.properties.networkInterfaces.network",
            )
            nic["network"] = crud.require(cloud, nref)["selfLink"]
    doc = {
        "kind": "compute#instanceTemplate",
        "id": new_id(),
        "creationTimestamp": now(),
        "name": name,
        "properties": props,
        "selfLink": ref.link,
    }
    if req.body.get("description"):
        doc["description"] = req.body["description"]
    with cloud.store.lock:
        crud.absent(cloud, ref)
        cloud.quotas.check_project(req.project, {"INSTANCE_TEMPLATES": 1})
        crud.save(cloud, ref, doc)
    args = {"project": req.project, "name": name}
    return cloud.engine.submit(
        req, "global", "insert", ref.link, doc["id"], "template.insert", args
    )


def _abort_template(cloud: Cloud, args: dict[str, Any]) -> None:
    crud.remove(cloud, template_ref(args["project"], args["name"]))


@task("template.insert", seconds=0.3, abort=_abort_template)
def _template_ready(cloud: Cloud, args: dict[str, Any]) -> None:
    """Templates are ready as soon as recorded; the operation only models latency."""


def _delete_template(cloud: Cloud, req: Request) -> dict[str, Any]:
    ref = template_ref(req.project, req.params["instanceTemplate"])
    with cloud.store.lock:
        doc = crud.require(cloud, ref)
        for igm in cloud.store.list(req.project, "instanceGroupManagers"):
            if igm["instanceTemplate"] == doc["selfLink"]:
                raise in_use(ref.path, igm["selfLink"])
    args = {"project": req.project, "name": ref.name}
    return cloud.engine.submit(
        req, "global", "delete", ref.link, doc["id"], "template.delete", args
    )


@task("template.delete", seconds=0.3)
def _remove_template(cloud: Cloud, args: dict[str, Any]) -> None:
    _abort_template(cloud, args)


def _get_template(cloud: Cloud, req: Request) -> dict[str, Any]:
    return crud.require(cloud, template_ref(req.project, req.params["instanceTemplate"]))


def _list_templates(cloud: Cloud, req: Request) -> dict[str, Any]:
    return crud.list_scope(
        cloud, req, "instanceTemplates", "global", "compute#instanceTemplateList"
    )


# --- instance group managers ----------------------------------------------------------------


def _created_by(project: str, zone: str, name: str) -> str:
    return f"projects/{project_number(project)}/zones/{zone}/instanceGroupManagers/{name}"


def members(cloud: Cloud, project: str, zone: str, name: str) -> list[dict[str, Any]]:
    """The instances this manager created (read-only documents)."""
    owner = _created_by(project, zone, name)
    return [
        inst
        for inst in cloud.store.list(project, "instances", f"zones/{zone}")
        if metadata_items.as_dict(inst.get("metadata")).get("created-by") == owner
    ]


def _action(status: str) -> str:
    if status in ("PROVISIONING", "STAGING"):
        return "CREATING"
    if status == "STOPPING":
        return "DELETING"
    return "NONE"


def _render(cloud: Cloud, project: str, igm: dict[str, Any]) -> dict[str, Any]:
    """A manager with its current actions, counted from its members now."""
    zone = igm["zone"].rsplit("/", 1)[-1]
    found = members(cloud, project, zone, igm["name"])
    actions = dict.fromkeys(
        (
            "abandoning",
            "creating",
            "creatingWithoutRetries",
            "deleting",
            "none",
            "recreating",
            "refreshing",
            "restarting",
            "resuming",
            "starting",
            "stopping",
            "suspending",
            "verifying",
        ),
        0,
    )
    for inst in found:
        actions[_action(inst["status"]).lower()] += 1
    stable = actions["none"] == len(found) == igm["targetSize"]
    return {
        **igm,
        "currentActions": actions,
        "status": {"isStable": stable, "versionTarget": {"isReached": True}},
    }


def _insert_igm(cloud: Cloud, req: Request) -> dict[str, Any]:
    zone = check_zone(req.project, req.params["zone"])
    body = req.body
    name = check_name(body.get("name"))
    ref = igm_ref(req.project, zone, name)
    template = body.get("instanceTemplate") or next(
        (
            v.get("instanceTemplate")
            for v in body.get("versions") or []
            if v.get("instanceTemplate")
        ),
        None,
    )
    if not template:
        raise required("resource.instanceTemplate")
    tref = parse(template, req.project, "global", "instanceTemplates", "resource.instanceTemplate")
    size = as_int(body.get("targetSize"), "resource.targetSize", 0)
    if size < 0:
        raise bad_field("resource.targetSize", size, "Must be >= 0.")
    base = body.get("baseInstanceName") or name
    check_name(base, "resource.baseInstanceName")
    with cloud.store.lock:
        crud.absent(cloud, ref)
        template_link = crud.require(cloud, tref)["selfLink"]
        cloud.quotas.check_zone(req.project, zone, {"INSTANCE_GROUP_MANAGERS": 1})
        doc: dict[str, Any] = {
            "kind": "compute#instanceGroupManager",
            "id": new_id(),
            "creationTimestamp": now(),
            "name": name,
            "zone": link(f"projects/{req.project}/zones/{zone}"),
            "instanceTemplate": template_link,
            "versions": [{"instanceTemplate": template_link}],
            "instanceGroup": link(f"projects/{req.project}/zones/{zone}/instanceGroups/{name}"),
            "baseInstanceName": base,
            "fingerprint": fingerprint([name, template_link]),
            "targetSize": size,
            "listManagedInstancesResults": "PAGELESS",
            "selfLink": ref.link,
        }
        if body.get("description"):
            doc["description"] = body["description"]
        crud.save(cloud, ref, doc)
    args = {"project": req.project, "zone": zone, "name": name, "remove": False}
    return cloud.engine.submit(
        req,
        f"zones/{zone}",
        "compute.instanceGroupManagers.insert",
        ref.link,
        doc["id"],
        "igm.reconcile",
        args,
    )


def _new_names(cloud: Cloud, project: str, zone: str, base: str, count: int) -> list[str]:
    taken = {i["name"] for i in cloud.store.list(project, "instances", f"zones/{zone}")}
    names: list[str] = []
    while len(names) < count:
        name = f"{base}-{''.join(secrets.choice(_SUFFIX_CHARS) for _ in range(4))}"
        if name not in taken and name not in names:
            names.append(name)
    return names


def _grow(cloud: Cloud, igm: dict[str, Any], project: str, zone: str, count: int) -> list[str]:
    """Record ``count`` new members from the template; returns their names."""
    tref = parse(igm["instanceTemplate"], project, "global", "instanceTemplates", "template")
    template = crud.find(cloud, tref)
    if template is None:
        raise OperationFailed(
            "RESOURCE_NOT_FOUND", f"The resource '{tref.path}' was not found", 404
        )
    props = template["properties"]
    items = [
        *(props.get("metadata") or {}).get("items", []),
        {"key": "created-by", "value": _created_by(project, zone, igm["name"])},
    ]
    spec = {**props, "metadata": {"items": items}}
    names = _new_names(cloud, project, zone, igm["baseInstanceName"], count)
    try:
        plan = instance_build.plan(cloud, project, zone, [(n, spec) for n in names])
    except ApiError as err:  # the template no longer fits (network gone...)
        raise OperationFailed(err.reason.upper(), err.message, err.status) from None
    cloud.quotas.check_zone(project, zone, plan.want)
    instance_build.commit(cloud, plan)
    instance_life.set_status(cloud, project, zone, names, "STAGING")
    return names


@task("igm.reconcile", seconds=1.0)
def _reconcile(cloud: Cloud, args: dict[str, Any]) -> None:
    project, zone, name = args["project"], args["zone"], args["name"]
    ref = igm_ref(project, zone, name)
    with cloud.store.lock:
        igm = crud.find(cloud, ref)
        if igm is None:
            return
        target = 0 if args["remove"] else igm["targetSize"]
        current = sorted(
            members(cloud, project, zone, name), key=lambda i: (i["creationTimestamp"], i["name"])
        )
        created = (
            _grow(cloud, igm, project, zone, target - len(current)) if target > len(current) else []
        )
        victims = [i["name"] for i in current[target:]]
        instance_life.set_status(cloud, project, zone, victims, "STOPPING")
    if created:
        instance_life.boot(cloud, project, zone, created)
    if victims:
        instance_life.destroy(cloud, project, zone, victims)
    if args["remove"]:
        crud.remove(cloud, ref)


def _existing_igm(cloud: Cloud, req: Request) -> tuple[str, Ref, dict[str, Any]]:
    zone = check_zone(req.project, req.params["zone"])
    ref = igm_ref(req.project, zone, req.params["instanceGroupManager"])
    return zone, ref, crud.require(cloud, ref)


def _resize(cloud: Cloud, req: Request) -> dict[str, Any]:
    size = as_int(req.query.get("size"), "size")
    if size < 0:
        raise bad_field("size", size, "Must be >= 0.")
    with cloud.store.lock:
        zone, ref, igm = _existing_igm(cloud, req)
        igm["targetSize"] = size
        crud.save(cloud, ref, igm)
    args = {"project": req.project, "zone": zone, "name": ref.name, "remove": False}
    return cloud.engine.submit(
        req,
        f"zones/{zone}",
        "compute.instanceGroupManagers.resize",
        ref.link,
        igm["id"],
        "igm.reconcile",
        args,
    )


def _delete_igm(cloud: Cloud, req: Request) -> dict[str, Any]:
    zone, ref, igm = _existing_igm(cloud, req)
    args = {"project": req.project, "zone": zone, "name": ref.name, "remove": True}
    return cloud.engine.submit(
        req,
        f"zones/{zone}",
        "compute.instanceGroupManagers.delete",
        ref.link,
        igm["id"],
        "igm.reconcile",
        args,
    )


def _get_igm(cloud: Cloud, req: Request) -> dict[str, Any]:
    return _render(cloud, req.project, _existing_igm(cloud, req)[2])


def _list_igms(cloud: Cloud, req: Request) -> dict[str, Any]:
    zone = check_zone(req.project, req.params["zone"])
    out = crud.list_scope(
        cloud, req, "instanceGroupManagers", f"zones/{zone}", "compute#instanceGroupManagerList"
    )
    if "items" in out:
        out["items"] = [_render(cloud, req.project, igm) for igm in out["items"]]
    return out


def _list_managed(cloud: Cloud, req: Request) -> dict[str, Any]:
    zone, ref, igm = _existing_igm(cloud, req)
    docs = [
        {
            "instance": inst["selfLink"],
            "id": inst["id"],
            "name": inst["name"],
            "instanceStatus": inst["status"],
            "currentAction": _action(inst["status"]),
            "version": {"instanceTemplate": igm["instanceTemplate"]},
        }
        for inst in members(cloud, req.project, zone, ref.name)
    ]
    return page(req, docs, items_key="managedInstances")


T = "projects/{project}/global/instanceTemplates"
G = "projects/{project}/zones/{zone}/instanceGroupManagers"
GX = f"{G}/{{instanceGroupManager}}"
ROUTES = [
    Route("POST", T, "compute.instanceTemplates.insert", _insert_template),
    Route("GET", T, "compute.instanceTemplates.list", _list_templates),
    Route("GET", f"{T}/{{instanceTemplate}}", "compute.instanceTemplates.get", _get_template),
    Route(
        "DELETE", f"{T}/{{instanceTemplate}}", "compute.instanceTemplates.delete", _delete_template
    ),
    Route("POST", G, "compute.instanceGroupManagers.insert", _insert_igm),
    Route("GET", G, "compute.instanceGroupManagers.list", _list_igms),
    Route("GET", GX, "compute.instanceGroupManagers.get", _get_igm),
    Route("DELETE", GX, "compute.instanceGroupManagers.delete", _delete_igm),
    Route("POST", f"{GX}/resize", "compute.instanceGroupManagers.resize", _resize),
    Route(
        "POST",
        f"{GX}/listManagedInstances",
        "compute.instanceGroupManagers.listManagedInstances",
        _list_managed,
    ),
]
