"""The admin API at ``/localcloud/v1/``: not GCE, the knobs of this emulator.

GET    status            backend, pid, counts
GET    stats             calls and errors per API method;  DELETE resets them
GET    faults            schedule, per-rule counters, injected events
POST   faults            replace the schedule (body: the schedule);  DELETE clears it
GET    quotas            effective limits;  POST replaces the overrides ({"CPUS": 24})
GET    ratelimit         {"rate", "burst"};  POST sets them
GET    metadata-aliases  source address -> instance;  POST replaces them
GET    backend           what the simulated backend was told (subnets, routes, firewalls)
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from localcloud.backends.simulated import SimulatedBackend
from localcloud.compute.quotas import validate_limits
from localcloud.httpd import HttpRequest, HttpResponse

if TYPE_CHECKING:
    from localcloud.service import Service

PREFIX = "/localcloud/v1/"


class AdminApi:
    def __init__(self, service: Service) -> None:
        self.service = service
        self._routes: dict[tuple[str, str], Callable[[Any], Any]] = {
            ("GET", "status"): lambda _: self._status(),
            ("GET", "stats"): lambda _: service.stats.snapshot(),
            ("DELETE", "stats"): lambda _: (service.stats.reset(), service.stats.snapshot())[1],
            ("GET", "faults"): lambda _: service.faults.state(),
            ("POST", "faults"): lambda body: (service.faults.replace(body), service.faults.state())[
                1
            ],
            ("DELETE", "faults"): lambda _: (service.faults.replace({}), service.faults.state())[1],
            ("GET", "quotas"): lambda _: service.cloud.quotas.limits(),
            ("POST", "quotas"): lambda body: (
                service.cloud.quotas.replace(validate_limits(body)),
                service.cloud.quotas.limits(),
            )[1],
            ("GET", "ratelimit"): lambda _: service.limiter.settings(),
            ("POST", "ratelimit"): self._set_rate_limit,
            ("GET", "metadata-aliases"): lambda _: service.resolver.aliases(),
            ("POST", "metadata-aliases"): lambda body: (
                service.resolver.set_aliases(body),
                service.resolver.aliases(),
            )[1],
            ("GET", "backend"): lambda _: self._backend(),
        }

    def __call__(self, http: HttpRequest) -> HttpResponse:
        handler = self._routes.get((http.method, http.path[len(PREFIX) :].strip("/")))
        if handler is None:
            return _json(404, {"error": f"no admin endpoint {http.method} {http.path}"})
        try:
            body = json.loads(http.body) if http.body.strip() else {}
            return _json(200, handler(body))
        except (ValueError, TypeError) as err:
            return _json(400, {"error": str(err)})

    def _status(self) -> dict[str, Any]:
        store = self.service.cloud.store
        with store.lock:
            counts = {
                p: {c: len(store.list(p, c)) for c in ("instances", "disks", "operations")}
                for p in store.projects()
            }
        return {
            "pid": os.getpid(),
            "backend": self.service.cloud.backend.name,
            "endpoints": self.service.endpoints(),
            "projects": counts,
        }

    def _set_rate_limit(self, body: dict[str, Any]) -> dict[str, Any]:
        limiter = self.service.limiter
        limiter.configure(body.get("rate", limiter.rate), body.get("burst", limiter.burst))
        return limiter.settings()

    def _backend(self) -> dict[str, Any]:
        backend = self.service.cloud.backend
        if isinstance(backend, SimulatedBackend):
            return backend.describe()
        return {"backend": backend.name}


def _json(status: int, body: Any) -> HttpResponse:
    return HttpResponse(status, json.dumps(body).encode(), {"Content-Type": "application/json"})
