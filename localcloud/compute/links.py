"""Resource links: stored with a placeholder base, served with the base URL the client called.

GCE answers with absolute ``selfLink`` URLs. The daemon may be reached under different host
names (127.0.0.1, a bridge address), so documents keep :data:`LINK` as base and the HTTP layer
swaps it for the caller's ``http://host:port/compute/v1/`` when serializing.
"""

from __future__ import annotations

from dataclasses import dataclass

from localcloud.errors import bad_field

LINK = "localcloud:/compute/v1/"
_API_MARKERS = ("/compute/v1/", "/compute/beta/", "/compute/alpha/")


@dataclass(frozen=True)
class Ref:
    """Where a resource lives: ``projects/<project>/<scope>/<collection>/<name>``."""

    project: str
    scope: str
    collection: str
    name: str

    @property
    def path(self) -> str:
        return f"projects/{self.project}/{self.scope}/{self.collection}/{self.name}"

    @property
    def link(self) -> str:
        return LINK + self.path


def link(path: str) -> str:
    """An absolute (placeholder-based) link for a ``projects/...`` path."""
    return LINK + path


def relative(value: str) -> str:
    """Strip any base (ours, googleapis.com, a caller's) down to ``projects/...`` or a suffix."""
    if value.startswith(LINK):
        return value[len(LINK) :]
    for marker in _API_MARKERS:
        at = value.find(marker)
        if at >= 0:
            return value[at + len(marker) :]
    return value.lstrip("/")


def parse(value: str, project: str, scope: str, collection: str, field: str) -> Ref:
    """Resolve a full URL, a partial path (``zones/z/machineTypes/t``) or a bare name.

    ``scope`` is the default when the value does not say (for bare names). A value pointing at
    another collection is a 400 naming ``field``.
    """
    parts = relative(value).split("/")
    if parts[0] == "projects" and len(parts) >= 2:
        project, parts = parts[1], parts[2:]
    if len(parts) == 1 and parts[0]:
        return Ref(project, scope, collection, parts[0])
    if len(parts) == 3 and parts[0] == "global" and parts[1] == collection:
        return Ref(project, "global", collection, parts[2])
    if len(parts) == 4 and parts[0] in ("zones", "regions") and parts[2] == collection:
        return Ref(project, f"{parts[0]}/{parts[1]}", collection, parts[3])
    raise bad_field(field, value, f"Expected a link to a {collection} resource.")
