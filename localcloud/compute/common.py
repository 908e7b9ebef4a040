"""Small helpers every resource family shares: ids, timestamps, fingerprints, names, numbers."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from datetime import UTC, datetime
from typing import Any

from localcloud.errors import bad_field, required

_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


def now() -> str:
    """RFC 3339 with milliseconds and a UTC offset, as GCE prints creationTimestamp."""
    return datetime.now(UTC).astimezone().isoformat(timespec="milliseconds")


def new_id() -> str:
    """A random uint64 id, rendered as GCE does (a decimal string, 19 digits)."""
    return str(10**18 + secrets.randbelow(8 * 10**18))


def fingerprint(value: Any) -> str:
    """An opaque 8-byte base64 digest of ``value``: changes whenever the content changes."""
    digest = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).digest()
    return base64.b64encode(digest[:8]).decode()


def check_name(name: Any, field: str = "resource.name") -> str:
    if not name:
        raise required(field)
    if not isinstance(name, str) or not _NAME.match(name):
        raise bad_field(
            field, name, "Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'"
        )
    return name


def as_int(value: Any, field: str, default: int | None = None) -> int:
    """int64 fields arrive as strings (protobuf JSON) or numbers (hand-written JSON)."""
    if value is None or value == "":
        if default is None:
            raise required(field)
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise bad_field(field, value, "Must be an integer.") from None


def project_number(project: str) -> str:
    """A stable 12-digit project number derived from the project id."""
    digest = hashlib.sha256(f"project/{project}".encode()).digest()
    return str(10**11 + int.from_bytes(digest[:6], "big") % (9 * 10**11))


def service_account(project: str) -> str:
    return f"{project_number(project)}-compute@developer.gserviceaccount.com"
