"""Everything one localcloud daemon runs, assembled in-process: store, backend, operations,
Compute API, metadata server, object storage.

:class:`Service` knows nothing about pid files or daemonizing (that is
:mod:`localcloud.daemon`); it starts and stops the parts in order, and on start brings the
backend back in line with the stored records (subnets, firewalls, routes, adopted machines).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localcloud.admin import AdminApi
from localcloud.backends.loader import load_backend
from localcloud.compute import instance_life, ipam
from localcloud.compute.context import Cloud
from localcloud.compute.operations import OperationEngine
from localcloud.compute.quotas import Quotas
from localcloud.compute.sync import push_firewalls, push_routes
from localcloud.faults import FaultSchedule
from localcloud.front import ComputeFront
from localcloud.httpd import HttpServer
from localcloud.metadata import InstanceResolver, MetadataService
from localcloud.ratelimit import DEFAULT_BURST, DEFAULT_RATE, RateLimiter
from localcloud.stats import CallStats, Recorder
from localcloud.storage import StorageEmulator, free_port
from localcloud.store import Store

log = logging.getLogger(__name__)


class StateDirMismatch(Exception):
    """The state dir was created for another backend."""


@dataclass
class Options:
    """``localcloud serve`` settings (files already loaded)."""

    state_dir: Path
    backend: str = "simulated"
    port: int = 0
    latency_scale: float = 1.0
    faults: dict[str, Any] | None = None
    quotas: dict[str, float] | None = None
    rate: float = DEFAULT_RATE
    burst: int = DEFAULT_BURST
    workers: int = 8
    record: Path | None = None


class Service:
    def __init__(self, options: Options) -> None:
        self.options = options
        state = options.state_dir
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
        state.chmod(0o700)
        self.store = Store(state / "localcloud.db")
        previous = self.store.get_meta("backend")
        if previous and previous != options.backend:
            self.store.close()
            raise StateDirMismatch(
                f"state dir {state} belongs to a localcloud with backend '{previous}'; "
                f"serve it with --backend {previous} or use another --state-dir"
            )
        self.store.set_meta("backend", options.backend)
        self.stats = CallStats()
        self.faults = FaultSchedule(options.faults)
        self.limiter = RateLimiter(options.rate, options.burst)
        self.resolver = InstanceResolver(self.store)
        backend = load_backend(options.backend, state)
        self.cloud = Cloud(self.store, backend, Quotas(self.store, options.quotas))
        self.cloud.engine = OperationEngine(self.cloud, options.latency_scale, options.workers)
        self.recorder = Recorder(options.record) if options.record else None
        self._servers: list[HttpServer] = []
        self.storage: StorageEmulator | None = None

    def start(self) -> None:
        restart = self._reconcile_backend()
        self.cloud.engine.start()
        resumed = self.cloud.engine.resume()
        front = ComputeFront(
            self.cloud, self.limiter, self.faults, self.stats, AdminApi(self), self.recorder
        )
        self.compute = self._serve(front, "127.0.0.1", self.options.port, "compute_port")
        md_host, md_port = self.cloud.backend.metadata_bind_address()
        self.metadata = self._serve(
            MetadataService(self.store, self.resolver), md_host, md_port, "metadata_port"
        )
        storage_host = self.cloud.backend.storage_bind_host()
        preferred = int(self.store.get_meta("storage_port") or 0)
        self.storage = StorageEmulator(
            storage_host, free_port(storage_host, preferred), self.options.state_dir / "storage"
        ).start()
        self.store.set_meta("storage_port", str(self.storage.port))
        if restart:
            threading.Thread(
                target=self._restart_instances, args=(restart,), daemon=True, name="auto-restart"
            ).start()
        log.info(
            "localcloud up: %s (resumed %d operations, restarting %d instances)",
            self.endpoints(),
            resumed,
            len(restart),
        )

    def _serve(self, app: Any, host: str, port: int, meta_key: str) -> HttpServer:
        """Bind ``app``; with port 0, reuse last run's port when free, so clients keep working."""
        if port == 0:
            port = free_port(host, int(self.store.get_meta(meta_key) or 0))
        server = HttpServer(app, host, port).start()
        self.store.set_meta(meta_key, str(server.port))
        self._servers.append(server)
        return server

    def endpoints(self) -> dict[str, Any]:
        return {
            "compute": f"http://127.0.0.1:{self.compute.port}",
            "storage": self.storage.url if self.storage else "",
            "metadata": f"{self.metadata.host}:{self.metadata.port}",
            "backend": self.cloud.backend.name,
        }

    def stop(self) -> None:
        for server in reversed(self._servers):
            server.stop()
        if self.storage is not None:
            self.storage.stop()
        self.cloud.engine.stop()
        self.cloud.backend.close()
        if self.recorder is not None:
            self.recorder.close()
        self.store.close()

    def _reconcile_backend(self) -> list[tuple[str, str, str]]:
        """Re-apply subnets, firewalls and routes; adopt machines; return those to restart."""
        store, backend = self.store, self.cloud.backend
        with store.lock:
            ranges = {
                n["IPv4Range"]
                for p in store.projects()
                for n in store.list(p, "networks")
                if n.get("IPv4Range")
            }
            ranges |= {
                s["ipCidrRange"] for p in store.projects() for s in store.list(p, "subnetworks")
            }
            instances = [dict(i) for p in store.projects() for i in store.list(p, "instances")]
        for cidr in sorted(ranges):
            backend.ensure_subnet(cidr, ipam.gateway(cidr))
        push_firewalls(self.cloud)
        push_routes(self.cloud)
        adopted = backend.adopt(instances) if instances else set()
        restart = []
        for inst in instances:
            if inst["status"] != "RUNNING" or inst["name"] in adopted:
                continue
            project = inst["selfLink"].split("/projects/", 1)[1].split("/", 1)[0]
            zone = inst["zone"].rsplit("/", 1)[-1]
            if inst.get("scheduling", {}).get("automaticRestart", True):
                restart.append((project, zone, inst["name"]))
            else:
                instance_life.set_status(self.cloud, project, zone, [inst["name"]], "TERMINATED")
        return restart

    def _restart_instances(self, names: list[tuple[str, str, str]]) -> None:
        """GCE restarts instances whose host went away (automaticRestart); so do we."""
        for project, zone, name in names:
            instance_life.set_status(self.cloud, project, zone, [name], "STAGING")
            try:
                instance_life.boot(self.cloud, project, zone, [name])
            except Exception:
                log.exception("automatic restart of %s/%s failed", zone, name)
