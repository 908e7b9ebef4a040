"""The GCE metadata server (``/computeMetadata/v1/``), answering instances by source address.

Protocol points kept from GCE: the ``Metadata-Flavor: Google`` request header is required
(403 without it, and with ``X-Forwarded-For``); directories list their children, one per line,
``/`` marking subdirectories, and redirect when asked without the trailing slash; path
segments are hyphenated (``network-interfaces``) while ``?recursive=true`` JSON uses camelCase;
``?alt=json`` JSON-encodes a leaf; ``?wait_for_change=true`` blocks until the value's ETag
differs from ``last_etag`` (or from the value at the time of the call) or ``timeout_sec``
passes; ``PUT instance/guest-attributes/NS/KEY`` stores a guest attribute, which requires
the metadata ``enable-guest-attributes=TRUE`` on the instance or project, as in GCE.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from localcloud.compute.common import project_number
from localcloud.compute.links import relative
from localcloud.compute.metadata_items import as_dict
from localcloud.httpd import HttpRequest, HttpResponse
from localcloud.store import Store

# source address -> (project, zone, instance name), or None for an unknown caller
Resolver = Callable[[str], tuple[str, str, str] | None]

MAX_WAIT_SECONDS = 600.0
_LITERAL_PARENTS = {"attributes", "guestAttributes", "serviceAccounts"}
_GUEST_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MISSING = object()


def _camel(segment: str) -> str:
    return re.sub(r"-([a-z0-9])", lambda m: m.group(1).upper(), segment)


def _hyphen(key: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "-" + m.group(1).lower(), key)


class InstanceResolver:
    """Finds the instance whose internal IP is the caller's address, or an alias for it.

    Aliases let callers that cannot own an instance's IP (tests on loopback, the simulated
    backend) speak for an instance: ``{"127.0.0.2": "projects/p/zones/z/instances/vm-1"}``.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._aliases: dict[str, tuple[str, str, str]] = {}

    def set_aliases(self, aliases: dict[str, str]) -> None:
        parsed = {}
        for ip, path in aliases.items():
            ipaddress.ip_address(ip)
            parts = relative(path).split("/")
            if len(parts) != 6 or parts[0] != "projects" or parts[4] != "instances":
                raise ValueError(f"alias for {ip}: expected projects/P/zones/Z/instances/N")
            parsed[ip] = (parts[1], parts[3], parts[5])
        with self._lock:
            self._aliases = parsed

    def aliases(self) -> dict[str, str]:
        with self._lock:
            return {
                ip: f"projects/{p}/zones/{z}/instances/{n}"
                for ip, (p, z, n) in self._aliases.items()
            }

    def __call__(self, ip: str) -> tuple[str, str, str] | None:
        with self._lock:
            if ip in self._aliases:
                return self._aliases[ip]
        with self.store.lock:
            for project in self.store.projects():
                for inst in self.store.list(project, "instances"):
                    if any(n.get("networkIP") == ip for n in inst.get("networkInterfaces", [])):
                        return project, inst["zone"].rsplit("/", 1)[-1], inst["name"]
        return None


