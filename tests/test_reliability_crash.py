"""Crash matrix on the simulated cloud: SIGKILL kube-up, kube-down and kube-push at every point.

The points come from a clean run's trace (see :mod:`tests.reliability_runner`): just before and
just after every request that changes the cloud, and just after every secret file written.
After each kill:

- kube-up: a re-run converges to the healthy cluster of a clean ``kube-up --no-wait`` (same
  resources, nothing extra, pieces agreeing with the local state), then kube-down leaves none of
  the cluster's resources; and, killed again at the same point, kube-down alone leaves none;
- kube-down: a re-run of kube-down leaves none of the cluster's resources;
- kube-push: the cluster keeps every resource, and a re-run finishes the push's cloud part
  (staging, metadata); on the simulated backend a push then stops at SSH, as it does unkilled.

Bystander resources (another cluster's, no cluster's) must survive every kube-down untouched.
Points are shared out between two clouds run side by side (:mod:`tests.reliability_lanes`).
``pytest -s`` prints the tables that docs/reliability.md reports.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.reliability_cloud import CLUSTER, NUM_NODES, Key, health_problems, kube_env, shape
from tests.reliability_lanes import Lane, Verdict, across, lanes
from tests.reliability_matrix import current_phase
from tests.reliability_runner import CrashPoint, Event, RunResult

pytestmark = pytest.mark.timeout(1800)
# Where a push ends on the simulated backend: its VMs run no sshd.
HOST_KEY_ERROR = "published no SSH host key"


@dataclass
class Baseline:
    """What clean runs did: their traces, the healthy resource sets, what a push ends with."""

    up: tuple[Event, ...]
    healthy: set[Key]
    down: tuple[Event, ...]
    push: tuple[Event, ...]
    pushed: set[Key]
    push_error: str


@pytest.fixture(scope="module")
def crash_lanes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Lane]]:
    with lanes(tmp_path_factory, "crash") as found:
        yield found


@pytest.fixture(scope="module")
def baseline(crash_lanes: list[Lane]) -> Baseline:
    lane = crash_lanes[0]
    up = lane.run("kube-up", "--no-wait")
    assert up.returncode == 0, up.stderr
    healthy = set(lane.cloud.inventory())
    assert health_problems(lane.cloud, healthy) == []
    down = lane.run("kube-down")
    assert down.returncode == 0, down.stderr
    assert lane.torn_down() is None
    assert lane.run("kube-up", "--no-wait").returncode == 0
    push = lane.run("kube-push", push=True)
    pushed = set(lane.cloud.inventory())
    assert lane.run("kube-down").returncode == 0
    assert lane.torn_down() is None
    return Baseline(up.events, healthy, down.events, push.events, pushed, push.last_line)


def sweep(events: tuple[Event, ...]) -> list[CrashPoint]:
    """Just after every event, and just before every cloud request (which differs from "after
    the previous event" when requests go out in parallel)."""
    points = []
    for event in events:  # in the order they happened
        if event.kind == "request":
            points.append(CrashPoint(event.kind, event.index, "before"))
        points.append(CrashPoint(event.kind, event.index, "after"))
    return points


def killed(result: RunResult, point: CrashPoint) -> list[str]:
    if result.killed:
        return []
    return [f"was not killed at {point} (exit {result.returncode}: {result.last_line})"]


def test_kube_up_killed_anywhere_is_finished_by_a_rerun_and_removed_by_kube_down(
    crash_lanes: list[Lane], baseline: Baseline
) -> None:
    def check(lane: Lane, point: CrashPoint) -> Verdict:
        first = lane.run("kube-up", "--no-wait", crash=point)
        rerun = lane.run("kube-up", "--no-wait")
        health = health_problems(lane.cloud, baseline.healthy) if rerun.returncode == 0 else []
        down = lane.run("kube-down")
        after_rerun = lane.torn_down() if down.returncode == 0 else down.last_line
        again = lane.run("kube-up", "--no-wait", crash=point)
        direct = lane.run("kube-down")
        after_kill = lane.torn_down() if direct.returncode == 0 else direct.last_line
        problems = killed(first, point) + killed(again, point)
        if rerun.returncode != 0 or health:
            problems.append(f"re-run not healthy: {rerun.last_line} {health}")
        if after_rerun:
            problems.append(f"kube-down after the re-run: {after_rerun}")
        if after_kill:
            problems.append(f"kube-down right after the kill: {after_kill}")
        ticks = {
            "killed": not killed(first, point),
            "rerun_healthy": rerun.returncode == 0 and not health,
            "down_after_rerun_clean": not after_rerun,
            "down_after_kill_clean": not after_kill and not killed(again, point),
        }
        return current_phase(first), ticks, problems

    matrix = across(crash_lanes, sweep(baseline.up), check, "kube-up killed (SIGKILL), by step")
    print("\n" + matrix.table())
    assert not matrix.problems, "\n".join(matrix.problems)


def test_kube_down_killed_anywhere_is_finished_by_a_rerun(
    crash_lanes: list[Lane], baseline: Baseline
) -> None:
    def check(lane: Lane, point: CrashPoint) -> Verdict:
        up = lane.run("kube-up", "--no-wait")
        if up.returncode != 0:
            return "(setting up)", {"killed": False, "rerun_down_clean": False}, [up.last_line]
        first = lane.run("kube-down", crash=point)
        rerun = lane.run("kube-down")
        left = lane.torn_down() if rerun.returncode == 0 else rerun.last_line
        problems = killed(first, point) + ([f"re-run of kube-down: {left}"] if left else [])
        ticks = {"killed": not killed(first, point), "rerun_down_clean": not left}
        return current_phase(first), ticks, problems

    matrix = across(crash_lanes, sweep(baseline.down), check, "kube-down killed (SIGKILL), by step")
    print("\n" + matrix.table())
    assert not matrix.problems, "\n".join(matrix.problems)


def _push_problems(lane: Lane, baseline: Baseline) -> list[str]:
    """The cloud part of a push is complete: every VM's kube-env names the new artifacts."""
    inventory = lane.cloud.inventory()
    problems = health_problems(lane.cloud, baseline.pushed, inventory, lane.release_v2)
    manifest: dict[str, Any] = json.loads((lane.release_v2 / "release.json").read_text())
    salt_hash = manifest["artifacts"]["salt"]["sha256"]
    nodes = [f"{CLUSTER}-minion-{i}" for i in range(1, NUM_NODES + 1)]
    for name in (f"{CLUSTER}-master", *nodes):
        if kube_env(inventory[("instance", name)])["SALT_TAR_HASH"] != salt_hash:
            problems.append(f"{name} kube-env still names the old salt tarball")
    return problems


def test_kube_push_killed_anywhere_keeps_the_cluster_and_a_rerun_finishes(
    crash_lanes: list[Lane], baseline: Baseline
) -> None:
    assert HOST_KEY_ERROR in baseline.push_error, baseline.push_error
    columns = ("killed", "cluster_intact", "rerun_pushed", "down_clean")

    def check(lane: Lane, point: CrashPoint) -> Verdict:
        up = lane.run("kube-up", "--no-wait")
        if up.returncode != 0:
            return "(setting up)", dict.fromkeys(columns, False), [up.last_line]
        first = lane.run("kube-push", crash=point, push=True)
        missing = sorted((shape(baseline.healthy) - shape(lane.cloud.inventory())).elements())
        rerun = lane.run("kube-push", push=True)
        pushed = rerun.returncode == 4 and HOST_KEY_ERROR in rerun.last_line
        push_problems = _push_problems(lane, baseline) if pushed else []
        down = lane.run("kube-down")
        left = lane.torn_down() if down.returncode == 0 else down.last_line
        problems = killed(first, point)
        if missing:
            problems.append(f"the killed push lost {missing}")
        if not pushed or push_problems:
            problems.append(f"re-run: {rerun.last_line} {push_problems}")
        if left:
            problems.append(f"kube-down: {left}")
        ticks = {
            "killed": not killed(first, point),
            "cluster_intact": not missing,
            "rerun_pushed": pushed and not push_problems,
            "down_clean": not left,
        }
        return current_phase(first), ticks, problems

    matrix = across(crash_lanes, sweep(baseline.push), check, "kube-push killed (SIGKILL), by step")
    print("\n" + matrix.table())
    assert not matrix.problems, "\n".join(matrix.problems)
