"""The API front end: routing, per-method counters, rate limit, faults, errors, serialization.

Order per call: route -> count -> rate limit (429) -> fault decision -> handler -> JSON with
links rebased on the URL the caller used. ``/localcloud/v1/...`` goes to the admin API
instead, which is neither counted, limited nor faulted.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from localcloud.compute.context import Cloud, Request, Route
from localcloud.compute.links import LINK
from localcloud.compute.operations import scope_of
from localcloud.compute.projects import ensure_project
from localcloud.compute.router import Router, starts_operation
from localcloud.errors import ApiError, OperationFailed, not_found, rate_limited
from localcloud.faults import FaultSchedule
from localcloud.httpd import HttpRequest, HttpResponse
from localcloud.ratelimit import RateLimiter
from localcloud.stats import CallStats, Recorder

log = logging.getLogger(__name__)
API_PREFIX = "/compute/v1/"
ADMIN_PREFIX = "/localcloud/v1/"
MAX_REQUEST_IDS = 10000  # remembered requestIds (GCE keeps them for a limited time too)
JSON = {"Content-Type": "application/json; charset=UTF-8"}


class ComputeFront:
    """The HTTP application behind ``http://127.0.0.1:<port>``."""

    def __init__(
        self,
        cloud: Cloud,
        limiter: RateLimiter,
        faults: FaultSchedule,
        stats: CallStats,
        admin: Callable[[HttpRequest], HttpResponse],
        recorder: Recorder | None = None,
    ) -> None:
        self.cloud = cloud
        self.router = Router()
        self.limiter = limiter
        self.faults = faults
        self.stats = stats
        self.admin = admin
        self.recorder = recorder
        self._lock = threading.Lock()
        self._request_ids: OrderedDict[tuple[str, str], str] = OrderedDict()

    def __call__(self, http: HttpRequest) -> HttpResponse:
        if http.path.startswith(ADMIN_PREFIX):
            return self.admin(http)
        base = f"http://{http.headers.get('Host') or '127.0.0.1'}{API_PREFIX}"
        matched = None
        if http.path.startswith(API_PREFIX):
            matched = self.router.match(http.method, http.path[len(API_PREFIX) :])
        method_id = matched[0].method_id if matched else "unknown"
        try:
            if matched is None:
                raise not_found(http.path)
            status, body = 200, self._serve(matched[0], matched[1], http)
        except ApiError as err:
            status, body = err.status, err.body()
        except Exception as err:  # a bug: answer like GCE's backend would, keep the daemon up
            log.exception("%s %s failed", http.method, http.path)
            status, body = 500, ApiError(500, "backendError", f"Internal error: {err}").body()
        self.stats.count(method_id, status)
        text = json.dumps(body, separators=(",", ":")).replace(LINK, base)
        if self.recorder is not None:
            self.recorder.record(method_id, status, json.loads(text))
        return HttpResponse(status, text.encode(), JSON)

    def _serve(self, route: Route, params: dict[str, str], http: HttpRequest) -> dict[str, Any]:
        if not self.limiter.allow(http.client):
            raise rate_limited()
        req = Request(route.method_id, params, http.query, _json_body(http.body))
        decision = self.faults.decide(
            route.method_id, http.method, http.path, starts_operation(route)
        )
        if decision is not None:
            if decision.delay:
                time.sleep(decision.delay)
            if decision.error is not None:
                raise decision.error
            req.fault = decision.op
        ensure_project(self.cloud, req.project)
        request_id = http.query.get("requestId")
        if request_id:
            earlier = self._replay(req.project, request_id)
            if earlier is not None:
                return earlier
        try:
            body = route.handler(self.cloud, req)
        except OperationFailed as failure:
            body = self._failed_operation(route, req, http.path, failure)
        if request_id and body.get("kind") == "compute#operation":
            with self._lock:
                self._request_ids[(req.project, request_id)] = body["selfLink"]
                while len(self._request_ids) > MAX_REQUEST_IDS:
                    self._request_ids.popitem(last=False)
        return body

    def _failed_operation(
        self, route: Route, req: Request, path: str, failure: OperationFailed
    ) -> dict[str, Any]:
        """A check that GCE reports through the operation (quota) failed while handling the
        request: nothing was written; answer with an operation that ends in the error."""
        if not starts_operation(route):
            raise ApiError(failure.http_status, failure.code.lower(), failure.message)
        target = path[len(API_PREFIX) :]
        if route.method_id.endswith(".insert"):
            target += "/" + str(req.body.get("name", ""))
        elif not route.template.endswith("}"):
            target = target.rsplit("/", 1)[0]  # drop the verb: .../instances/x/setMetadata
        op_type = route.method_id.rsplit(".", 1)[1]
        return self.cloud.engine.fail(req, scope_of(req), op_type, LINK + target, failure)

    def _replay(self, project: str, request_id: str) -> dict[str, Any] | None:
        """GCE de-duplicates retried mutations by requestId: answer with the first operation."""
        with self._lock:
            link = self._request_ids.get((project, request_id))
        if link is None:
            return None
        _, _, scope_and_name = link.partition(f"projects/{project}/")
        scope, _, name = scope_and_name.rpartition("/operations/")
        return self.cloud.store.get(project, "operations", scope, name)


def _json_body(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise ApiError(400, "parseError", f"Parse Error: {err}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "parseError", "Request body must be a JSON object.")
    return body
