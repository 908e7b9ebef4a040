"""Talking to a cluster's apiserver over verified TLS: polling it up, and validating the cluster.

Requests go to nginx on the master (https://MASTER:443), authenticated with the admin password
(basic auth), and TLS is checked against the cluster's own CA — never skipped.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import time
from dataclasses import dataclass
from typing import Any

from cluster.errors import ClusterTimeout, ValidationFailed

REQUEST_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class ApiServer:
    """An apiserver endpoint and how to authenticate to it."""

    host: str
    ca_pem: bytes
    user: str
    password: str
    port: int = 443

    @property
    def url(self) -> str:
        return f"https://{self.host}" + ("" if self.port == 443 else f":{self.port}")

    def _context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cadata=self.ca_pem.decode())
        context.check_hostname = True
        return context

    def get(self, path: str) -> tuple[int, bytes]:
        """One GET; connection problems raise OSError (the caller decides whether to retry)."""
        conn = http.client.HTTPSConnection(
            self.host, self.port, context=self._context(), timeout=REQUEST_TIMEOUT_S
        )
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        try:
            conn.request("GET", path, headers={"Authorization": f"Basic {token}"})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def get_json(self, path: str) -> Any:
        status, body = self.get(path)
        if status != 200:
            raise ValidationFailed(f"GET {self.url}{path} answered HTTP {status}")
        return json.loads(body)


def wait_until_answering(api: ApiServer, *, interval: float, timeout: float, hint: str) -> None:
    """Poll ``/healthz`` every ``interval`` seconds until it says ok."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while True:
        try:
            status, body = api.get("/healthz")
            if status == 200 and body.strip() == b"ok":
                return
            last = f"HTTP {status}"
        except ssl.SSLCertVerificationError as exc:
            raise ValidationFailed(
                f"{api.url} presented a certificate the cluster CA does not sign ({exc.reason})",
                fix="someone else answers at that address; check the master's IP",
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            last = type(exc).__name__
        if time.monotonic() > deadline:
            raise ClusterTimeout(
                f"the apiserver at {api.url} did not answer within {timeout:g}s (last: {last})",
                fix=hint,
            )
        time.sleep(interval)


def ready_nodes(api: ApiServer) -> tuple[list[str], list[str]]:
    """Names of the Ready nodes and of the others."""
    ready, not_ready = [], []
    for node in api.get_json("/api/v1/nodes").get("items", []):
        conditions = node.get("status", {}).get("conditions", [])
        is_ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
        (ready if is_ready else not_ready).append(node["metadata"]["name"])
    return ready, not_ready


def unhealthy_components(api: ApiServer) -> list[str]:
    """Control-plane checks that fail: the apiserver's own readiness checks (etcd among them)
    and the component statuses of the scheduler and controller manager."""
    failing = []
    status, body = api.get("/readyz?verbose")
    if status != 200:
        failing += [line for line in body.decode(errors="replace").splitlines() if "failed" in line]
        failing = failing or [f"readyz answered HTTP {status}"]
    statuses = api.get_json("/api/v1/componentstatuses").get("items", [])
    for item in statuses:
        healthy = any(
            c.get("type") == "Healthy" and c.get("status") == "True"
            for c in item.get("conditions", [])
        )
        if not healthy:
            failing.append(item["metadata"]["name"])
    return failing


def validate(api: ApiServer, expected_nodes: int, *, interval: float, timeout: float) -> list[str]:
    """Wait until ``expected_nodes`` nodes are Ready and the control plane is healthy."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            ready, not_ready = ready_nodes(api)
            failing = unhealthy_components(api)
            if len(ready) >= expected_nodes and not failing:
                return sorted(ready)
            problem = (
                f"{len(ready)} of {expected_nodes} nodes Ready"
                + (f" (not ready: {', '.join(sorted(not_ready))})" if not_ready else "")
                + (f"; unhealthy: {', '.join(failing)}" if failing else "")
            )
        except (OSError, http.client.HTTPException, ValidationFailed, ValueError) as exc:
            problem = str(exc) or type(exc).__name__
        if time.monotonic() > deadline:
            raise ValidationFailed(
                f"cluster not valid after {timeout:g}s: {problem}",
                fix="read the nodes' boot logs (serial port) and re-run validate-cluster",
            )
        time.sleep(interval)
