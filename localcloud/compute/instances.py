"""``instances.*``: create (one or in bulk), read, list, lifecycle, metadata, labels, tags,
disks, serial port and guest attributes."""

from __future__ import annotations

import re
from typing import Any

from localcloud.compute import crud, instance_build, instance_life, metadata_items
from localcloud.compute.common import as_int, fingerprint
from localcloud.compute.context import Cloud, Request, Route
from localcloud.compute.disks import parse_disk
from localcloud.compute.instance_build import instance_ref
from localcloud.compute.links import link, parse
from localcloud.compute.operations import task
from localcloud.compute.projects import check_zone
from localcloud.errors import (
    ApiError,
    OperationFailed,
    bad_field,
    in_use,
    invalid,
    not_found,
    required,
)

MAX_BULK = 1000
_PATTERN = re.compile(r"^([a-z][-a-z0-9]*?)(#+)([-a-z0-9]*)$")


def _zone(req: Request) -> str:
    return check_zone(req.project, req.params["zone"])


def _existing(cloud: Cloud, req: Request) -> tuple[str, dict[str, Any]]:
    zone = _zone(req)
    return zone, crud.require(cloud, instance_ref(req.project, zone, req.params["instance"]))


def template_properties(cloud: Cloud, project: str, value: str, field: str) -> dict[str, Any]:
    ref = parse(value, project, "global", "instanceTemplates", field)
    return crud.require(cloud, ref)["properties"]


def create(
    cloud: Cloud,
    req: Request,
    zone: str,
    specs: list[tuple[str, dict[str, Any]]],
    op_type: str,
    target: str,
) -> dict:
    """Validate and record ``specs`` (PROVISIONING), then submit the boot as one operation.

    An over-quota batch is not recorded: the operation answered ends in QUOTA_EXCEEDED."""
    with cloud.store.lock:
        plan = instance_build.plan(cloud, req.project, zone, specs)
        cloud.quotas.check_zone(req.project, zone, plan.want)  # the front makes it an operation
        instance_build.commit(cloud, plan)
    args = {"project": req.project, "zone": zone, "names": plan.names}
    target_id = plan.instances[0]["id"] if len(plan.instances) == 1 else None
    return cloud.engine.submit(
        req, f"zones/{zone}", op_type, target, target_id, "instances.create", args
    )


def _names(args: dict[str, Any]) -> tuple[str, str, list[str]]:
    return args["project"], args["zone"], args["names"]


@task(
    "instances.create",
    seconds=1.5,
    begin=lambda c, a: instance_life.set_status(c, *_names(a), "STAGING", ("PROVISIONING",)),
    abort=lambda c, a: instance_life.rollback_create(c, *_names(a)),
)
def _boot(cloud: Cloud, args: dict[str, Any]) -> None:
    instance_life.boot(cloud, *_names(args))


def _insert(cloud: Cloud, req: Request) -> dict[str, Any]:
    zone = _zone(req)
    spec = dict(req.body)
    if req.query.get("sourceInstanceTemplate"):
        base = template_properties(
            cloud, req.project, req.query["sourceInstanceTemplate"], "sourceInstanceTemplate"
        )
        spec = {**base, **spec}
    name = spec.get("name")
    target = instance_ref(req.project, zone, str(name)).link
    return create(cloud, req, zone, [(name, spec)], "insert", target)


def _bulk_names(cloud: Cloud, project: str, zone: str, body: dict[str, Any]) -> list[str]:
    count = as_int(body.get("count"), "resource.count")
    if not 1 <= count <= MAX_BULK:
        raise bad_field("resource.count", count, f"Must be between 1 and {MAX_BULK}.")
    named = list((body.get("perInstanceProperties") or {}).keys())
    if len(named) > count:
        raise invalid("perInstanceProperties names more instances than 'count'.")
    names = list(named)
    if len(names) < count:
        pattern = body.get("namePattern")
        if not pattern:
            raise required("resource.namePattern")
        m = _PATTERN.match(pattern)
        if not m:
            raise bad_field(
                "resource.namePattern",
                pattern,
                "Must contain one run of '#' characters, e.g. 'node-####'.",
            )
        prefix, hashes, suffix = m.groups()
        taken = {i["name"] for i in cloud.store.list(project, "instances", f"zones/{zone}")}
        number = 1
        while len(names) < count:
            candidate = f"{prefix}{number:0{len(hashes)}d}{suffix}"
            if len(str(number)) > len(hashes):
                raise invalid(f"namePattern '{pattern}' has no room for {count} instances.")
            if candidate not in taken and candidate not in names:
                names.append(candidate)
            number += 1
    return names


