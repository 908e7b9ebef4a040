"""What a request handler or an operation task acts on: the cloud's shared state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from localcloud.backends.base import MachineBackend
from localcloud.store import Store

if TYPE_CHECKING:
    from localcloud.compute.operations import OperationEngine
    from localcloud.compute.quotas import Quotas
    from localcloud.faults import OpFault


@dataclass
class Request:
    """One parsed API call: path variables, query parameters, JSON body."""

    method_id: str
    params: dict[str, str]
    query: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)
    fault: OpFault | None = None

    @property
    def project(self) -> str:
        return self.params["project"]


@dataclass
class Cloud:
    """The store, the machine backend, quotas and the operation engine, wired together."""

    store: Store
    backend: MachineBackend
    quotas: Quotas
    engine: OperationEngine = field(init=False)


Handler = Callable[[Cloud, Request], dict[str, Any]]


@dataclass(frozen=True)
class Route:
    """An API method: HTTP verb, discovery-style path template, method id, handler."""

    http_method: str
    template: str
    method_id: str
    handler: Handler
