"""The daemon's life: start detached, find a running one, stop it.

State dir files: ``daemon.lock`` (held with flock by the running daemon: the truth about
"running"), ``daemon.pid``, ``endpoints.json`` (written once every server listens),
``localcloud.log``, ``localcloud.db`` (sqlite, WAL), ``storage/`` (object storage data).

Python API for other code (kube-up's local provider, tests)::

    from localcloud.daemon import ensure_running
    ep = ensure_running(state_dir, backend="simulated")
    ep.compute    # api_endpoint for google-cloud-compute, e.g. "http://127.0.0.1:8787"
    ep.storage    # STORAGE_EMULATOR_HOST for google-cloud-storage
    ep.metadata   # "host:port" of the metadata server
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localcloud.service import Options, Service

log = logging.getLogger(__name__)
START_TIMEOUT = 60.0
STOP_TIMEOUT = 90.0


class DaemonError(Exception):
    """The daemon could not be started, found or stopped; the message says why."""


@dataclass(frozen=True)
class Endpoints:
    compute: str
    storage: str
    metadata: str
    pid: int
    backend: str

    @property
    def admin(self) -> str:
        return f"{self.compute}/localcloud/v1"

    @property
    def metadata_address(self) -> tuple[str, int]:
        host, _, port = self.metadata.rpartition(":")
        return host, int(port)


def _lock_path(state_dir: Path) -> Path:
    return state_dir / "daemon.lock"


def _endpoints_path(state_dir: Path) -> Path:
    return state_dir / "endpoints.json"


def _held(state_dir: Path) -> bool:
    """Whether a daemon holds the state dir's lock right now."""
    try:
        fd = os.open(_lock_path(state_dir), os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def running(state_dir: Path) -> Endpoints | None:
    """The endpoints of the daemon serving ``state_dir``, or None."""
    state_dir = Path(state_dir)
    if not _held(state_dir):
        return None
    try:
        data = json.loads(_endpoints_path(state_dir).read_text())
    except (FileNotFoundError, ValueError):
        return None  # still starting
    return Endpoints(
        data["compute"], data["storage"], data["metadata"], data["pid"], data["backend"]
    )


def serve_args(
    options: Options, faults_file: Path | None = None, quotas_file: Path | None = None
) -> list[str]:
    """``localcloud serve --foreground`` arguments reproducing ``options``."""
    args = [
        "serve",
        "--foreground",
        "--state-dir",
        str(options.state_dir),
        "--backend",
        options.backend,
        "--port",
        str(options.port),
        "--latency-scale",
        str(options.latency_scale),
        "--rate-limit",
        str(options.rate),
        "--rate-burst",
        str(options.burst),
        "--workers",
        str(options.workers),
    ]
    if faults_file:
        args += ["--faults", str(faults_file)]
    if quotas_file:
        args += ["--quotas", str(quotas_file)]
    if options.record:
        args += ["--record", str(options.record)]
    return args


def spawn(state_dir: Path, args: list[str], timeout: float = START_TIMEOUT) -> Endpoints:
    """Start ``localcloud <args>`` detached (own session, output to the log) and wait for it."""
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    log_path = state_dir / "localcloud.log"
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "ab") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "localcloud", *args],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            start_new_session=True,
            close_fds=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = running(state_dir)
        if found is not None and found.pid == proc.pid:
            return found
        code = proc.poll()
        if code is not None:
            raise DaemonError(_last_error(log_path) or f"localcloud exited with status {code}")
        time.sleep(0.05)
    raise DaemonError(f"localcloud did not come up within {timeout:.0f}s; see {log_path}")


def _last_error(log_path: Path) -> str:
    try:
        lines = [ln for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
    except FileNotFoundError:
        return ""
    return lines[-1].split("localcloud: ", 1)[-1] if lines else ""


def ensure_running(state_dir: Path, backend: str = "simulated", **options: Any) -> Endpoints:
    """The daemon for ``state_dir``, started (detached) if none runs.

    ``options`` are :class:`Options` fields (``port``, ``latency_scale``, ``rate`` ...), used
    only when starting. A daemon already running with another backend is an error."""
    state_dir = Path(state_dir)
    found = running(state_dir)
    if found is not None:
        if found.backend != backend:
            raise DaemonError(
                f"localcloud in {state_dir} runs backend '{found.backend}', "
                f"not '{backend}'; stop it first"
            )
        return found
    opts = Options(state_dir=state_dir, backend=backend, **options)
    try:
        return spawn(state_dir, serve_args(opts))
    except DaemonError:
        found = running(state_dir)  # another caller started it at the same moment
        if found is not None and found.backend == backend:
            return found
        raise


def stop(state_dir: Path, timeout: float = STOP_TIMEOUT) -> bool:
    """Stop the daemon (machines keep running); False when none was running."""
    state_dir = Path(state_dir)
    if not _held(state_dir):
        return False
    try:
        pid = int((state_dir / "daemon.pid").read_text())
    except (FileNotFoundError, ValueError):
        raise DaemonError(f"a localcloud holds {state_dir} but wrote no daemon.pid") from None
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _held(state_dir):
            return True
        time.sleep(0.05)
    raise DaemonError(f"localcloud (pid {pid}) did not stop within {timeout:.0f}s")


def run_foreground(options: Options) -> None:
    """Serve until SIGTERM/SIGINT. Raises DaemonError if another daemon has the state dir."""
    state_dir = options.state_dir
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock_fd = os.open(_lock_path(state_dir), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock_fd)
        raise DaemonError(
            f"a localcloud is already serving {state_dir}; "
            f"`localcloud stop --state-dir {state_dir}` first"
        ) from None
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    service = Service(options)
    try:
        service.start()
        (state_dir / "daemon.pid").write_text(f"{os.getpid()}\n")
        _write_endpoints(state_dir, {**service.endpoints(), "pid": os.getpid()})
        done.wait()
        log.info("stopping")
    finally:
        _endpoints_path(state_dir).unlink(missing_ok=True)
        service.stop()
        (state_dir / "daemon.pid").unlink(missing_ok=True)
        os.close(lock_fd)


def _write_endpoints(state_dir: Path, data: dict[str, Any]) -> None:
    tmp = state_dir / "endpoints.json.tmp"
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(_endpoints_path(state_dir))
