"""Compute Engine's two error contracts: HTTP error bodies and failed operations.

An :class:`ApiError` becomes ``{"error": {"code", "message", "errors": [{reason, domain,
message}]}}`` on the wire. An :class:`OperationFailed` ends an operation with ``error.errors[]``
plus ``httpErrorStatusCode``/``httpErrorMessage``: google-cloud-compute's
``ExtendedOperation.result()`` raises only when both of those are set.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any


class ApiError(Exception):
    """A request rejected synchronously, with GCE's reason code."""

    def __init__(self, status: int, reason: str, message: str, domain: str = "global") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.domain = domain

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "code": self.status,
                "message": self.message,
                "errors": [{"message": self.message, "domain": self.domain, "reason": self.reason}],
            }
        }


class OperationFailed(Exception):
    """An operation that ends in error (quota, conflict found late, injected fault...)."""

    def __init__(self, code: str, message: str, http_status: int) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status

    def fields(self) -> dict[str, Any]:
        """The Operation fields that carry this failure."""
        return {
            "error": {"errors": [{"code": self.code, "message": self.message}]},
            "httpErrorStatusCode": self.http_status,
            "httpErrorMessage": HTTPStatus(self.http_status).phrase.upper(),
        }


def not_found(link: str) -> ApiError:
    return ApiError(404, "notFound", f"The resource '{link}' was not found")


def already_exists(link: str) -> ApiError:
    return ApiError(409, "alreadyExists", f"The resource '{link}' already exists")


def invalid(message: str) -> ApiError:
    return ApiError(400, "invalid", message)


def required(field: str) -> ApiError:
    return ApiError(400, "required", f"Required field '{field}' not specified")


def bad_field(field: str, value: Any, why: str) -> ApiError:
    return invalid(f"Invalid value for field '{field}': '{value}'. {why}")


def in_use(link: str, user: str) -> ApiError:
    return ApiError(
        400,
        "resourceInUseByAnotherResource",
        f"The {link.split('/')[-2][:-1]} resource '{link}' is already being used by '{user}'",
    )


def condition_not_met(message: str) -> ApiError:
    return ApiError(412, "conditionNotMet", message)


def rate_limited() -> ApiError:
    return ApiError(429, "rateLimitExceeded", "Rate Limit Exceeded", domain="usageLimits")


def quota_exceeded(metric: str, limit: float, where: str) -> OperationFailed:
    return OperationFailed(
        "QUOTA_EXCEEDED", f"Quota '{metric}' exceeded.  Limit: {float(limit)} {where}.", 403
    )
