"""Maps ``(verb, path)`` to the API method that serves it."""

from __future__ import annotations

import re

from localcloud.compute import (
    addresses,
    disks,
    firewalls,
    groups,
    instances,
    networks,
    operations,
    projects,
    routes,
)
from localcloud.compute.context import Route

ALL_ROUTES: list[Route] = [
    *projects.ROUTES,
    *networks.ROUTES,
    *firewalls.ROUTES,
    *routes.ROUTES,
    *addresses.ROUTES,
    *disks.ROUTES,
    *instances.ROUTES,
    *groups.ROUTES,
    *operations.ROUTES,
]

# Calls that answer with something other than an Operation, although they are not GETs.
_NO_OPERATION = (".wait", ".listManagedInstances", "Operations.delete")


def starts_operation(route: Route) -> bool:
    return route.http_method != "GET" and not route.method_id.endswith(_NO_OPERATION)


class Router:
    """Matches paths (after ``/compute/v1/``) against discovery-style templates."""

    def __init__(self, table: list[Route] = ALL_ROUTES) -> None:
        self._table: dict[tuple[str, int], list[tuple[re.Pattern[str], Route]]] = {}
        for route in table:
            pattern = re.compile(
                "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(route.template)) + "$"
            )
            key = (route.http_method, route.template.count("/"))
            self._table.setdefault(key, []).append((pattern, route))

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for pattern, route in self._table.get((method, path.count("/")), []):
            m = pattern.match(path)
            if m:
                return route, m.groupdict()
        return None
