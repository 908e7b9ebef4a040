"""Instance lifecycle against the backend: boot, stop, delete, and undoing a failed create.

Used by ``instances.*`` and by instance group managers. Backend calls run without the store
lock (a real machine takes seconds to boot) and in parallel for batches; records are written
afterwards in one transaction, re-read first because a delete may have overtaken a create.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from localcloud.compute import crud
from localcloud.compute.common import now
from localcloud.compute.context import Cloud
from localcloud.compute.disks import disk_ref
from localcloud.compute.instance_build import instance_ref
from localcloud.compute.links import relative
from localcloud.compute.sync import push_routes
from localcloud.errors import OperationFailed

PARALLEL_BACKEND_CALLS = 8


def set_status(
    cloud: Cloud,
    project: str,
    zone: str,
    names: Iterable[str],
    status: str,
    only_from: tuple[str, ...] = (),
) -> None:
    with cloud.store.batch():
        for name in names:
            ref = instance_ref(project, zone, name)
            inst = crud.find(cloud, ref)
            if inst is not None and (not only_from or inst["status"] in only_from):
                inst["status"] = status
                crud.save(cloud, ref, inst)


def _each(
    cloud: Cloud, project: str, zone: str, names: list[str], call: Callable[[dict[str, Any]], None]
) -> tuple[dict[str, dict], dict[str, str]]:
    """Run ``call(instance)`` for each existing instance, in parallel.

    Returns the instances called (by name) and the errors (name -> text)."""
    insts = [i for n in names if (i := crud.find(cloud, instance_ref(project, zone, n)))]
    errors: dict[str, str] = {}

    def one(inst: dict[str, Any]) -> None:
        try:
            call(inst)
        except Exception as err:  # reported per instance through the operation
            errors[inst["name"]] = f"{type(err).__name__}: {err}"

    if len(insts) <= 1:
        for inst in insts:
            one(inst)
    else:
        with ThreadPoolExecutor(min(PARALLEL_BACKEND_CALLS, len(insts))) as pool:
            list(pool.map(one, insts))
    return {i["name"]: i for i in insts}, errors


def _fail_if(errors: dict[str, str], what: str) -> None:
    if errors:
        first = sorted(errors.items())[0]
        raise OperationFailed(
            "INTERNAL_ERROR",
            f"Could not {what} {len(errors)} instance(s); {first[0]}: {first[1]}",
            500,
        )


def _has_routes(cloud: Cloud) -> bool:
    return any(cloud.store.list(p, "routes") for p in cloud.store.projects())


def boot(cloud: Cloud, project: str, zone: str, names: list[str]) -> None:
    """Start the backend machines of freshly created (or stopped) instances; mark RUNNING."""
    started, errors = _each(cloud, project, zone, names, cloud.backend.start)
    stamp = now()
    orphans = []
    with cloud.store.batch():
        for name in names:
            ref = instance_ref(project, zone, name)
            inst = crud.find(cloud, ref)
            if inst is None:
                if name in started:
                    orphans.append(started[name])
                continue
            if inst["status"] not in ("PROVISIONING", "STAGING", "TERMINATED"):
                continue  # a stop or delete was accepted meanwhile; it decides the status
            if name in errors:
                inst.update(status="TERMINATED", statusMessage=errors[name])
            else:
                inst.update(status="RUNNING", lastStartTimestamp=stamp)
                inst.pop("statusMessage", None)
            crud.save(cloud, ref, inst)
            for disk in inst["disks"]:
                dref = _disk_ref(disk["source"])
                doc = crud.find(cloud, dref)
                if doc is not None and doc["status"] == "CREATING":
                    doc["status"] = "READY"
                    crud.save(cloud, dref, doc)
    for orphan in orphans:  # deleted while booting: do not leave a machine behind
        cloud.backend.delete(orphan)
    if _has_routes(cloud):
        push_routes(cloud)
    _fail_if(errors, "start")


def stop(cloud: Cloud, project: str, zone: str, names: list[str]) -> None:
    _, errors = _each(cloud, project, zone, names, cloud.backend.stop)
    stamp = now()
    with cloud.store.batch():
        for name in names:
            ref = instance_ref(project, zone, name)
            inst = crud.find(cloud, ref)
            if (
                inst is not None
                and name not in errors
                and inst["status"] in ("RUNNING", "STOPPING")
            ):
                inst.update(status="TERMINATED", lastStopTimestamp=stamp)
                crud.save(cloud, ref, inst)
    _fail_if(errors, "stop")


def reset(cloud: Cloud, project: str, zone: str, names: list[str]) -> None:
    _fail_if(_each(cloud, project, zone, names, cloud.backend.reset)[1], "reset")


def destroy(cloud: Cloud, project: str, zone: str, names: list[str]) -> None:
    """Delete machines and records: auto-delete disks go, other disks and addresses stay."""
    _, errors = _each(cloud, project, zone, names, cloud.backend.delete)
    gone = [n for n in names if n not in errors]
    forget(cloud, project, zone, gone)
    if _has_routes(cloud):
        push_routes(cloud)
    _fail_if(errors, "delete")


def forget(cloud: Cloud, project: str, zone: str, names: list[str]) -> None:
    """Remove instance records and undo what they held (disks, static addresses)."""
    dropped: list[dict[str, Any]] = []
    with cloud.store.batch():
        for name in names:
            ref = instance_ref(project, zone, name)
            inst = crud.find(cloud, ref)
            if inst is None:
                continue
            for disk in inst["disks"]:
                dref = _disk_ref(disk["source"])
                doc = crud.find(cloud, dref)
                if doc is None:
                    continue
                users = [u for u in doc.get("users", []) if u != inst["selfLink"]]
                if disk.get("autoDelete") and not users:
                    crud.remove(cloud, dref)
                    if not disk.get("boot"):
                        dropped.append(doc)
                else:
                    doc["users"] = users
                    if not users:
                        doc.pop("users")
                    crud.save(cloud, dref, doc)
            region_scope = "regions/" + zone.rsplit("-", 1)[0]
            for addr in list(cloud.store.list(project, "addresses", region_scope)):
                if inst["selfLink"] in addr.get("users", []):
                    freed = dict(addr, status="RESERVED")
                    freed.pop("users")
                    cloud.store.put(project, "addresses", region_scope, addr["name"], freed)
            cloud.store.delete(project, "guestAttributes", f"zones/{zone}", name)
            crud.remove(cloud, ref)
    for doc in dropped:
        cloud.backend.delete_disk(doc)


def rollback_create(cloud: Cloud, project: str, zone: str, names: list[str]) -> None:
    """A create that failed before booting: drop the records, with the disks it made."""
    with cloud.store.batch():
        for name in names:
            inst = crud.find(cloud, instance_ref(project, zone, name))
            if inst is None:
                continue
            for disk in inst["disks"]:
                disk["autoDelete"] = True  # disks created for it go; attached ones stay
                doc = crud.find(cloud, _disk_ref(disk["source"]))
                if doc is not None and doc["status"] != "CREATING":
                    disk["autoDelete"] = False
            crud.save(cloud, instance_ref(project, zone, name), inst)
        forget(cloud, project, zone, names)


def _disk_ref(source: str) -> Any:
    parts = relative(source).split("/")
    return disk_ref(parts[1], parts[3], parts[5])
