"""From an ``Instance`` request body (or template properties) to stored records.

:func:`plan` validates a batch of instance specs (one for ``insert``, N for ``bulkInsert`` and
instance group managers) against the store without writing anything: names, machine type,
networks and addresses, disks, metadata, labels, tags, and the quota the batch needs.
:func:`commit` then writes the whole batch in one transaction. The caller holds the store lock
across both, so two concurrent requests cannot take the same name or address.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from localcloud.compute import crud, ipam, metadata_items
from localcloud.compute.addresses import address_ref
from localcloud.compute.catalog import CPU_PLATFORMS, MACHINE_TYPES, region_of
from localcloud.compute.common import check_name, fingerprint, new_id, now, service_account
from localcloud.compute.context import Cloud
from localcloud.compute.disks import disk_ref, new_disk, parse_disk
from localcloud.compute.links import Ref, link, parse, relative
from localcloud.compute.networks import find_subnet_for
from localcloud.errors import already_exists, bad_field, in_use, invalid, required

_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_TAG = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_SCHEDULING_KEYS = (
    "onHostMaintenance",
    "automaticRestart",
    "preemptible",
    "provisioningModel",
    "instanceTerminationAction",
)


def instance_ref(project: str, zone: str, name: str) -> Ref:
    return Ref(project, f"zones/{zone}", "instances", name)


@dataclass
class Plan:
    """What committing a batch of instances writes, and the quota it consumes."""

    project: str
    zone: str
    instances: list[dict[str, Any]] = field(default_factory=list)
    disks: list[dict[str, Any]] = field(default_factory=list)
    attach: list[tuple[Ref, str]] = field(default_factory=list)
    addresses: list[tuple[Ref, str]] = field(default_factory=list)
    want: dict[str, float] = field(default_factory=dict)
    used_ips: set[int] = field(default_factory=set)

    def add_want(self, metric: str, amount: float) -> None:
        self.want[metric] = self.want.get(metric, 0.0) + amount

    @property
    def names(self) -> list[str]:
        return [i["name"] for i in self.instances]


def labels(value: Any, field_name: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad_field(field_name, value, "Must be a map of strings.")
    for key, val in value.items():
        if not _LABEL_KEY.match(str(key)):
            raise bad_field(f"{field_name}.key", key, "Label keys must match [a-z][a-z0-9_-]*.")
        if not isinstance(val, str) or not _LABEL_VALUE.match(val):
            raise bad_field(f"{field_name}.value", val, "Label values must match [a-z0-9_-]*.")
    return dict(value)


def tags(items: Any, field_name: str) -> dict[str, Any]:
    items = list(items or [])
    for tag in items:
        if not isinstance(tag, str) or not _TAG.match(tag):
            raise bad_field(f"{field_name}.items", tag, "Tags must be lowercase RFC 1035 names.")
    out: dict[str, Any] = {"fingerprint": fingerprint(items)}
    if items:
        out["items"] = items
    return out


def plan(cloud: Cloud, project: str, zone: str, specs: list[tuple[str, dict[str, Any]]]) -> Plan:
    """Validate ``(name, Instance body)`` pairs; raises the first 4xx found."""
    out = Plan(project, zone, used_ips=ipam.taken(cloud.store))
    seen: set[str] = set()
    for name, spec in specs:
        check_name(name)
        if name in seen:
            raise invalid(f"Duplicate instance name '{name}' in request.")
        seen.add(name)
        ref = instance_ref(project, zone, name)
        crud.absent(cloud, ref)
        out.instances.append(_instance(cloud, out, ref, spec))
    return out


def commit(cloud: Cloud, p: Plan) -> None:
    """Write a validated plan in one transaction."""
    stamp = now()
    with cloud.store.batch():
        for disk in p.disks:
            crud.save(cloud, disk_ref(p.project, p.zone, disk["name"]), disk)
        for inst in p.instances:
            crud.save(cloud, instance_ref(p.project, p.zone, inst["name"]), inst)
        for ref, user in p.attach:
            disk = crud.require(cloud, ref)
            disk["users"] = [*disk.get("users", []), user]
            disk["lastAttachTimestamp"] = stamp
            crud.save(cloud, ref, disk)
        for ref, user in p.addresses:
            addr = crud.require(cloud, ref)
            addr.update(status="IN_USE", users=[user])
            crud.save(cloud, ref, addr)


def _machine_type(project: str, zone: str, value: Any) -> tuple[str, int]:
    if not value:
        raise required("resource.machineType")
    ref = parse(value, project, f"zones/{zone}", "machineTypes", "resource.machineType")
    if ref.scope != f"zones/{zone}" or ref.name not in MACHINE_TYPES:
        raise bad_field(
            "resource.machineType",
            value,
            f"Machine type with name '{ref.name}' does not exist in zone '{zone}'.",
        )
    return link(f"projects/{project}/zones/{zone}/machineTypes/{ref.name}"), MACHINE_TYPES[
        ref.name
    ].cpus


def _instance(cloud: Cloud, p: Plan, ref: Ref, spec: dict[str, Any]) -> dict[str, Any]:
    machine_link, cpus = _machine_type(p.project, p.zone, spec.get("machineType"))
    nics = spec.get("networkInterfaces") or []
    if not nics:
        raise required("resource.networkInterfaces")
    inst: dict[str, Any] = {
        "kind": "compute#instance",
        "id": new_id(),
        "creationTimestamp": now(),
        "name": ref.name,
        "machineType": machine_link,
        "status": "PROVISIONING",
        "zone": link(f"projects/{p.project}/zones/{p.zone}"),
        "canIpForward": bool(spec.get("canIpForward", False)),
        "cpuPlatform": CPU_PLATFORMS[0],
        "startRestricted": False,
        "deletionProtection": bool(spec.get("deletionProtection", False)),
        "selfLink": ref.link,
        "fingerprint": fingerprint([ref.name, new_id()]),
    }
    for key in ("description", "hostname", "minCpuPlatform"):
        if spec.get(key):
            inst[key] = spec[key]
    inst["networkInterfaces"] = [_nic(cloud, p, ref, nic, i) for i, nic in enumerate(nics)]
    inst["disks"] = _disks(cloud, p, ref, spec.get("disks") or [])
    meta = spec.get("metadata") or {}
    inst["metadata"] = metadata_items.build(meta.get("items"))
    inst["tags"] = tags((spec.get("tags") or {}).get("items"), "resource.tags")
    inst_labels = labels(spec.get("labels"), "resource.labels")
    if inst_labels:
        inst["labels"] = inst_labels
    inst["labelFingerprint"] = fingerprint(inst_labels)
    inst["serviceAccounts"] = [
        {
            "email": service_account(p.project)
            if sa.get("email") in (None, "", "default")
            else sa["email"],
            "scopes": list(sa.get("scopes") or []),
        }
        for sa in spec.get("serviceAccounts") or []
    ]
    if not inst["serviceAccounts"]:
        del inst["serviceAccounts"]
    scheduling = {
        "onHostMaintenance": "MIGRATE",
        "automaticRestart": True,
        "preemptible": False,
        "provisioningModel": "STANDARD",
    }
    scheduling.update(
        {k: v for k, v in (spec.get("scheduling") or {}).items() if k in _SCHEDULING_KEYS}
    )
    inst["scheduling"] = scheduling
    if spec.get("shieldedInstanceConfig"):
        inst["shieldedInstanceConfig"] = {
            k: bool(v)
            for k, v in spec["shieldedInstanceConfig"].items()
            if k in ("enableSecureBoot", "enableVtpm", "enableIntegrityMonitoring")
        }
    p.add_want("INSTANCES", 1)
    p.add_want("CPUS", cpus)
    return inst


def _nic(cloud: Cloud, p: Plan, ref: Ref, nic: dict[str, Any], index: int) -> dict[str, Any]:
    field_name = f"resource.networkInterfaces[{index}]"
    region = region_of(p.zone)
    subnet: dict[str, Any] | None = None
    if nic.get("subnetwork"):
        sref = parse(
            nic["subnetwork"],
            p.project,
            f"regions/{region}",
            "subnetworks",
            f"{field_name}.subnetwork",
        )
        if sref.scope != f"regions/{region}":
            raise bad_field(
                f"{field_name}.subnetwork",
                nic["subnetwork"],
                f"Subnetwork must be in region {region}.",
            )
        subnet = crud.require(cloud, sref)
        network = crud.require(
            cloud,
            parse(subnet["network"], p.project, "global", "networks", f"{field_name}.network"),
        )
    else:
        nref = parse(
            nic.get("network") or "global/networks/default",
            p.project,
            "global",
            "networks",
            f"{field_name}.network",
        )
        network = crud.require(cloud, nref)
        if not network.get("IPv4Range"):
            subnet = find_subnet_for(cloud, network, p.project, region)
            if subnet is None:
                raise invalid(f"Network '{nref.path}' has no subnetwork in region {region}.")
    cidr = subnet["ipCidrRange"] if subnet else network["IPv4Range"]
    out: dict[str, Any] = {
        "kind": "compute#networkInterface",
        "name": f"nic{index}",
        "network": network["selfLink"],
        "stackType": "IPV4_ONLY",
    }
    if subnet:
        out["subnetwork"] = subnet["selfLink"]
    statics = [
        _static_nat(cloud, p, ac.get("natIP"), field_name, ref.link)
        for ac in nic.get("accessConfigs") or []
    ]
    in_range = [s for s in statics if s and ipam.contains(cidr, s)]
    if nic.get("networkIP") and _reserved_internal(cloud, p, nic["networkIP"], ref.link):
        out["networkIP"] = nic["networkIP"]
    elif nic.get("networkIP"):
        out["networkIP"] = ipam.claim(p.used_ips, cidr, nic["networkIP"], f"{field_name}.networkIP")
    elif in_range:
        out["networkIP"] = in_range[0]  # reachable from this host at its "external" address
    else:
        out["networkIP"] = ipam.allocate(p.used_ips, cidr, relative(network["selfLink"]))
    configs = []
    for ac, static in zip(nic.get("accessConfigs") or [], statics, strict=True):
        configs.append(
            {
                "kind": "compute#accessConfig",
                "type": "ONE_TO_ONE_NAT",
                "name": ac.get("name") or "External NAT",
                "natIP": static or out["networkIP"],
                "networkTier": ac.get("networkTier") or "PREMIUM",
            }
        )
        if static is None:
            p.add_want("IN_USE_ADDRESSES", 1)
    if configs:
        out["accessConfigs"] = configs
    if nic.get("aliasIpRanges"):
        out["aliasIpRanges"] = [
            {k: r[k] for k in ("ipCidrRange", "subnetworkRangeName") if r.get(k)}
            for r in nic["aliasIpRanges"]
        ]
    out["fingerprint"] = fingerprint([out["networkIP"], index])
    return out


def _claim_static(cloud: Cloud, p: Plan, ip: str, kind: str, user: str) -> bool:
    """Take the region's reserved ``kind`` address ``ip`` for ``user`` (it then lists the
    instance as its user); False when no such address is reserved."""
    region = region_of(p.zone)
    for addr in cloud.store.list(p.project, "addresses", f"regions/{region}"):
        if addr.get("address") == ip and addr.get("addressType") == kind:
            aref = address_ref(p.project, f"regions/{region}", addr["name"])
            if addr.get("users") or any(r == aref for r, _ in p.addresses):
                raise in_use(aref.path, (addr.get("users") or ["another instance"])[0])
            p.addresses.append((aref, user))
            return True
    return False


def _reserved_internal(cloud: Cloud, p: Plan, ip: str, user: str) -> bool:
    """A requested ``networkIP`` may be a reserved INTERNAL address of the region, as on GCE."""
    return _claim_static(cloud, p, ip, "INTERNAL", user)


def _static_nat(cloud: Cloud, p: Plan, nat: Any, field_name: str, user: str) -> str | None:
    """A requested ``natIP`` must be a free static address of the region; marks it taken."""
    if not nat:
        return None
    if _claim_static(cloud, p, nat, "EXTERNAL", user):
        return nat
    raise bad_field(
        f"{field_name}.accessConfigs.natIP",
        nat,
        f"Not a reserved external address in region {region_of(p.zone)}.",
    )


def _disks(cloud: Cloud, p: Plan, ref: Ref, disks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not disks:
        raise required("resource.disks")
    has_boot = any(d.get("boot") for d in disks)
    out = []
    for index, spec in enumerate(disks):
        field_name = f"resource.disks[{index}]"
        boot = bool(spec.get("boot")) or (index == 0 and not has_boot)
        if spec.get("source"):
            dref = parse_disk(spec["source"], p.project, p.zone, f"{field_name}.source")
            disk = crud.require(cloud, dref)
            mode = spec.get("mode") or "READ_WRITE"
            if (disk.get("users") and mode == "READ_WRITE") or any(r == dref for r, _ in p.attach):
                raise in_use(dref.path, (disk.get("users") or ["another instance"])[0])
            p.attach.append((dref, ref.link))
        elif spec.get("initializeParams") is not None:
            params = spec["initializeParams"]
            name = params.get("diskName") or (ref.name if boot else f"{ref.name}-disk-{index}")
            dref = disk_ref(p.project, p.zone, name)
            if crud.find(cloud, dref) is not None or any(d["name"] == name for d in p.disks):
                raise already_exists(dref.path)
            disk = new_disk(p.project, p.zone, name, params, f"{field_name}.initializeParams")
            disk["users"] = [ref.link]
            disk["lastAttachTimestamp"] = now()
            p.disks.append(disk)
            p.add_want("DISKS_TOTAL_GB", int(disk["sizeGb"]))
            mode = spec.get("mode") or "READ_WRITE"
        else:
            raise invalid(f"{field_name} needs either 'source' or 'initializeParams'.")
        out.append(
            {
                "kind": "compute#attachedDisk",
                "type": "PERSISTENT",
                "mode": mode,
                "source": disk["selfLink"],
                "deviceName": spec.get("deviceName") or f"persistent-disk-{index}",
                "index": index,
                "boot": boot,
                "autoDelete": bool(spec.get("autoDelete", False)),
                "interface": spec.get("interface") or "SCSI",
                "diskSizeGb": disk["sizeGb"],
            }
        )
    return out
