"""Asynchronous operations: PENDING -> RUNNING -> DONE on a scheduler plus a worker pool.

A mutating handler validates synchronously (400/404/409/412 come back at once), then submits a
*task* — a registered kind plus JSON arguments — and answers with the PENDING operation. The
scheduler moves it to RUNNING after a short (scaled) delay and hands the task to a worker after
the task's simulated duration; the task does the real work (records, backend calls) and the
operation ends DONE, with ``error`` when the task raised :class:`OperationFailed`. Task and
arguments are stored next to the operation, so a restarted daemon resumes unfinished ones.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from localcloud.compute.common import new_id, now
from localcloud.compute.context import Cloud, Request, Route
from localcloud.compute.links import link
from localcloud.compute.listing import list_response
from localcloud.errors import OperationFailed, not_found

log = logging.getLogger(__name__)

TaskFn = Callable[[Cloud, dict[str, Any]], None]
PENDING_SECONDS = 0.1
WAIT_LIMIT_SECONDS = 120.0  # GCE's operations.wait returns after about two minutes at most


@dataclass(frozen=True)
class TaskSpec:
    """``run`` does the work; ``begin`` marks targets busy at RUNNING; ``abort`` undoes what
    the handler created synchronously when the operation fails before ``run``."""

    run: TaskFn
    seconds: float
    begin: TaskFn | None = None
    abort: TaskFn | None = None


TASKS: dict[str, TaskSpec] = {}


def task(
    kind: str, seconds: float, begin: TaskFn | None = None, abort: TaskFn | None = None
) -> Callable[[TaskFn], TaskFn]:
    """Register ``run`` for ``kind``; ``seconds`` is its simulated duration at latency scale 1."""

    def register(run: TaskFn) -> TaskFn:
        TASKS[kind] = TaskSpec(run, seconds, begin, abort)
        return run

    return register


class OperationEngine:
    """Owns operation records from submission to DONE."""

    def __init__(self, cloud: Cloud, latency_scale: float, workers: int = 8) -> None:
        self.cloud = cloud
        self.scale = latency_scale
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="op")
        self._heap: list[tuple[float, int, tuple[str, str, str], str]] = []
        self._seq = itertools.count()
        self._wake = threading.Condition()
        self._done = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="op-scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def submit(
        self,
        req: Request,
        scope: str,
        op_type: str,
        target_link: str,
        target_id: str | None,
        kind: str,
        args: dict[str, Any],
        failure: OperationFailed | None = None,
    ) -> dict[str, Any]:
        """Record a PENDING operation for ``kind(args)`` and schedule it; returns the record."""
        project = req.project
        name = f"operation-{int(time.time() * 1000)}-{secrets.token_hex(6)}-{secrets.token_hex(4)}"
        op: dict[str, Any] = {
            "kind": "compute#operation",
            "id": new_id(),
            "name": name,
            "operationType": op_type,
            "targetLink": target_link,
            "status": "PENDING",
            "user": "localcloud@localhost",
            "progress": 0,
            "insertTime": now(),
            "selfLink": link(f"projects/{project}/{scope}/operations/{name}"),
        }
        if target_id:
            op["targetId"] = target_id
        if scope.startswith("zones/"):
            op["zone"] = link(f"projects/{project}/{scope}")
        elif scope.startswith("regions/"):
            op["region"] = link(f"projects/{project}/{scope}")
        extra = 0.0
        if failure is None and req.fault is not None:
            failure = req.fault.failure
            extra = req.fault.seconds
        state = {
            "kind": kind,
            "args": args,
            "failure": failure.fields() if failure else None,
            "extra": extra,
        }
        store = self.cloud.store
        with store.batch():
            store.put(project, "operations", scope, name, op)
            store.put(project, "opTasks", scope, name, state)
        self._schedule(PENDING_SECONDS * self.scale, (project, scope, name), "begin")
        return dict(op)

    def fail(
        self, req: Request, scope: str, op_type: str, target_link: str, failure: OperationFailed
    ) -> dict[str, Any]:
        """An operation that changes nothing and ends in ``failure`` (e.g. over quota)."""
        return self.submit(req, scope, op_type, target_link, None, "failed", {}, failure)

    def resume(self) -> int:
        """Reschedule every operation a previous daemon left unfinished; returns how many."""
        pending = self.cloud.store.keys("opTasks")
        for project, scope, name in pending:
            self._schedule(0.0, (project, scope, name), "begin")
        return len(pending)

    def wait(self, project: str, scope: str, name: str, timeout: float) -> dict[str, Any]:
        """The operation once DONE, or as it is when ``timeout`` runs out."""
        deadline = time.monotonic() + timeout
        with self._done:
            while True:
                op = self.cloud.store.get(project, "operations", scope, name)
                if op is None:
                    raise not_found(f"projects/{project}/{scope}/operations/{name}")
                remaining = deadline - time.monotonic()
                if op["status"] == "DONE" or remaining <= 0:
                    return op
                self._done.wait(remaining)

    def _schedule(self, delay: float, key: tuple[str, str, str], phase: str) -> None:
        with self._wake:
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), key, phase))
            self._wake.notify()

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._stopping and (
                    not self._heap or self._heap[0][0] > time.monotonic()
                ):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._wake.wait(timeout)
                if self._stopping:
                    return
                _, _, key, phase = heapq.heappop(self._heap)
            try:
                if phase == "begin":
                    self._begin(key)
                else:
                    self._pool.submit(self._execute, key)
            except RuntimeError:  # pool already shut down: the daemon is stopping
                return

    def _begin(self, key: tuple[str, str, str]) -> None:
        project, scope, name = key
        store = self.cloud.store
        state = store.peek(project, "opTasks", scope, name)
        op = store.get(project, "operations", scope, name)
        if state is None or op is None:
            return
        spec = TASKS[state["kind"]]
        if op["status"] == "PENDING":
            op.update(status="RUNNING", startTime=now())
            store.put(project, "operations", scope, name, op)
            if spec.begin is not None and state["failure"] is None:
                self._guarded(spec.begin, state["args"])
        delay = spec.seconds * self.scale + state["extra"]
        self._schedule(delay, key, "execute")

    def _execute(self, key: tuple[str, str, str]) -> None:
        project, scope, name = key
        store = self.cloud.store
        state = store.get(project, "opTasks", scope, name)
        if state is None:
            return
        spec = TASKS[state["kind"]]
        failure: dict[str, Any] | None = state["failure"]
        if failure is not None:
            if spec.abort is not None:
                self._guarded(spec.abort, state["args"])
        else:
            try:
                spec.run(self.cloud, state["args"])
            except OperationFailed as err:
                failure = err.fields()
            except Exception as err:  # a bug or a backend failure: the op reports it, we log it
                log.exception("operation %s (%s) failed", name, state["kind"])
                failure = OperationFailed("INTERNAL_ERROR", f"Internal error: {err}", 500).fields()
        self._finish(key, failure)

    def _guarded(self, fn: TaskFn, args: dict[str, Any]) -> None:
        try:
            fn(self.cloud, args)
        except Exception:
            log.exception("operation hook %s failed", getattr(fn, "__name__", fn))

    def _finish(self, key: tuple[str, str, str], failure: dict[str, Any] | None) -> None:
        project, scope, name = key
        store = self.cloud.store
        with store.batch():
            op = store.get(project, "operations", scope, name)
            if op is not None:
                op.update(status="DONE", progress=100, endTime=now())
                op.setdefault("startTime", op["endTime"])
                if failure:
                    op.update(failure)
                store.put(project, "operations", scope, name, op)
            store.delete(project, "opTasks", scope, name)
        with self._done:
            self._done.notify_all()


@task("failed", seconds=0.1)
def _changes_nothing(cloud: Cloud, args: dict[str, Any]) -> None:
    """Runs only if the failure was lost; the operation still must end."""


# --- zoneOperations, regionOperations, globalOperations -------------------------------------


def scope_of(req: Request) -> str:
    if "zone" in req.params:
        return f"zones/{req.params['zone']}"
    if "region" in req.params:
        return f"regions/{req.params['region']}"
    return "global"


def _get(cloud: Cloud, req: Request) -> dict[str, Any]:
    scope = scope_of(req)
    op = cloud.store.get(req.project, "operations", scope, req.params["operation"])
    if op is None:
        raise not_found(f"projects/{req.project}/{scope}/operations/{req.params['operation']}")
    return op


def _wait(cloud: Cloud, req: Request) -> dict[str, Any]:
    return cloud.engine.wait(
        req.project, scope_of(req), req.params["operation"], WAIT_LIMIT_SECONDS
    )


def _list(cloud: Cloud, req: Request) -> dict[str, Any]:
    scope = scope_of(req)
    ops = cloud.store.list(req.project, "operations", scope)
    return list_response(
        req, "compute#operationList", f"projects/{req.project}/{scope}/operations", ops
    )


def _delete(cloud: Cloud, req: Request) -> dict[str, Any]:
    scope = scope_of(req)
    name = req.params["operation"]
    with cloud.store.batch():
        if not cloud.store.delete(req.project, "operations", scope, name):
            raise not_found(f"projects/{req.project}/{scope}/operations/{name}")
        cloud.store.delete(req.project, "opTasks", scope, name)
    return {}


def _routes() -> list[Route]:
    out = []
    for resource, prefix in (
        ("zoneOperations", "projects/{project}/zones/{zone}/operations"),
        ("regionOperations", "projects/{project}/regions/{region}/operations"),
        ("globalOperations", "projects/{project}/global/operations"),
    ):
        out += [
            Route("GET", f"{prefix}/{{operation}}", f"compute.{resource}.get", _get),
            Route("POST", f"{prefix}/{{operation}}/wait", f"compute.{resource}.wait", _wait),
            Route("GET", prefix, f"compute.{resource}.list", _list),
            Route("DELETE", f"{prefix}/{{operation}}", f"compute.{resource}.delete", _delete),
        ]
    return out


ROUTES = _routes()
