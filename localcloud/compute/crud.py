"""The find / exists / list patterns that every resource family repeats."""

from __future__ import annotations

from typing import Any

from localcloud.compute.context import Cloud, Request
from localcloud.compute.links import Ref
from localcloud.compute.listing import list_response
from localcloud.errors import already_exists, not_found


def find(cloud: Cloud, ref: Ref) -> dict[str, Any] | None:
    return cloud.store.get(ref.project, ref.collection, ref.scope, ref.name)


def require(cloud: Cloud, ref: Ref) -> dict[str, Any]:
    """The document at ``ref`` (a private copy), or a 404 naming it."""
    doc = find(cloud, ref)
    if doc is None:
        raise not_found(ref.path)
    return doc


def absent(cloud: Cloud, ref: Ref) -> None:
    """A 409 if ``ref`` already exists."""
    if cloud.store.peek(ref.project, ref.collection, ref.scope, ref.name) is not None:
        raise already_exists(ref.path)


def save(cloud: Cloud, ref: Ref, doc: dict[str, Any]) -> None:
    cloud.store.put(ref.project, ref.collection, ref.scope, ref.name, doc)


def remove(cloud: Cloud, ref: Ref) -> bool:
    return cloud.store.delete(ref.project, ref.collection, ref.scope, ref.name)


def list_scope(
    cloud: Cloud, req: Request, collection: str, scope: str, kind: str
) -> dict[str, Any]:
    """A ``<collection>.list`` answer for one scope; ``kind`` is e.g. ``compute#diskList``."""
    docs = cloud.store.list(req.project, collection, scope)
    return list_response(req, kind, f"projects/{req.project}/{scope}/{collection}", docs)
