"""The ``local`` provider: the GCE provider pointed at localcloud running on this host.

It starts the localcloud daemon when none runs (machines backend by default) and points the
clients at it through the very variables a user would set for any GCE-compatible endpoint
(``CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE``, ``STORAGE_EMULATOR_HOST``), so every local run
exercises the GCE code path end to end.
"""

from __future__ import annotations

import os
from pathlib import Path

from google.cloud import compute_v1

from cluster.errors import PrereqError
from cluster.provider import OwnedResource
from cluster.state import state_root
from gce.clients import ENDPOINT_OVERRIDE_ENV, GceClients
from gce.provider import GceProvider
from localcloud.daemon import DaemonError, ensure_running, running, stop

STATE_DIR_ENV = "LOCALCLOUD_STATE_DIR"
BACKEND_ENV = "LOCALCLOUD_BACKEND"


def localcloud_state_dir() -> Path:
    """``$LOCALCLOUD_STATE_DIR`` or ``localcloud/`` beside the clusters' state dirs."""
    override = os.environ.get(STATE_DIR_ENV)
    return Path(override) if override else state_root() / "localcloud"


class LocalProvider(GceProvider):
    name = "local"

    started_daemon = False

    def make_clients(self) -> GceClients:
        backend = os.environ.get(BACKEND_ENV, "machines")
        try:
            self.started_daemon = running(localcloud_state_dir()) is None
            endpoints = ensure_running(localcloud_state_dir(), backend=backend)
        except DaemonError as err:
            raise PrereqError(
                f"cannot start localcloud: {err}",
                fix=f"see {localcloud_state_dir() / 'localcloud.log'}",
            ) from None
        except OSError as err:  # a file where the state dir should be, no room, no permission
            raise PrereqError(
                f"cannot use {STATE_DIR_ENV}={localcloud_state_dir()}: {err.strerror or err}",
                fix=f"point {STATE_DIR_ENV} at a writable directory",
            ) from None
        os.environ[ENDPOINT_OVERRIDE_ENV] = f"{endpoints.compute}/compute/v1/"
        os.environ["STORAGE_EMULATOR_HOST"] = endpoints.storage
        return GceClients()

    def serial_log_hint(self, instance: str) -> str:
        console = localcloud_state_dir() / "machines" / self.zone / instance / "console.log"
        return f"read its boot log (serial port 1) in {console}"

    def owned_resources(self) -> list[OwnedResource]:
        """As GCE; a daemon started only to find nothing is stopped again."""
        found = super().owned_resources()
        if not found and self.started_daemon:
            stop(localcloud_state_dir())
        return found

    def delete(self, found: list[OwnedResource]) -> None:
        """After the cluster is gone, stop the daemon too if its zone keeps no instance."""
        super().delete(found)
        request = compute_v1.ListInstancesRequest(
            project=self.project, zone=self.zone, max_results=1
        )
        left = self.clients.instances.list(request=request)
        if not any(True for _ in left):
            stop(localcloud_state_dir())
