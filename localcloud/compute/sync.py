"""Pushing the cloud's routes and firewalls to the machine backend.

The backend gets the complete desired set each time (it converges, it does not patch), under
one lock so that two operations finishing together cannot apply an older set last.
"""

from __future__ import annotations

import threading
from typing import Any

from localcloud.compute.context import Cloud
from localcloud.compute.links import relative

_lock = threading.Lock()


def route_pairs(cloud: Cloud) -> list[tuple[str, str]]:
    """``(destRange, next hop IP)`` for every route whose next hop resolves to an address."""
    store = cloud.store
    pairs: set[tuple[str, str]] = set()
    with store.lock:
        for project in store.projects():
            for route in store.list(project, "routes"):
                hop = route.get("nextHopIp")
                if not hop and route.get("nextHopInstance"):
                    parts = relative(route["nextHopInstance"]).split("/")
                    inst = store.peek(parts[1], "instances", f"zones/{parts[3]}", parts[5])
                    if inst and inst.get("networkInterfaces"):
                        hop = inst["networkInterfaces"][0].get("networkIP")
                if hop:
                    pairs.add((route["destRange"], hop))
    return sorted(pairs)


def push_routes(cloud: Cloud) -> None:
    with _lock:
        cloud.backend.sync_routes(route_pairs(cloud))


def all_firewalls(cloud: Cloud) -> list[dict[str, Any]]:
    store = cloud.store
    with store.lock:
        return [dict(fw) for p in store.projects() for fw in store.list(p, "firewalls")]


def push_firewalls(cloud: Cloud) -> None:
    with _lock:
        cloud.backend.sync_firewalls(all_firewalls(cloud))
