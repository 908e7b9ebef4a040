"""Run kube-up, kube-down and kube-push as child processes, and SIGKILL one at an exact point.

Why a fork server: the matrices run the CLI a few hundred times, and importing the cloud client
libraries costs about two seconds of CPU per process. Each run here is a fresh process forked
from a server that imported :mod:`cluster.cli` once; it calls the very function the console
script calls, with its own environment, stdout and stderr.

Why these kill points: a run is stopped by ``SIGKILL`` sent to itself at a named point of its
own work, so the same point is hit on every run, mid-phase included, without any hook in the
product. Two kinds of points are counted in the child:

- ``request``: a request that changes something in the cloud (Compute or object storage, any
  verb but GET), through ``requests``. Reads and operation polls are not counted: how many
  happen depends on timing, and killing a run around a read is the same, for the cloud, as
  killing it around the change before or after. ``before`` kills the run just before request N
  leaves, ``after`` just after its answer came back (for an insert: the operation is started
  and may still be running when the run dies).
- ``write``: a file renamed into place (``os.replace``) under the run's private root (its state
  dir, kubeconfig, credentials file): the secrets phase, which makes no cloud call.

Every counted point is appended to ``trace`` as it happens (``request 7 POST /compute/...``),
so a clean run's trace lists the points a matrix can sweep.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# "__main__" too: children then find the main module (pytest's script) already imported.
PRELOAD = [
    "__main__",
    "cluster.cli",
    "gce.provider",
    "localcloud.provider",
    "tests.reliability_runner",
]
COMMANDS = ("kube-up", "kube-down", "kube-push", "validate-cluster")
KINDS = ("request", "write")
WHENS = ("before", "after")

_context: Any = None


@dataclass(frozen=True)
class CrashPoint:
    """Where to kill a run: the ``index``-th (1-based) event of ``kind``, ``before`` or
    ``after`` it happens."""

    kind: str
    index: int
    when: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS or self.when not in WHENS or self.index < 1:
            raise ValueError(f"bad crash point {self}")

    def __str__(self) -> str:
        return f"{self.when} {self.kind} {self.index}"


@dataclass(frozen=True)
class Event:
    """One counted point of a run, as its trace recorded it."""

    kind: str
    index: int
    label: str


@dataclass(frozen=True)
class RunResult:
    command: str
    returncode: int  # negative: killed by that signal
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool
    events: tuple[Event, ...]

    @property
    def killed(self) -> bool:
        return self.returncode == -signal.SIGKILL and not self.timed_out

    @property
    def last_line(self) -> str:
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else ""


def _forkserver() -> Any:
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(PRELOAD)
    return _context


def run_cli(
    command: str,
    argv: list[str],
    env: dict[str, str],
    workdir: Path,
    *,
    crash: CrashPoint | None = None,
    timeout: float = 120.0,
    umask: int = 0o022,
) -> RunResult:
    """Run ``command argv`` in a fresh child with exactly ``env``; kill it at ``crash``.

    A run still going after ``timeout`` seconds is killed and reported as ``timed_out``."""
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command}")
    workdir.mkdir(parents=True, exist_ok=True)
    for name in ("stdout", "stderr", "trace"):
        (workdir / name).unlink(missing_ok=True)
    root = env.get("RELIABILITY_ROOT", "")
    process = _forkserver().Process(
        target=_child, args=(command, argv, env, crash, str(workdir), root, umask)
    )
    started = time.monotonic()
    process.start()
    process.join(timeout)
    timed_out = process.is_alive()
    if timed_out:
        process.kill()
        process.join()
    seconds = time.monotonic() - started
    return RunResult(
        command=command,
        returncode=process.exitcode if process.exitcode is not None else -1,
        stdout=_read(workdir / "stdout"),
        stderr=_read(workdir / "stderr"),
        seconds=seconds,
        timed_out=timed_out,
        events=read_trace(workdir / "trace"),
    )


def read_trace(path: Path) -> tuple[Event, ...]:
    events = []
    for line in _read(path).splitlines():
        kind, index, label = line.split(" ", 2)
        events.append(Event(kind, int(index), label))
    return tuple(events)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


# --- in the child ---------------------------------------------------------------------------


class _Tracer:
    """Counts the child's requests and writes, records them, and kills it at the crash point."""

    def __init__(self, crash: CrashPoint | None, trace: Path) -> None:
        self.crash = crash
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(KINDS, 0)
        fd = os.open(trace, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._trace = os.fdopen(fd, "w", buffering=1)

    def count(self, kind: str, label: str) -> int:
        with self._lock:
            self._counts[kind] += 1
            index = self._counts[kind]
            self._trace.write(f"{kind} {index} {label}\n")
        return index

    def point(self, kind: str, index: int, when: str) -> None:
        if self.crash == CrashPoint(kind, index, when):
            os.kill(os.getpid(), signal.SIGKILL)


def _install(tracer: _Tracer, root: str) -> None:
    from requests.adapters import HTTPAdapter

    send = HTTPAdapter.send

    def traced_send(adapter: HTTPAdapter, request: Any, *args: Any, **kwargs: Any) -> Any:
        path = urlsplit(request.url).path
        if request.method in ("GET", "HEAD") or "/operations/" in path:
            return send(adapter, request, *args, **kwargs)
        index = tracer.count("request", f"{request.method} {path}")
        tracer.point("request", index, "before")
        response = send(adapter, request, *args, **kwargs)
        tracer.point("request", index, "after")
        return response

    HTTPAdapter.send = traced_send  # type: ignore[method-assign]
    if not root:
        return
    replace = os.replace

    def traced_replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if not os.fspath(dst).startswith(root):
            replace(src, dst, *args, **kwargs)
            return
        index = tracer.count("write", os.path.relpath(os.fspath(dst), root))
        tracer.point("write", index, "before")
        replace(src, dst, *args, **kwargs)
        tracer.point("write", index, "after")

    os.replace = traced_replace  # type: ignore[assignment]


def _child(
    command: str,
    argv: list[str],
    env: dict[str, str],
    crash: CrashPoint | None,
    workdir: str,
    root: str,
    umask: int,
) -> None:
    from cluster import cli

    os.environ.clear()
    os.environ.update(env)
    os.umask(umask)
    for fd, name in ((1, "stdout"), (2, "stderr")):
        out = os.open(os.path.join(workdir, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(out, fd)
        os.close(out)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - lives as long as we do
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    _install(_Tracer(crash, Path(workdir) / "trace"), root)
    entry = {
        "kube-up": cli.kube_up,
        "kube-down": cli.kube_down,
        "kube-push": cli.kube_push,
        "validate-cluster": cli.validate_cluster,
    }[command]
    code = entry(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    # The command has finished: leave at once. A child forked from a server whose libraries
    # started threads must not run interpreter shutdown (joining threads and atexit handlers
    # copied mid-flight by fork can wait forever); seen once as a finished kube-down whose
    # child never exited.
    os._exit(code)
