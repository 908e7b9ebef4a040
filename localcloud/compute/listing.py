"""``*.list`` responses: filter, orderBy, maxResults and pageToken, the way GCE pages.

Page tokens are opaque to clients; here they carry the offset into the filtered, ordered
result. Like GCE's, they are only meaningful for the same filter and order.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

from localcloud.compute.context import Request
from localcloud.compute.filters import compile_filter, values_at
from localcloud.compute.links import link
from localcloud.errors import bad_field, invalid

MAX_RESULTS = 500


def _order(docs: list[dict[str, Any]], order_by: str | None) -> list[dict[str, Any]]:
    field, _, direction = (order_by or "name").strip().partition(" ")
    if direction.strip() not in ("", "asc", "desc"):
        raise invalid(f"Invalid value for orderBy: '{order_by}'.")

    def key(doc: dict[str, Any]) -> tuple[str, str]:
        found = values_at(doc, field.split("."))
        return (str(found[0]) if found else "", doc.get("name", ""))

    return sorted(docs, key=key, reverse=direction.strip() == "desc")


def page(req: Request, docs: Iterable[dict[str, Any]], items_key: str = "items") -> dict[str, Any]:
    """Filter, order and cut ``docs``; returns ``{items_key: [...], nextPageToken?}``."""
    keep = compile_filter(req.query.get("filter"))
    selected = _order([d for d in docs if keep(d)], req.query.get("orderBy"))
    raw_max = req.query.get("maxResults")
    size = MAX_RESULTS if raw_max in (None, "") else _int(raw_max, "maxResults")
    if not 0 <= size <= MAX_RESULTS:
        raise bad_field("maxResults", raw_max, f"Must be between 0 and {MAX_RESULTS}.")
    size = size or MAX_RESULTS
    start = _offset(req.query.get("pageToken"))
    out: dict[str, Any] = {}
    chunk = selected[start : start + size]
    if chunk:
        out[items_key] = chunk
    if start + size < len(selected):
        out["nextPageToken"] = base64.urlsafe_b64encode(f"o:{start + size}".encode()).decode()
    return out


def list_response(
    req: Request, kind: str, path: str, docs: Iterable[dict[str, Any]]
) -> dict[str, Any]:
    """A ``compute#<x>List`` for ``docs`` under ``projects/.../<collection>``."""
    return {"kind": kind, "id": path, **page(req, docs), "selfLink": link(path)}


def _int(value: str, field: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise bad_field(field, value, "Must be an integer.") from None


def _offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        kind, _, number = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if kind == "o" and number.isdigit():
            return int(number)
    except (ValueError, UnicodeDecodeError):
        pass
    raise bad_field("pageToken", token, "Invalid page token.")
