"""Persistent disks: standalone ones (``disks.insert``) and instances' boot disks.

A disk here is a record; its bytes appear only when the backend attaches it (a directory on
this host, bind-mounted into the machine at ``/dev/disk/by-id/google-<deviceName>``).
"""

from __future__ import annotations

from typing import Any

from localcloud.compute import crud
from localcloud.compute.common import as_int, check_name, fingerprint, new_id, now
from localcloud.compute.context import Cloud, Request, Route
from localcloud.compute.links import LINK, Ref, link, parse, relative
from localcloud.compute.operations import task
from localcloud.compute.projects import check_zone
from localcloud.errors import bad_field, in_use

DEFAULT_SIZE_GB = 10
DISK_TYPES = ("pd-standard", "pd-balanced", "pd-ssd")


def disk_ref(project: str, zone: str, name: str) -> Ref:
    return Ref(project, f"zones/{zone}", "disks", name)


def image_link(value: str) -> str:
    """Images are not served here, but their links are kept in GCE's absolute form."""
    rel = relative(value)
    return LINK + rel if rel.startswith("projects/") else value


def new_disk(project: str, zone: str, name: str, params: dict[str, Any], field: str) -> dict:
    """A CREATING disk record from ``disks.insert`` fields or an instance's initializeParams."""
    size = as_int(
        params.get("sizeGb", params.get("diskSizeGb")), f"{field}.sizeGb", DEFAULT_SIZE_GB
    )
    if size <= 0:
        raise bad_field(f"{field}.sizeGb", size, "Must be a positive number of GB.")
    dtype = relative(params.get("type") or params.get("diskType") or "pd-standard").split("/")[-1]
    if dtype not in DISK_TYPES:
        raise bad_field(
            f"{field}.type", dtype, f"Disk type must be one of {', '.join(DISK_TYPES)}."
        )
    labels = dict(params.get("labels") or {})
    doc: dict[str, Any] = {
        "kind": "compute#disk",
        "id": new_id(),
        "creationTimestamp": now(),
        "name": name,
        "sizeGb": str(size),
        "zone": link(f"projects/{project}/zones/{zone}"),
        "status": "CREATING",
        "selfLink": disk_ref(project, zone, name).link,
        "type": link(f"projects/{project}/zones/{zone}/diskTypes/{dtype}"),
        "labelFingerprint": fingerprint(labels),
    }
    if labels:
        doc["labels"] = labels
    if params.get("sourceImage"):
        doc["sourceImage"] = image_link(params["sourceImage"])
    if params.get("description"):
        doc["description"] = params["description"]
    return doc


def _insert(cloud: Cloud, req: Request) -> dict[str, Any]:
    zone = check_zone(req.project, req.params["zone"])
    name = check_name(req.body.get("name"))
    ref = disk_ref(req.project, zone, name)
    params = dict(req.body)
    if req.query.get("sourceImage"):
        params["sourceImage"] = req.query["sourceImage"]
    doc = new_disk(req.project, zone, name, params, "resource")
    with cloud.store.lock:
        crud.absent(cloud, ref)
        cloud.quotas.check_zone(req.project, zone, {"DISKS_TOTAL_GB": int(doc["sizeGb"])})
        crud.save(cloud, ref, doc)
    args = {"project": req.project, "zone": zone, "names": [name]}
    return cloud.engine.submit(
        req, f"zones/{zone}", "insert", ref.link, doc["id"], "disk.insert", args
    )


def _abort_insert(cloud: Cloud, args: dict[str, Any]) -> None:
    with cloud.store.batch():
        for name in args["names"]:
            crud.remove(cloud, disk_ref(args["project"], args["zone"], name))


@task("disk.insert", seconds=0.5, abort=_abort_insert)
def mark_ready(cloud: Cloud, args: dict[str, Any]) -> None:
    """CREATING -> READY for ``args["names"]`` in ``args["zone"]``."""
    with cloud.store.batch():
        for name in args["names"]:
            ref = disk_ref(args["project"], args["zone"], name)
            doc = crud.find(cloud, ref)
            if doc is not None and doc["status"] == "CREATING":
                doc["status"] = "READY"
                crud.save(cloud, ref, doc)


def _delete(cloud: Cloud, req: Request) -> dict[str, Any]:
    zone = check_zone(req.project, req.params["zone"])
    ref = disk_ref(req.project, zone, req.params["disk"])
    doc = crud.require(cloud, ref)
    if doc.get("users"):
        raise in_use(ref.path, doc["users"][0])
    args = {"project": req.project, "zone": zone, "name": ref.name}
    return cloud.engine.submit(
        req, f"zones/{zone}", "delete", ref.link, doc["id"], "disk.delete", args
    )


@task("disk.delete", seconds=0.5)
def _remove(cloud: Cloud, args: dict[str, Any]) -> None:
    ref = disk_ref(args["project"], args["zone"], args["name"])
    doc = crud.find(cloud, ref)
    if doc is not None:
        cloud.backend.delete_disk(doc)
        crud.remove(cloud, ref)


def _get(cloud: Cloud, req: Request) -> dict[str, Any]:
    zone = check_zone(req.project, req.params["zone"])
    return crud.require(cloud, disk_ref(req.project, zone, req.params["disk"]))


def _list(cloud: Cloud, req: Request) -> dict[str, Any]:
    zone = check_zone(req.project, req.params["zone"])
    return crud.list_scope(cloud, req, "disks", f"zones/{zone}", "compute#diskList")


def parse_disk(value: str, project: str, zone: str, field: str) -> Ref:
    return parse(value, project, f"zones/{zone}", "disks", field)


D = "projects/{project}/zones/{zone}/disks"
ROUTES = [
    Route("POST", D, "compute.disks.insert", _insert),
    Route("GET", D, "compute.disks.list", _list),
    Route("GET", f"{D}/{{disk}}", "compute.disks.get", _get),
    Route("DELETE", f"{D}/{{disk}}", "compute.disks.delete", _delete),
]