class MetadataService:
    """The HTTP application; ``resolver`` maps the caller's address to its instance."""

    def __init__(self, store: Store, resolver: Resolver) -> None:
        self.store = store
        self.resolver = resolver

    def __call__(self, http: HttpRequest) -> HttpResponse:
        if http.headers.get("X-Forwarded-For"):
            return _text(403, "Requests with X-Forwarded-For are refused.\n")
        if http.path in ("/", "/computeMetadata", "/computeMetadata/"):
            return _text(200, "computeMetadata/\n" if http.path == "/" else "v1/\n")
        if not http.path.startswith("/computeMetadata/v1"):
            return _text(404, "Not Found\n")
        if http.headers.get("Metadata-Flavor") != "Google":
            return _text(403, "Missing Metadata-Flavor:Google header.\n")
        who = self.resolver(http.client)
        if who is None:
            return _text(404, f"No instance has address {http.client}.\n")
        path = http.path[len("/computeMetadata/v1") :].lstrip("/")
        if http.method == "PUT":
            return self._put_guest_attribute(who, path, http.body)
        if http.method not in ("GET", "HEAD"):
            return _text(405, "Method Not Allowed\n")
        if http.query.get("wait_for_change", "").lower() == "true":
            return self._wait(who, http, path)
        return self._render(who, http, path)

    def _tree(self, who: tuple[str, str, str]) -> dict[str, Any] | None:
        project, zone, name = who
        inst = self.store.peek(project, "instances", f"zones/{zone}", name)
        if inst is None:
            return None
        proj = self.store.peek(project, "projects", "global", project) or {}
        guest = self.store.peek(project, "guestAttributes", f"zones/{zone}", name) or {}
        return {
            "instance": _instance_tree(self.store, project, zone, inst, guest.get("entries", {})),
            "project": {
                "attributes": as_dict(proj.get("commonInstanceMetadata")),
                "numericProjectId": int(project_number(project)),
                "projectId": project,
            },
        }

    def _render(self, who: tuple[str, str, str], http: HttpRequest, path: str) -> HttpResponse:
        with self.store.lock:
            tree = self._tree(who)
        if tree is None:
            return _text(404, "The instance of this address is gone.\n")
        segments = [s for s in path.split("/") if s]
        node, literal = _walk(tree, segments)
        if node is _MISSING:
            return _text(404, "Not Found\n")
        recursive = http.query.get("recursive", "").lower() == "true"
        alt = http.query.get("alt", "json" if recursive else "text")
        is_dir = _is_dir(node)
        if is_dir and not recursive and path and not path.endswith("/"):
            return HttpResponse(
                301, b"", {"Location": http.path + "/", "Metadata-Flavor": "Google"}
            )
        if alt == "json":
            body, ctype = json.dumps(node, separators=(",", ":")), "application/json"
        elif is_dir and recursive:
            body, ctype = "".join(f"{k} {v}\n" for k, v in _flatten(node, literal, "")), "text"
        elif is_dir:
            body, ctype = _listing(node, literal), "application/text"
        else:
            body, ctype = _leaf_text(node), "application/text"
        etag = hashlib.sha256(body.encode()).hexdigest()[:16]
        return HttpResponse(
            200,
            body.encode(),
            {
                "Metadata-Flavor": "Google",
                "Content-Type": ctype,
                "ETag": etag,
                "Server": "Metadata Server for VM",
            },
        )

    def _wait(self, who: tuple[str, str, str], http: HttpRequest, path: str) -> HttpResponse:
        try:
            timeout = min(
                float(http.query.get("timeout_sec") or MAX_WAIT_SECONDS), MAX_WAIT_SECONDS
            )
        except ValueError:
            return _text(400, "timeout_sec must be a number of seconds\n")
        deadline = time.monotonic() + timeout
        with self.store.lock:
            first = self._render(who, http, path)
            baseline = http.query.get("last_etag") or first.headers.get("ETag")
            current = first
            while current.status == 200 and current.headers.get("ETag") == baseline:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.store.changed.wait(remaining)
                current = self._render(who, http, path)
            return current

    def _put_guest_attribute(
        self, who: tuple[str, str, str], path: str, body: bytes
    ) -> HttpResponse:
        parts = path.split("/")
        if len(parts) != 4 or parts[:2] != ["instance", "guest-attributes"]:
            return _text(404, "Guest attributes live at instance/guest-attributes/NS/KEY.\n")
        namespace, key = parts[2], parts[3]
        if not (_GUEST_NAME.match(namespace) and _GUEST_NAME.match(key)):
            return _text(400, "Namespace and key must match [A-Za-z0-9_-]{1,64}.\n")
        project, zone, name = who
        with self.store.lock:
            inst = self.store.peek(project, "instances", f"zones/{zone}", name)
            if inst is None:
                return _text(404, "The instance of this address is gone.\n")
            proj = self.store.peek(project, "projects", "global", project) or {}
            enabled = {
                **as_dict(proj.get("commonInstanceMetadata")),
                **as_dict(inst.get("metadata")),
            }.get("enable-guest-attributes", "")
            if enabled.upper() != "TRUE":
                return _text(
                    403,
                    "Guest attributes are disabled for this instance: set "
                    "metadata enable-guest-attributes=TRUE.\n",
                )
            doc = self.store.get(project, "guestAttributes", f"zones/{zone}", name) or {}
            entries = doc.setdefault("entries", {})
            entries[f"{namespace}/{key}"] = body.decode("utf-8", "replace")
            self.store.put(project, "guestAttributes", f"zones/{zone}", name, doc)
        return HttpResponse(200, b"", {"Metadata-Flavor": "Google"})


def _text(status: int, body: str) -> HttpResponse:
    return HttpResponse(
        status, body.encode(), {"Metadata-Flavor": "Google", "Content-Type": "text/plain"}
    )


def _walk(node: Any, segments: list[str]) -> tuple[Any, bool]:
    literal = False
    for seg in segments:
        if isinstance(node, list):
            if not seg.isdigit() or int(seg) >= len(node):
                return _MISSING, False
            node = node[int(seg)]
        elif isinstance(node, dict):
            key = seg if literal else _camel(seg)
            if key not in node:
                return _MISSING, False
            literal = literal or key in _LITERAL_PARENTS
            node = node[key]
        else:
            return _MISSING, False
    return node, literal


def _listing(node: dict[str, Any] | list[Any], literal: bool) -> str:
    if isinstance(node, list):
        items = [(str(i), v) for i, v in enumerate(node)]
    else:
        items = [(k if literal else _hyphen(k), v) for k, v in node.items()]
    return "".join(f"{k}/\n" if _is_dir(v) else f"{k}\n" for k, v in items)


