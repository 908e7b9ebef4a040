"""Every Compute call goes through here: retries for what is worth retrying, and one-line errors.

GCE answers overload with 429 and 5xx (retried with backoff); everything else is the caller's
to act on, so it becomes a :class:`CloudError` naming the resource, GCE's reason and a fix.
Failed operations raise from ``ExtendedOperation.result()`` with the same HTTP-shaped
exceptions, so one mapping serves both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from google.api_core import exceptions as gexc

from cluster.errors import CloudError
from cluster.retry import Backoff, retry

T = TypeVar("T")

RETRYABLE = (
    gexc.TooManyRequests,
    gexc.InternalServerError,
    gexc.BadGateway,
    gexc.ServiceUnavailable,
    gexc.GatewayTimeout,
)
API_BACKOFF = Backoff(initial=0.5, maximum=10.0, deadline=120.0)

_QUOTA_FIX = (
    "raise the quota in the cloud console, or ask for fewer or smaller VMs (NUM_NODES, NODE_SIZE)"
)
_FIXES = {
    "QUOTA_EXCEEDED": _QUOTA_FIX,
    "quotaExceeded": _QUOTA_FIX,
    "forbidden": "grant the credentials the Compute Admin role on the project",
    "notFound": "check PROJECT and ZONE, or re-run kube-up to recreate what is missing",
    "invalid": "check the settings this resource is made from",
}


def _reason(exc: gexc.GoogleAPICallError) -> str:
    for error in exc.errors or []:
        reason = error.get("reason") if isinstance(error, dict) else getattr(error, "code", None)
        if reason:
            return str(reason)
    return type(exc).__name__


def cloud_error(exc: gexc.GoogleAPICallError, resource: str) -> CloudError:
    """A one-line error for a refused or failed Compute request."""
    reason = _reason(exc)
    if isinstance(exc, gexc.Forbidden) and reason in ("QUOTA_EXCEEDED", "quotaExceeded"):
        fix = _FIXES["QUOTA_EXCEEDED"]
    elif isinstance(exc, gexc.Forbidden):
        fix = _FIXES["forbidden"]
    else:
        fix = _FIXES.get(reason) or _FIXES.get(
            {gexc.NotFound: "notFound", gexc.BadRequest: "invalid"}.get(type(exc), ""), ""
        )
    message = exc.message or str(exc)
    return CloudError(f"{reason}: {message}", resource=resource, fix=fix or None)


def _run(fn: Callable[[], T], resource: str, tolerated: type[Exception] | None) -> T | None:
    try:
        return retry(fn, retryable=RETRYABLE, backoff=API_BACKOFF)
    except gexc.GoogleAPICallError as exc:
        if tolerated is not None and isinstance(exc, tolerated):
            return None
        raise cloud_error(exc, resource) from None


Waiter = Callable[[Any], None]


def _and_wait(fn: Callable[[], object], wait: Waiter) -> Callable[[], None]:
    def run() -> None:
        wait(fn())

    return run


def operation_exception(operation: Any) -> gexc.GoogleAPICallError | None:
    """The HTTP-shaped error a finished operation ended with, or None if it succeeded."""
    errors = [{"reason": e.code, "message": e.message} for e in operation.error.errors]
    if not errors and not operation.http_error_status_code:
        return None
    # GCE's httpErrorMessage is only the status text ("FORBIDDEN"); the error says which
    # quota ran out, which field is invalid...
    message = (errors[0]["message"] if errors else "") or operation.http_error_message or "failed"
    return gexc.from_http_status(operation.http_error_status_code or 500, message, errors=errors)


def call(fn: Callable[[], T], resource: str) -> T:
    """Run one API request, retrying overload; map any other API error to a CloudError."""
    return _run(fn, resource, None)  # type: ignore[return-value]


def find(fn: Callable[[], T], resource: str) -> T | None:
    """A get that answers None for a resource that does not exist."""
    return _run(fn, resource, gexc.NotFound)


def create(fn: Callable[[], object], resource: str, wait: Waiter) -> None:
    """Insert a resource and wait for its operation; one that already exists is adopted."""
    _run(_and_wait(fn, wait), resource, gexc.Conflict)


def delete(fn: Callable[[], object], resource: str, wait: Waiter) -> None:
    """Delete a resource and wait; one already gone is fine (kube-down is idempotent)."""
    _run(_and_wait(fn, wait), resource, gexc.NotFound)
