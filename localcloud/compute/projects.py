"""Projects (created on first use), and the static regions, zones and machine types."""

from __future__ import annotations

from typing import Any

from localcloud.compute import metadata_items
from localcloud.compute.catalog import (
    CPU_PLATFORMS,
    CREATED,
    MACHINE_TYPES,
    REGIONS,
    region_of,
    stable_id,
    zones,
)
from localcloud.compute.common import now, project_number, service_account
from localcloud.compute.context import Cloud, Request, Route
from localcloud.compute.links import link
from localcloud.compute.listing import list_response
from localcloud.compute.operations import task
from localcloud.errors import not_found


def ensure_project(cloud: Cloud, project: str) -> dict[str, Any]:
    """The project record, created the first time any call names the project."""
    with cloud.store.lock:
        doc = cloud.store.get(project, "projects", "global", project)
        if doc is None:
            doc = {
                "kind": "compute#project",
                "id": project_number(project),
                "name": project,
                "creationTimestamp": now(),
                "commonInstanceMetadata": metadata_items.build([]),
                "defaultServiceAccount": service_account(project),
                "defaultNetworkTier": "PREMIUM",
                "xpnProjectStatus": "UNSPECIFIED_XPN_PROJECT_STATUS",
                "vmDnsSetting": "ZONAL_ONLY",
                "selfLink": link(f"projects/{project}"),
            }
            cloud.store.put(project, "projects", "global", project, doc)
        return doc


def check_zone(project: str, zone: str) -> str:
    if zone not in zones():
        raise not_found(f"projects/{project}/zones/{zone}")
    return zone


def check_region(project: str, region: str) -> str:
    if region not in REGIONS:
        raise not_found(f"projects/{project}/regions/{region}")
    return region


def _get_project(cloud: Cloud, req: Request) -> dict[str, Any]:
    doc = ensure_project(cloud, req.project)
    doc["quotas"] = cloud.quotas.report(cloud.quotas.project_usage(req.project))
    return doc


def _set_common_metadata(cloud: Cloud, req: Request) -> dict[str, Any]:
    doc = ensure_project(cloud, req.project)
    supplied = req.body.get("fingerprint")
    metadata_items.check_fingerprint(doc["commonInstanceMetadata"], supplied, "metadata")
    metadata_items.build(req.body.get("items"))  # validate now: a bad request is a 400
    args = {"project": req.project, "items": req.body.get("items") or [], "fingerprint": supplied}
    return cloud.engine.submit(
        req, "global", "setCommonInstanceMetadata", doc["selfLink"], doc["id"], "project.meta", args
    )


@task("project.meta", seconds=0.5)
def _apply_common_metadata(cloud: Cloud, args: dict[str, Any]) -> None:
    with cloud.store.lock:
        doc = ensure_project(cloud, args["project"])
        metadata_items.recheck_fingerprint(doc["commonInstanceMetadata"], args["fingerprint"])
        doc["commonInstanceMetadata"] = metadata_items.build(args["items"])
        cloud.store.put(args["project"], "projects", "global", args["project"], doc)


def zone_doc(project: str, zone: str) -> dict[str, Any]:
    return {
        "kind": "compute#zone",
        "id": stable_id("zone", zone),
        "creationTimestamp": CREATED,
        "name": zone,
        "description": zone,
        "status": "UP",
        "region": link(f"projects/{project}/regions/{region_of(zone)}"),
        "selfLink": link(f"projects/{project}/zones/{zone}"),
        "availableCpuPlatforms": CPU_PLATFORMS,
        "supportsPzs": False,
    }


def _region_doc(cloud: Cloud, project: str, region: str) -> dict[str, Any]:
    return {
        "kind": "compute#region",
        "id": stable_id("region", region),
        "creationTimestamp": CREATED,
        "name": region,
        "description": region,
        "status": "UP",
        "zones": [link(f"projects/{project}/zones/{region}-{s}") for s in REGIONS[region]],
        "quotas": cloud.quotas.report(cloud.quotas.region_usage(project, region)),
        "selfLink": link(f"projects/{project}/regions/{region}"),
        "supportsPzs": False,
    }


def machine_type_doc(project: str, zone: str, name: str) -> dict[str, Any]:
    m = MACHINE_TYPES[name]
    doc: dict[str, Any] = {
        "kind": "compute#machineType",
        "id": stable_id("machineType", name),
        "creationTimestamp": CREATED,
        "name": name,
        "description": m.description,
        "guestCpus": m.cpus,
        "memoryMb": m.memory_mb,
        "imageSpaceGb": 0,
        "maximumPersistentDisks": 128,
        "maximumPersistentDisksSizeGb": "263168",
        "zone": zone,
        "selfLink": link(f"projects/{project}/zones/{zone}/machineTypes/{name}"),
        "isSharedCpu": m.shared,
        "architecture": "X86_64",
    }
    return doc


def _list_zones(cloud: Cloud, req: Request) -> dict[str, Any]:
    docs = [zone_doc(req.project, z) for z in zones()]
    return list_response(req, "compute#zoneList", f"projects/{req.project}/zones", docs)


def _get_zone(cloud: Cloud, req: Request) -> dict[str, Any]:
    return zone_doc(req.project, check_zone(req.project, req.params["zone"]))


def _list_regions(cloud: Cloud, req: Request) -> dict[str, Any]:
    docs = [_region_doc(cloud, req.project, r) for r in REGIONS]
    return list_response(req, "compute#regionList", f"projects/{req.project}/regions", docs)


def _get_region(cloud: Cloud, req: Request) -> dict[str, Any]:
    return _region_doc(cloud, req.project, check_region(req.project, req.params["region"]))


def _list_machine_types(cloud: Cloud, req: Request) -> dict[str, Any]:
    zone = check_zone(req.project, req.params["zone"])
    docs = [machine_type_doc(req.project, zone, n) for n in MACHINE_TYPES]
    path = f"projects/{req.project}/zones/{zone}/machineTypes"
    return list_response(req, "compute#machineTypeList", path, docs)


def _get_machine_type(cloud: Cloud, req: Request) -> dict[str, Any]:
    zone = check_zone(req.project, req.params["zone"])
    name = req.params["machineType"]
    if name not in MACHINE_TYPES:
        raise not_found(f"projects/{req.project}/zones/{zone}/machineTypes/{name}")
    return machine_type_doc(req.project, zone, name)


P = "projects/{project}"
ROUTES = [
    Route("GET", P, "compute.projects.get", _get_project),
    Route(
        "POST",
        f"{P}/setCommonInstanceMetadata",
        "compute.projects.setCommonInstanceMetadata",
        _set_common_metadata,
    ),
    Route("GET", f"{P}/zones", "compute.zones.list", _list_zones),
    Route("GET", f"{P}/zones/{{zone}}", "compute.zones.get", _get_zone),
    Route("GET", f"{P}/regions", "compute.regions.list", _list_regions),
    Route("GET", f"{P}/regions/{{region}}", "compute.regions.get", _get_region),
    Route(
        "GET", f"{P}/zones/{{zone}}/machineTypes", "compute.machineTypes.list", _list_machine_types
    ),
    Route(
        "GET",
        f"{P}/zones/{{zone}}/machineTypes/{{machineType}}",
        "compute.machineTypes.get",
        _get_machine_type,
    ),
]