def _bulk_insert(cloud: Cloud, req: Request) -> dict[str, Any]:
    zone = _zone(req)
    body = req.body
    props = dict(body.get("instanceProperties") or {})
    if body.get("sourceInstanceTemplate"):
        base = template_properties(
            cloud, req.project, body["sourceInstanceTemplate"], "resource.sourceInstanceTemplate"
        )
        props = {**base, **props}
    if not props:
        raise required("resource.instanceProperties")
    with cloud.store.lock:
        names = _bulk_names(cloud, req.project, zone, body)
        per = body.get("perInstanceProperties") or {}
        specs = [
            (n, {**props, **{k: v for k, v in (per.get(n) or {}).items() if k != "name"}})
            for n in names
        ]
        target = link(f"projects/{req.project}/zones/{zone}/instances")
        return create(cloud, req, zone, specs, "bulkInsert", target)


def _get(cloud: Cloud, req: Request) -> dict[str, Any]:
    return _existing(cloud, req)[1]


def _list(cloud: Cloud, req: Request) -> dict[str, Any]:
    return crud.list_scope(cloud, req, "instances", f"zones/{_zone(req)}", "compute#instanceList")


def _submit(
    cloud: Cloud, req: Request, op_type: str, kind: str, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    zone, inst = _existing(cloud, req)
    args = {"project": req.project, "zone": zone, "names": [inst["name"]], **(extra or {})}
    return cloud.engine.submit(
        req, f"zones/{zone}", op_type, inst["selfLink"], inst["id"], kind, args
    )


def _delete(cloud: Cloud, req: Request) -> dict[str, Any]:
    _, inst = _existing(cloud, req)
    if inst.get("deletionProtection"):
        raise ApiError(
            400,
            "resourceIsProtected",
            f"The instance '{inst['name']}' has deletion protection enabled.",
        )
    return _submit(cloud, req, "delete", "instances.delete")


@task(
    "instances.delete",
    seconds=1.0,
    begin=lambda c, a: instance_life.set_status(c, *_names(a), "STOPPING"),
)
def _destroy(cloud: Cloud, args: dict[str, Any]) -> None:
    instance_life.destroy(cloud, *_names(args))


@task(
    "instances.stop",
    seconds=1.0,
    begin=lambda c, a: instance_life.set_status(c, *_names(a), "STOPPING", ("RUNNING",)),
)
def _stop(cloud: Cloud, args: dict[str, Any]) -> None:
    instance_life.stop(cloud, *_names(args))


@task(
    "instances.start",
    seconds=1.0,
    begin=lambda c, a: instance_life.set_status(c, *_names(a), "STAGING", ("TERMINATED",)),
)
def _start(cloud: Cloud, args: dict[str, Any]) -> None:
    instance_life.boot(cloud, *_names(args))


@task("instances.reset", seconds=0.5)
def _reset(cloud: Cloud, args: dict[str, Any]) -> None:
    instance_life.reset(cloud, *_names(args))


def _reset_handler(cloud: Cloud, req: Request) -> dict[str, Any]:
    _, inst = _existing(cloud, req)
    if inst["status"] != "RUNNING":
        raise ApiError(
            400,
            "resourceNotReady",
            f"The resource '{inst['name']}' is not ready (status {inst['status']}).",
        )
    return _submit(cloud, req, "reset", "instances.reset")


def _set_metadata(cloud: Cloud, req: Request) -> dict[str, Any]:
    _, inst = _existing(cloud, req)
    supplied = req.body.get("fingerprint")
    metadata_items.check_fingerprint(inst["metadata"], supplied, "metadata")
    metadata_items.build(req.body.get("items"))
    return _submit(
        cloud,
        req,
        "setMetadata",
        "instances.setMetadata",
        {"fingerprint": supplied, "items": req.body.get("items") or []},
    )


def _set_labels(cloud: Cloud, req: Request) -> dict[str, Any]:
    _, inst = _existing(cloud, req)
    supplied = req.body.get("labelFingerprint")
    metadata_items.check_fingerprint({"fingerprint": inst["labelFingerprint"]}, supplied, "labels")
    instance_build.labels(req.body.get("labels"), "resource.labels")
    return _submit(
        cloud,
        req,
        "setLabels",
        "instances.setLabels",
        {"fingerprint": supplied, "labels": req.body.get("labels") or {}},
    )


def _set_tags(cloud: Cloud, req: Request) -> dict[str, Any]:
    _, inst = _existing(cloud, req)
    supplied = req.body.get("fingerprint")
    metadata_items.check_fingerprint(inst["tags"], supplied, "tags")
    instance_build.tags(req.body.get("items"), "resource.items")
    return _submit(
        cloud,
        req,
        "setTags",
        "instances.setTags",
        {"fingerprint": supplied, "items": req.body.get("items") or []},
    )


def _apply(cloud: Cloud, args: dict[str, Any], current_fp: Any, update: Any) -> None:
    """Re-check the fingerprint at apply time (a concurrent change may have won), then update."""
    with cloud.store.lock:
        ref = instance_ref(args["project"], args["zone"], args["names"][0])
        inst = crud.find(cloud, ref)
        if inst is None:
            raise OperationFailed(
                "RESOURCE_NOT_FOUND", f"The resource '{ref.path}' was not found", 404
            )
        metadata_items.recheck_fingerprint({"fingerprint": current_fp(inst)}, args["fingerprint"])
        update(inst)
        crud.save(cloud, ref, inst)


@task("instances.setMetadata", seconds=0.5)
def _apply_metadata(cloud: Cloud, args: dict[str, Any]) -> None:
    _apply(
        cloud,
        args,
        lambda i: i["metadata"]["fingerprint"],
        lambda i: i.update(metadata=metadata_items.build(args["items"])),
    )


@task("instances.setLabels", seconds=0.3)
def _apply_labels(cloud: Cloud, args: dict[str, Any]) -> None:
    def update(inst: dict[str, Any]) -> None:
        inst.pop("labels", None)
        if args["labels"]:
            inst["labels"] = args["labels"]
        inst["labelFingerprint"] = fingerprint(args["labels"])

    _apply(cloud, args, lambda i: i["labelFingerprint"], update)


@task("instances.setTags", seconds=0.3)
def _apply_tags(cloud: Cloud, args: dict[str, Any]) -> None:
    _apply(
        cloud,
        args,
        lambda i: i["tags"]["fingerprint"],
        lambda i: i.update(tags=instance_build.tags(args["items"], "tags")),
    )


def _attach_disk(cloud: Cloud, req: Request) -> dict[str, Any]:
    zone, inst = _existing(cloud, req)
    if not req.body.get("source"):
        raise required("resource.source")
    dref = parse_disk(req.body["source"], req.project, zone, "resource.source")
    disk = crud.require(cloud, dref)
    mode = req.body.get("mode") or "READ_WRITE"
    if disk.get("users") and mode == "READ_WRITE":
        raise in_use(dref.path, disk["users"][0])
    device = req.body.get("deviceName") or disk["name"]
    if any(d["deviceName"] == device for d in inst["disks"]):
        raise bad_field("resource.deviceName", device, "The instance already has this device.")
    return _submit(
        cloud,
        req,
        "attachDisk",
        "instances.attachDisk",
        {
            "disk": dref.name,
            "deviceName": device,
            "mode": mode,
            "autoDelete": bool(req.body.get("autoDelete", False)),
        },
    )


@task("instances.attachDisk", seconds=0.5)
def _apply_attach(cloud: Cloud, args: dict[str, Any]) -> None:
    project, zone = args["project"], args["zone"]
    ref = instance_ref(project, zone, args["names"][0])
    dref = parse_disk(args["disk"], project, zone, "source")
    with cloud.store.lock:
        inst, disk = crud.find(cloud, ref), crud.find(cloud, dref)
        if inst is None or disk is None:
            raise OperationFailed("RESOURCE_NOT_FOUND", "The instance or the disk is gone.", 404)
        if disk.get("users") and args["mode"] == "READ_WRITE":
            raise OperationFailed(
                "RESOURCE_IN_USE_BY_ANOTHER_RESOURCE",
                f"The disk '{dref.path}' is already in use.",
                400,
            )
    cloud.backend.attach_disk(inst, disk, args["deviceName"])
    with cloud.store.batch():
        inst = crud.require(cloud, ref)
        disk = crud.require(cloud, dref)
        inst["disks"].append(
            {
                "kind": "compute#attachedDisk",
                "type": "PERSISTENT",
                "mode": args["mode"],
                "source": disk["selfLink"],
                "deviceName": args["deviceName"],
                "index": len(inst["disks"]),
                "boot": False,
                "autoDelete": args["autoDelete"],
                "interface": "SCSI",
                "diskSizeGb": disk["sizeGb"],
            }
        )
        disk["users"] = [*disk.get("users", []), inst["selfLink"]]
        crud.save(cloud, ref, inst)
        crud.save(cloud, dref, disk)


def _serial_port(cloud: Cloud, req: Request) -> dict[str, Any]:
    _, inst = _existing(cloud, req)
    port = as_int(req.query.get("port"), "port", 1)
    if not 1 <= port <= 4:
        raise bad_field("port", port, "Must be between 1 and 4.")
    start = max(0, as_int(req.query.get("start"), "start", 0))
    contents = cloud.backend.serial_output(inst, start) if port == 1 else ""
    return {
        "kind": "compute#serialPortOutput",
        "contents": contents,
        "start": str(start),
        "next": str(start + len(contents.encode())),
        "selfLink": inst["selfLink"] + f"/serialPort?port={port}",
    }


def _guest_attributes(cloud: Cloud, req: Request) -> dict[str, Any]:
    zone, inst = _existing(cloud, req)
    stored = cloud.store.get(req.project, "guestAttributes", f"zones/{zone}", inst["name"]) or {}
    entries: dict[str, str] = stored.get("entries", {})
    out: dict[str, Any] = {"kind": "compute#guestAttributes"}
    key = req.query.get("variableKey")
    if key:
        if key not in entries:
            raise not_found(
                f"projects/{req.project}/zones/{zone}/instances/{inst['name']}"
                f"/guestAttributes/{key}"
            )
        out.update(variableKey=key, variableValue=entries[key])
    else:
        path = req.query.get("queryPath", "")
        items = [
            {"namespace": k.split("/", 1)[0], "key": k.split("/", 1)[1], "value": v}
            for k, v in sorted(entries.items())
            if k.startswith(path)
        ]
        out["queryPath"] = path
        out["queryValue"] = {"items": items} if items else {}
    out["selfLink"] = (
        inst["selfLink"] + "/guestAttributes/" + (key or req.query.get("queryPath", ""))
    )
    return out


COLL = "projects/{project}/zones/{zone}/instances"
X = f"{COLL}/{{instance}}"
ROUTES = [
    Route("POST", COLL, "compute.instances.insert", _insert),
    Route("POST", f"{COLL}/bulkInsert", "compute.instances.bulkInsert", _bulk_insert),
    Route("GET", COLL, "compute.instances.list", _list),
    Route("GET", X, "compute.instances.get", _get),
    Route("DELETE", X, "compute.instances.delete", _delete),
    Route(
        "POST",
        f"{X}/stop",
        "compute.instances.stop",
        lambda c, r: _submit(c, r, "stop", "instances.stop"),
    ),
    Route(
        "POST",
        f"{X}/start",
        "compute.instances.start",
        lambda c, r: _submit(c, r, "start", "instances.start"),
    ),
    Route("POST", f"{X}/reset", "compute.instances.reset", _reset_handler),
    Route("POST", f"{X}/setMetadata", "compute.instances.setMetadata", _set_metadata),
    Route("POST", f"{X}/setLabels", "compute.instances.setLabels", _set_labels),
    Route("POST", f"{X}/setTags", "compute.instances.setTags", _set_tags),
    Route("POST", f"{X}/attachDisk", "compute.instances.attachDisk", _attach_disk),
    Route("GET", f"{X}/serialPort", "compute.instances.getSerialPortOutput", _serial_port),
    Route(
        "GET", f"{X}/getGuestAttributes", "compute.instances.getGuestAttributes", _guest_attributes
    ),
]