def _is_dir(value: Any) -> bool:
    """Mappings and lists of structures are directories; a list of strings (tags) is a leaf."""
    if isinstance(value, list):
        return any(isinstance(v, dict | list) for v in value)
    return isinstance(value, dict)


def _leaf_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _flatten(node: Any, literal: bool, prefix: str) -> list[tuple[str, str]]:
    if isinstance(node, dict):
        out = []
        for k, v in node.items():
            name = k if literal else _hyphen(k)
            out += _flatten(v, literal or k in _LITERAL_PARENTS, f"{prefix}{name}/")
        return out
    if isinstance(node, list) and _is_dir(node):
        return [kv for i, v in enumerate(node) for kv in _flatten(v, literal, f"{prefix}{i}/")]
    return [(prefix.rstrip("/"), _leaf_text(node))]


def _interface(store: Store, project: str, number: str, nic: dict[str, Any]) -> dict[str, Any]:
    parts = relative(nic["network"]).split("/")
    net_doc = store.peek(parts[1], "networks", "global", parts[-1]) or {}
    cidr = net_doc.get("IPv4Range")
    if nic.get("subnetwork"):
        sp = relative(nic["subnetwork"]).split("/")
        cidr = (store.peek(sp[1], "subnetworks", f"regions/{sp[3]}", sp[5]) or {}).get(
            "ipCidrRange", cidr
        )
    net = ipaddress.IPv4Network(cidr or f"{nic['networkIP']}/32")
    ip = ipaddress.IPv4Address(nic["networkIP"])
    gateway = str(net.network_address + 1)
    return {
        "accessConfigs": [
            {"externalIp": ac.get("natIP", ""), "type": ac.get("type", "")}
            for ac in nic.get("accessConfigs", [])
        ],
        "dnsServers": [gateway],
        "forwardedIps": [],
        "gateway": gateway,
        "ip": str(ip),
        "ipAliases": [r["ipCidrRange"] for r in nic.get("aliasIpRanges", [])],
        "mac": "42:01:" + ":".join(f"{b:02x}" for b in ip.packed),
        "mtu": 1460,
        "network": f"projects/{number}/networks/{parts[-1]}",
        "subnetmask": str(net.netmask),
        "targetInstanceIps": [],
    }


def _instance_tree(
    store: Store, project: str, zone: str, inst: dict[str, Any], guest: dict[str, str]
) -> dict[str, Any]:
    number = project_number(project)
    guest_tree: dict[str, dict[str, str]] = {}
    for full_key, value in guest.items():
        namespace, key = full_key.split("/", 1)
        guest_tree.setdefault(namespace, {})[key] = value
    boot = next((d for d in inst["disks"] if d.get("boot")), None)
    image = ""
    if boot:
        dp = relative(boot["source"]).split("/")
        image = relative(
            (store.peek(dp[1], "disks", f"zones/{dp[3]}", dp[5]) or {}).get("sourceImage", "")
        )
    accounts = {}
    for sa in inst.get("serviceAccounts", []):
        entry = {"aliases": ["default"], "email": sa["email"], "scopes": sa.get("scopes", [])}
        accounts[sa["email"]] = entry
        accounts.setdefault("default", entry)
    sched = inst.get("scheduling", {})
    return {
        "attributes": as_dict(inst.get("metadata")),
        "cpuPlatform": inst.get("cpuPlatform", ""),
        "description": inst.get("description", ""),
        "disks": [
            {
                "deviceName": d["deviceName"],
                "index": d["index"],
                "interface": d.get("interface", "SCSI"),
                "mode": d["mode"],
                "type": "PERSISTENT",
            }
            for d in inst["disks"]
        ],
        "guestAttributes": guest_tree,
        "hostname": inst.get("hostname") or f"{inst['name']}.{zone}.c.{project}.internal",
        "id": int(inst["id"]),
        "image": image,
        "licenses": [],
        "machineType": f"projects/{number}/machineTypes/{inst['machineType'].rsplit('/', 1)[-1]}",
        "maintenanceEvent": "NONE",
        "name": inst["name"],
        "networkInterfaces": [
            _interface(store, project, number, n) for n in inst["networkInterfaces"]
        ],
        "preempted": "FALSE",
        "scheduling": {
            "automaticRestart": "TRUE" if sched.get("automaticRestart", True) else "FALSE",
            "onHostMaintenance": sched.get("onHostMaintenance", "MIGRATE"),
            "preemptible": "TRUE" if sched.get("preemptible") else "FALSE",
        },
        "serviceAccounts": accounts,
        "tags": inst.get("tags", {}).get("items", []),
        "virtualClock": {"driftToken": "0"},
        "zone": f"projects/{number}/zones/{zone}",
    }
