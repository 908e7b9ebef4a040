"""Instance and project metadata (``Metadata`` resources) and their fingerprints."""

from __future__ import annotations

import re
from typing import Any

from localcloud.compute.common import fingerprint
from localcloud.errors import OperationFailed, bad_field, condition_not_met, invalid

_KEY = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
MAX_VALUE_BYTES = 256 * 1024
MAX_TOTAL_BYTES = 512 * 1024


def build(items: Any, field: str = "resource.metadata") -> dict[str, Any]:
    """A ``compute#metadata`` with validated items and a fresh fingerprint."""
    if items is None:
        items = []
    if not isinstance(items, list):
        raise bad_field(f"{field}.items", items, "Must be a list.")
    seen: set[str] = set()
    clean: list[dict[str, str]] = []
    total = 0
    for item in items:
        key = item.get("key") if isinstance(item, dict) else None
        if not isinstance(key, str) or not _KEY.match(key):
            raise bad_field(f"{field}.items.key", key, "Must match [a-zA-Z0-9_-]{1,128}.")
        if key in seen:
            raise invalid(f"Metadata has duplicate keys: '{key}'.")
        seen.add(key)
        value = item.get("value", "")
        if not isinstance(value, str):
            raise bad_field(f"{field}.items.value", value, "Must be a string.")
        size = len(value.encode())
        if size > MAX_VALUE_BYTES:
            raise invalid(f"Value for metadata key '{key}' is larger than 256 KB.")
        total += size + len(key)
        clean.append({"key": key, "value": value})
    if total > MAX_TOTAL_BYTES:
        raise invalid("Metadata is larger than the 512 KB limit.")
    out: dict[str, Any] = {"kind": "compute#metadata", "fingerprint": fingerprint(clean)}
    if clean:
        out["items"] = clean
    return out


def check_fingerprint(current: dict[str, Any], supplied: Any, what: str) -> None:
    """412 conditionNotMet unless ``supplied`` is the current fingerprint."""
    if supplied != current.get("fingerprint"):
        raise condition_not_met(f"Supplied fingerprint does not match current {what} fingerprint.")


def recheck_fingerprint(current: dict[str, Any], supplied: Any) -> None:
    """At apply time: another change won the race since the request was accepted."""
    if supplied != current.get("fingerprint"):
        raise OperationFailed(
            "CONDITION_NOT_MET", "Supplied fingerprint does not match current fingerprint.", 412
        )


def as_dict(metadata: dict[str, Any] | None) -> dict[str, str]:
    return {i["key"]: i["value"] for i in (metadata or {}).get("items", [])}
