"""Fault matrix on the simulated cloud: seeded fault schedules against kube-up and kube-down.

Each schedule (localcloud/faults.py) mixes what clouds do under load and at their limits:
5xx answers, 429 bursts, operations that end in an error, quota that runs out mid-way, slow
operations and slow answers, aimed at the API methods the command really calls (read from a
clean run's per-method stats). The same seed gives the same schedule and, for the same calls,
the same faults.

Every faulted run must end either healthy (kube-up: the resource set of a clean run, wired
right; kube-down: nothing of the cluster left) or as a clean failure: a documented exit code,
one final line naming the command, no traceback. No run may outlive its timeout (a hang).
Then, faults cleared, a re-run of kube-up (every other failed schedule) or straight a kube-down
must leave none of the cluster's resources, and the bystanders untouched.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.reliability_cloud import Key, health_problems
from tests.reliability_lanes import Lane, Verdict, across, lanes
from tests.reliability_matrix import clean_failure

pytestmark = pytest.mark.timeout(1800)
SCHEDULES = 60
RUN_TIMEOUT_S = 150.0
KINDS = ("5xx", "429 burst", "failed operation", "quota mid-way", "slow", "mixed")
COLUMNS = ("faults", "healthy", "clean_failure", "unclean", "hang", "leaked", "cleanup_failed")


@dataclass(frozen=True)
class Schedule:
    seed: int
    command: str
    kind: str
    faults: dict[str, Any] = field(hash=False)

    def __str__(self) -> str:
        return f"schedule {self.seed} ({self.kind}, {self.command})"


@dataclass(frozen=True)
class Methods:
    """How many times each command calls each API method in a clean run."""

    up: dict[str, int]
    down: dict[str, int]

    def of(self, command: str) -> dict[str, int]:
        return self.up if command == "kube-up" else self.down


def _operation_starters(methods: dict[str, int]) -> list[str]:
    verbs = (".insert", ".bulkInsert", ".delete", ".setMetadata")
    return sorted(m for m in methods if m.endswith(verbs))


def _rule(kind: str, rng: random.Random, methods: dict[str, int]) -> dict[str, Any]:
    """One rule of ``kind``, aimed so that it fires: at a method the command calls, within the
    number of times it calls it."""
    starters = _operation_starters(methods)
    if kind == "5xx":
        api = rng.choice(sorted(methods))
        return {
            "api": api,
            "fault": "http_error",
            "status": rng.choice([500, 502, 503, 504]),
            "after": rng.randrange(methods[api]),
            "times": rng.randint(1, 3),
        }
    if kind == "429 burst":
        return {"fault": "rate_limit", "after": rng.randint(0, 20), "times": rng.randint(2, 6)}
    if kind == "failed operation":
        code, status = rng.choice(
            [("INTERNAL_ERROR", 500), ("RESOURCE_NOT_READY", 503), ("INVALID_FIELD_VALUE", 400)]
        )
        return {
            "api": rng.choice(starters),
            "fault": "operation_error",
            "nth": [1],
            "code": code,
            "status": status,
        }
    if kind == "quota mid-way":
        targets = [m for m in starters if m.endswith((".insert", ".bulkInsert"))] or starters
        api = rng.choice(targets)
        metric = {"instances": "CPUS", "addresses": "STATIC_ADDRESSES", "routes": "ROUTES"}
        return {
            "api": api,
            "fault": "quota",
            "nth": [1],
            "metric": metric.get(api.split(".")[1], "IN_USE_ADDRESSES"),
        }
    if kind == "slow":
        if rng.random() < 0.5:
            return {
                "api": rng.choice(starters),
                "fault": "slow_operation",
                "seconds": round(rng.uniform(0.5, 3.0), 1),
            }
        return {
            "api": rng.choice(sorted(methods)),
            "fault": "delay",
            "seconds": round(rng.uniform(0.5, 2.0), 1),
            "times": 2,
        }
    raise ValueError(kind)


def make_schedule(seed: int, methods: Methods) -> Schedule:
    """Schedule ``seed``: its kind and command follow from the seed, its rules from a
    generator seeded with it."""
    rng = random.Random(seed)
    kind = KINDS[seed % len(KINDS)]
    command = "kube-down" if (seed // len(KINDS)) % 3 == 2 else "kube-up"
    called = methods.of(command)
    if kind == "mixed":
        picked = rng.sample([k for k in KINDS if k != "mixed"], 3)
        if command == "kube-down":
            picked = [k if k != "quota mid-way" else "failed operation" for k in picked]
        rules = [_rule(k, rng, called) for k in picked]
    else:
        if command == "kube-down" and kind == "quota mid-way":
            kind = "failed operation"  # deleting consumes no quota
        rules = [_rule(kind, rng, called) for _ in range(rng.randint(1, 2))]
    return Schedule(seed, command, kind, {"seed": seed, "rules": rules})


@pytest.fixture(scope="module")
def fault_lanes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Lane]]:
    with lanes(tmp_path_factory, "faults") as found:
        yield found


@dataclass
class Reference:
    healthy: set[Key]
    methods: Methods


@pytest.fixture(scope="module")
def reference(fault_lanes: list[Lane]) -> Reference:
    """A clean kube-up and kube-down: the healthy resource set and the methods each calls."""
    lane = fault_lanes[0]
    lane.cloud.admin("DELETE", "stats")
    up = lane.run("kube-up", "--no-wait")
    assert up.returncode == 0, up.stderr
    up_methods = lane.cloud.admin("GET", "stats")["calls"]
    healthy = set(lane.cloud.inventory())
    lane.cloud.admin("DELETE", "stats")
    down = lane.run("kube-down")
    assert down.returncode == 0, down.stderr
    down_methods = lane.cloud.admin("GET", "stats")["calls"]
    assert lane.torn_down() is None
    return Reference(healthy, Methods(up_methods, down_methods))


def test_schedules_are_reproducible_from_their_seed(reference: Reference) -> None:
    first = [make_schedule(s, reference.methods).faults for s in range(SCHEDULES)]
    again = [make_schedule(s, reference.methods).faults for s in range(SCHEDULES)]
    assert first == again
    assert len({str(f) for f in first}) == SCHEDULES
    kinds = {make_schedule(s, reference.methods).kind for s in range(SCHEDULES)}
    assert kinds == set(KINDS)


def test_every_fault_schedule_ends_healthy_or_in_one_clear_line_and_cleans_up(
    fault_lanes: list[Lane], reference: Reference
) -> None:
    def check(lane: Lane, schedule: Schedule) -> Verdict:
        problems: list[str] = []
        if schedule.command == "kube-down":
            up = lane.run("kube-up", "--no-wait")
            if up.returncode != 0:
                return schedule.kind, dict.fromkeys(COLUMNS, 0), [f"set-up: {up.last_line}"]
        lane.cloud.set_faults(schedule.faults)
        args = ("--no-wait",) if schedule.command == "kube-up" else ()
        faulted = lane.run(schedule.command, *args, timeout=RUN_TIMEOUT_S)
        injected = lane.cloud.clear_faults()["events"]
        if not injected:
            problems.append("the schedule injected no fault: it tests nothing")
        if faulted.returncode == 0:
            if schedule.command == "kube-up":
                wrong = health_problems(lane.cloud, reference.healthy)
            else:
                wrong = [lane.torn_down()] if lane.torn_down() else []
            if wrong:
                problems.append(f"exit 0 but not healthy: {wrong}")
        unclean = clean_failure(faulted) if faulted.returncode != 0 else None
        if unclean:
            problems.append(f"unclean end: {unclean}; injected {len(injected)} faults")
        metrics = [r["metric"] for r in schedule.faults["rules"] if r["fault"] == "quota"]
        if schedule.kind == "quota mid-way" and not any(m in faulted.last_line for m in metrics):
            problems.append(f"the quota error does not say which quota: {faulted.last_line}")
        if schedule.command == "kube-up" and faulted.returncode != 0 and schedule.seed % 2:
            rerun = lane.run("kube-up", "--no-wait")
            if rerun.returncode != 0 or health_problems(lane.cloud, reference.healthy):
                problems.append(f"re-run after the failure not healthy: {rerun.last_line}")
        cleanup = lane.run("kube-down")
        left = lane.torn_down()
        if cleanup.returncode != 0:
            problems.append(f"kube-down after the schedule: {cleanup.last_line}")
        if left:
            problems.append(f"after kube-down: {left}")
        ticks = {
            "faults": len(injected),
            "healthy": faulted.returncode == 0 and not problems,
            "clean_failure": faulted.returncode != 0 and not unclean,
            "unclean": bool(unclean) and not faulted.timed_out,
            "hang": faulted.timed_out,
            "leaked": bool(left),
            "cleanup_failed": cleanup.returncode != 0,
        }
        return f"{schedule.kind} ({schedule.command})", ticks, problems

    schedules = [make_schedule(seed, reference.methods) for seed in range(SCHEDULES)]
    matrix = across(fault_lanes, schedules, check, "fault schedules, by kind and command")
    print("\n" + matrix.table())
    assert not matrix.problems, "\n".join(matrix.problems)
    totals = matrix.totals()
    assert totals["healthy"] + totals["clean_failure"] == SCHEDULES
    commands = {s.command for s in schedules}
    assert commands == {"kube-up", "kube-down"}
