"""Matrices run side by side on two simulated clouds ("lanes"), each with its own bystanders.

A lane runs the CLI against its cloud (each run in a numbered work dir) and says whether the
cluster is gone; :func:`across` shares a matrix's rows out between the lanes and collects the
verdicts into a :class:`~tests.reliability_matrix.Matrix`, in the rows' order.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TypeVar

import pytest

from tests.reliability_cloud import SimCloud, sim_cloud, write_release
from tests.reliability_matrix import Matrix
from tests.reliability_runner import CrashPoint, RunResult, run_cli

LANES = 2
T = TypeVar("T")
# What one row's check returns: its group, its ticks, and what went wrong ([] if nothing).
Verdict = tuple[str, dict[str, int], list[str]]


class Lane:
    """One cloud, its bystanders, and the CLI runs against it."""

    def __init__(self, cloud: SimCloud) -> None:
        self.cloud = cloud
        self.release_v2 = write_release(cloud.root / "release-v2", tag="v2")
        self.bystanders = cloud.inventory()
        self.count = 0

    def run(
        self,
        command: str,
        *args: str,
        crash: CrashPoint | None = None,
        push: bool = False,
        timeout: float = 120.0,
    ) -> RunResult:
        """``command args`` (kube-up and kube-push get the lane's release, v2 with ``push``)."""
        self.count += 1
        argv = list(args)
        if command in ("kube-up", "kube-push"):
            argv += ["--release-dir", str(self.release_v2 if push else self.cloud.release)]
        work = self.cloud.root / "runs" / f"{self.count:04d}"
        return run_cli(command, argv, self.cloud.env(), work, crash=crash, timeout=timeout)

    def torn_down(self) -> str | None:
        """None when only the bystanders are left, untouched, and the local state is gone."""
        inventory = self.cloud.inventory()
        left = sorted(set(inventory) - set(self.bystanders))
        if left:
            return f"left {left}"
        changed = [k for k, v in self.bystanders.items() if inventory.get(k) != v]
        if changed:
            return f"bystanders changed or deleted: {changed}"
        if self.cloud.cluster_state.exists():
            return f"state dir {self.cloud.cluster_state} is still there"
        return None


@contextmanager
def lanes(factory: pytest.TempPathFactory, name: str) -> Iterator[list[Lane]]:
    with ExitStack() as stack:
        found = []
        for index in range(LANES):
            root: Path = factory.mktemp(f"{name}{index}")
            found.append(Lane(stack.enter_context(sim_cloud(root))))
        yield found


def across(
    lanes: list[Lane], rows: Sequence[T], check: Callable[[Lane, T], Verdict], title: str
) -> Matrix:
    """``check(lane, row)`` for every row, the lanes side by side; a lane stops at its first
    problem (its cloud may be dirty from then on)."""
    queue, lock = deque(range(len(rows))), threading.Lock()
    results: list[tuple[int, Verdict]] = []

    def work(lane: Lane) -> None:
        while True:
            with lock:
                if not queue:
                    return
                index = queue.popleft()
            verdict = check(lane, rows[index])
            with lock:
                results.append((index, verdict))
            if verdict[2]:
                return

    with ThreadPoolExecutor(len(lanes)) as pool:
        list(pool.map(work, lanes))
    matrix = Matrix(title, ())
    for index, (group, ticks, problems) in sorted(results, key=lambda r: r[0]):
        if not matrix.columns:
            matrix.columns = tuple(ticks)
        matrix.add(group, **ticks)
        for problem in problems:
            matrix.fail(str(rows[index]), problem)
    return matrix
