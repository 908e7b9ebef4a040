"""Seeded fault schedules: validation, determinism, and each fault as clients see it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from google.api_core import exceptions
from google.cloud import compute_v1

from localcloud.faults import FaultSchedule
from tests.localcloud_support import (
    ZONE,
    LocalCloud,
    create_instance,
    http,
    instance_body,
    make_network,
    properties,
    running_cloud,
)

pytest_plugins = ["tests.localcloud_fixtures"]


def _fired(schedule: FaultSchedule, calls: int, api: str = "compute.instances.get") -> list[int]:
    out = []
    for n in range(1, calls + 1):
        if schedule.decide(api, "GET", "/compute/v1/projects/p/zones/z/instances/x", False):
            out.append(n)
    return out


def test_schedule_forms_and_seeds() -> None:
    nth = FaultSchedule({"rules": [{"fault": "http_error", "nth": [2, 5]}]})
    assert _fired(nth, 8) == [2, 5]
    burst = FaultSchedule({"rules": [{"fault": "rate_limit", "after": 3, "times": 4}]})
    assert _fired(burst, 12) == [4, 5, 6, 7]
    spec = {"seed": 42, "rules": [{"fault": "http_error", "probability": 0.3}]}
    a, b = _fired(FaultSchedule(spec), 200), _fired(FaultSchedule(spec), 200)
    other = _fired(FaultSchedule({**spec, "seed": 43}), 200)
    assert a == b and a != other and 30 < len(a) < 90
    scoped = FaultSchedule({"rules": [{"fault": "http_error", "api": "compute.instances.insert"}]})
    assert _fired(scoped, 5) == [] and _fired(scoped, 2, "compute.instances.insert") == [1, 2]
    # Operation faults only count calls that start an operation.
    ops = FaultSchedule({"rules": [{"fault": "operation_error"}]})
    assert _fired(ops, 3) == []
    # The first firing rule applies; later rules still count the call.
    two = FaultSchedule(
        {"rules": [{"fault": "http_error", "nth": [1]}, {"fault": "delay", "nth": [1, 2]}]}
    )
    first = two.decide("a", "GET", "/x", False)
    second = two.decide("a", "GET", "/x", False)
    assert (first.fault, second.fault) == ("http_error", "delay")
    assert [r["matched"] for r in two.state()["rules"]] == [2, 2]


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ({"rules": [{"fault": "explode"}]}, "fault must be one of"),
        ({"rules": [{"fault": "http_error", "colour": 1}]}, "unknown key(s) colour"),
        ({"rules": [{"fault": "http_error", "nth": [0]}]}, "nth must be a list"),
        ({"rules": [{"fault": "http_error", "probability": 2}]}, "probability"),
        ({"rules": [{"fault": "http_error", "status": 200}]}, "status"),
        ({"rules": {"fault": "http_error"}}, "rules must be a list"),
        ({"seeds": 1}, "unknown key(s) seeds"),
    ],
)
def test_bad_schedules_name_the_problem(schedule: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        FaultSchedule(schedule)


def test_http_faults_through_the_client(lc: LocalCloud, project: str) -> None:
    c = lc.clients
    lc.admin(
        "POST",
        "faults",
        {
            "seed": 1,
            "rules": [
                {"api": "compute.zones.get", "fault": "http_error", "status": 500, "nth": [2]},
                {"api": "compute.zones.list", "fault": "http_error", "status": 503, "nth": [1]},
                {"api": "compute.regions.get", "fault": "rate_limit", "after": 1, "times": 2},
                {"api": "compute.machineTypes.get", "fault": "delay", "seconds": 0.4, "nth": [1]},
            ],
        },
    )
    c.zones.get(project=project, zone=ZONE)
    with pytest.raises(exceptions.InternalServerError, match="Injected"):
        c.zones.get(project=project, zone=ZONE)
    c.zones.get(project=project, zone=ZONE)
    # google-cloud-compute retries a 503 on reads by itself: the fault shows only in counters.
    assert len(list(c.zones.list(project=project))) > 3
    outcomes = []
    for _ in range(4):
        try:
            c.regions.get(project=project, region="us-central1")
            outcomes.append("ok")
        except exceptions.TooManyRequests:
            outcomes.append("429")
    assert outcomes == ["ok", "429", "429", "ok"]
    start = time.monotonic()
    c.machine_types.get(project=project, zone=ZONE, machine_type="e2-small")
    assert time.monotonic() - start >= 0.4
    state = lc.admin("GET", "faults")
    assert [(r["matched"], r["fired"]) for r in state["rules"]] == [
        (3, 1),
        (2, 1),
        (4, 2),
        (1, 1),
    ]
    assert [e["fault"] for e in state["events"]] == [
        "http_error",
        "http_error",
        "rate_limit",
        "rate_limit",
        "delay",
    ]
    errors = lc.admin("GET", "stats")["errors"]
    assert errors["compute.zones.get"] >= 1 and errors["compute.regions.get"] >= 2


def test_operation_faults(lc: LocalCloud, project: str) -> None:
    c = lc.clients
    make_network(c, project)
    lc.admin(
        "POST",
        "faults",
        {
            "rules": [
                {"api": "compute.instances.insert", "fault": "quota", "metric": "CPUS", "nth": [3]},
                {"api": "compute.instances.delete", "fault": "slow_operation", "seconds": 0.8},
            ]
        },
    )
    create_instance(c, project, "a")
    create_instance(c, project, "b")
    op = c.instances.insert(project=project, zone=ZONE, instance_resource=instance_body("c"))
    with pytest.raises(exceptions.Forbidden, match="Quota 'CPUS' exceeded"):
        op.result(timeout=30)
    # Quota ran out mid-way: the third instance and its disk are gone, the others stay.
    assert [i.name for i in c.instances.list(project=project, zone=ZONE)] == ["a", "b"]
    assert sorted(d.name for d in c.disks.list(project=project, zone=ZONE)) == ["a", "b"]
    create_instance(c, project, "c")

    op = c.instances.delete(project=project, zone=ZONE, instance="a")
    time.sleep(0.3)
    assert (
        c.zone_operations.get(project=project, zone=ZONE, operation=op.name).status.name
        == "RUNNING"
    )
    assert c.instances.get(project=project, zone=ZONE, instance="a").status == "STOPPING"
    op.result(timeout=30)
    assert [i.name for i in c.instances.list(project=project, zone=ZONE)] == ["b", "c"]


def test_quota_mid_way_through_a_group(lc: LocalCloud, project: str) -> None:
    """An instance group manager resize that runs out of quota fails as a whole."""
    c = lc.clients
    make_network(c, project)
    c.instance_templates.insert(
        project=project,
        instance_template_resource=(
            compute_v1.InstanceTemplate(name="t", properties=properties(machine="e2-standard-2"))
        ),
    ).result(timeout=30)
    c.instance_group_managers.insert(
        project=project,
        zone=ZONE,
        instance_group_manager_resource=(
            compute_v1.InstanceGroupManager(
                name="g",
                base_instance_name="g",
                target_size=2,
                instance_template="global/instanceTemplates/t",
            )
        ),
    ).result(timeout=30)
    lc.admin("POST", "quotas", {"CPUS": 8})
    op = c.instance_group_managers.resize(
        project=project, zone=ZONE, instance_group_manager="g", size=6
    )
    with pytest.raises(exceptions.Forbidden, match="CPUS"):
        op.result(timeout=30)
    assert len(list(c.instances.list(project=project, zone=ZONE))) == 2
    lc.admin("POST", "quotas", {})
    c.instance_group_managers.delete(project=project, zone=ZONE, instance_group_manager="g").result(
        timeout=30
    )


def test_schedule_from_file_and_bad_admin_post(tmp_path: Path) -> None:
    faults = tmp_path / "faults.yaml"
    faults.write_text(
        yaml.safe_dump(
            {
                "seed": 3,
                "rules": [
                    {
                        "api": "compute.projects.get",
                        "fault": "http_error",
                        "status": 500,
                        "nth": [1],
                    }
                ],
            }
        )
    )
    with running_cloud(tmp_path, faults_file=faults) as cloud:
        status, body = cloud.api("GET", "projects/p1")
        assert status == 500 and body["error"]["errors"][0]["reason"] == "backendError"
        assert cloud.api("GET", "projects/p1")[0] == 200
        status, body = http(
            cloud.endpoints.admin + "/faults", "POST", {"rules": [{"fault": "nope"}]}
        )
        assert status == 400 and "fault must be one of" in body["error"]
        assert cloud.admin("GET", "faults")["seed"] == 3  # the old schedule stays
