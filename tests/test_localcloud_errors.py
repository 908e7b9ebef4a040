"""GCE's error shapes (HTTP and operation errors) and fingerprint preconditions."""

from __future__ import annotations

import pytest
from google.api_core import exceptions
from google.cloud import compute_v1

from tests.localcloud_support import (
    ZONE,
    LocalCloud,
    create_instance,
    instance_body,
    make_network,
)

pytest_plugins = ["tests.localcloud_fixtures"]


def _error(body: dict) -> tuple[int, str, str]:
    err = body["error"]
    assert set(err) == {"code", "message", "errors"}
    (item,) = err["errors"]
    assert set(item) == {"reason", "domain", "message"} and item["message"] == err["message"]
    return err["code"], item["reason"], err["message"]


def test_http_error_shapes(lc: LocalCloud, project: str) -> None:
    status, body = lc.api("GET", f"projects/{project}/zones/{ZONE}/instances/nope")
    assert status == 404
    assert _error(body) == (
        404,
        "notFound",
        f"The resource 'projects/{project}/zones/{ZONE}/instances/nope' was not found",
    )

    make_network(lc.clients, project)
    status, body = lc.api("POST", f"projects/{project}/global/networks", {"name": "net"})
    assert status == 409 and _error(body)[:2] == (409, "alreadyExists")

    status, body = lc.api("POST", f"projects/{project}/global/networks", {"name": "Bad_Name"})
    assert status == 400 and _error(body)[:2] == (400, "invalid")
    assert "resource.name" in body["error"]["message"]

    status, body = lc.api(
        "POST",
        f"projects/{project}/global/firewalls",
        {"name": "fw", "network": "global/networks/net"},
    )
    assert status == 400 and "allowed" in _error(body)[2]

    status, body = lc.api("POST", f"projects/{project}/zones/{ZONE}/instances", {"name": "x"})
    assert status == 400 and _error(body)[:2] == (400, "required")

    status, body = lc.api("GET", f"projects/{project}/zones/mars-1a")
    assert status == 404 and _error(body)[1] == "notFound"

    status, body = lc.api("GET", f"projects/{project}/zones/{ZONE}/instances?maxResults=501")
    assert status == 400 and "maxResults" in _error(body)[2]

    status, body = lc.api("POST", f"projects/{project}/global/routes", None)
    assert status == 400 and _error(body)[1] == "required"

    status, body = lc.api("GET", f"projects/{project}/global/no-such-collection")
    assert status == 404 and _error(body)[1] == "notFound"


def test_client_exceptions(lc: LocalCloud, project: str) -> None:
    c = lc.clients
    make_network(c, project)
    create_instance(c, project, "vm")
    with pytest.raises(exceptions.Conflict, match="already exists"):
        c.instances.insert(project=project, zone=ZONE, instance_resource=instance_body("vm"))
    with pytest.raises(exceptions.BadRequest, match="machineType"):
        c.instances.insert(
            project=project,
            zone=ZONE,
            instance_resource=instance_body("vm2", machine="x9-huge"),
        )
    with pytest.raises(exceptions.NotFound):
        c.instances.insert(
            project=project,
            zone=ZONE,
            instance_resource=instance_body("vm3", network="missing"),
        )
    with pytest.raises(exceptions.BadRequest, match="in use|already being used"):
        c.disks.delete(project=project, zone=ZONE, disk="vm")
    with pytest.raises(exceptions.BadRequest, match="already being used"):
        c.networks.delete(project=project, network="net")


def test_fingerprints(lc: LocalCloud, project: str) -> None:
    c = lc.clients
    make_network(c, project)
    vm = create_instance(c, project, "vm", labels={"a": "1"})
    stale_meta, stale_labels, stale_tags = (
        vm.metadata.fingerprint,
        vm.label_fingerprint,
        vm.tags.fingerprint,
    )
    c.instances.set_metadata(
        project=project,
        zone=ZONE,
        instance="vm",
        metadata_resource=compute_v1.Metadata(
            fingerprint=stale_meta, items=[compute_v1.Items(key="x", value="1")]
        ),
    ).result(timeout=30)
    with pytest.raises(exceptions.PreconditionFailed, match="fingerprint"):
        c.instances.set_metadata(
            project=project,
            zone=ZONE,
            instance="vm",
            metadata_resource=compute_v1.Metadata(fingerprint=stale_meta, items=[]),
        )
    status, body = lc.api(
        "POST",
        f"projects/{project}/zones/{ZONE}/instances/vm/setMetadata",
        {"fingerprint": stale_meta, "items": []},
    )
    assert status == 412 and _error(body)[:2] == (412, "conditionNotMet")
    status, _ = lc.api(
        "POST", f"projects/{project}/zones/{ZONE}/instances/vm/setMetadata", {"items": []}
    )
    assert status == 412  # no fingerprint at all: also refused

    c.instances.set_labels(
        project=project,
        zone=ZONE,
        instance="vm",
        instances_set_labels_request_resource=compute_v1.InstancesSetLabelsRequest(
            label_fingerprint=stale_labels, labels={"a": "2"}
        ),
    ).result(timeout=30)
    with pytest.raises(exceptions.PreconditionFailed):
        c.instances.set_labels(
            project=project,
            zone=ZONE,
            instance="vm",
            instances_set_labels_request_resource=compute_v1.InstancesSetLabelsRequest(
                label_fingerprint=stale_labels, labels={}
            ),
        )
    c.instances.set_tags(
        project=project,
        zone=ZONE,
        instance="vm",
        tags_resource=compute_v1.Tags(fingerprint=stale_tags, items=["t"]),
    ).result(timeout=30)
    with pytest.raises(exceptions.PreconditionFailed):
        c.instances.set_tags(
            project=project,
            zone=ZONE,
            instance="vm",
            tags_resource=compute_v1.Tags(fingerprint=stale_tags, items=[]),
        )
    proj = c.projects.get(project=project)
    with pytest.raises(exceptions.PreconditionFailed):
        c.projects.set_common_instance_metadata(
            project=project, metadata_resource=compute_v1.Metadata(fingerprint="AAAAAAAAAAA=")
        )
    # Two writers with the same fingerprint: both accepted, the second fails when applied.
    fresh = c.instances.get(project=project, zone=ZONE, instance="vm").metadata.fingerprint
    lc.admin(
        "POST",
        "faults",
        {
            "rules": [
                {"api": "compute.instances.setMetadata", "fault": "slow_operation", "seconds": 0.5}
            ]
        },
    )
    ops = [
        c.instances.set_metadata(
            project=project,
            zone=ZONE,
            instance="vm",
            metadata_resource=compute_v1.Metadata(
                fingerprint=fresh, items=[compute_v1.Items(key="w", value=str(n))]
            ),
        )
        for n in range(2)
    ]
    ops[0].result(timeout=30)
    with pytest.raises(exceptions.PreconditionFailed):
        ops[1].result(timeout=30)
    assert ops[1].http_error_status_code == 412
    assert proj.common_instance_metadata.fingerprint


def test_failed_operation_fields(lc: LocalCloud, project: str) -> None:
    """google-cloud-compute's result() raises only when httpErrorStatusCode and
    httpErrorMessage are both set: check the raw operation, then the client."""
    c = lc.clients
    make_network(c, project)
    lc.admin(
        "POST",
        "faults",
        {
            "rules": [
                {
                    "api": "compute.instances.insert",
                    "fault": "operation_error",
                    "code": "ZONE_RESOURCE_POOL_EXHAUSTED",
                    "message": "no capacity",
                    "status": 503,
                }
            ]
        },
    )
    op = c.instances.insert(project=project, zone=ZONE, instance_resource=instance_body("vm"))
    with pytest.raises(exceptions.ServiceUnavailable, match="no capacity"):
        op.result(timeout=30)
    status, raw = lc.api("GET", f"projects/{project}/zones/{ZONE}/operations/{op.name}")
    assert status == 200 and raw["status"] == "DONE"
    assert raw["error"] == {
        "errors": [{"code": "ZONE_RESOURCE_POOL_EXHAUSTED", "message": "no capacity"}]
    }
    assert (raw["httpErrorStatusCode"], raw["httpErrorMessage"]) == (503, "SERVICE UNAVAILABLE")
    # The failed create left nothing behind: no instance, no boot disk.
    assert list(c.instances.list(project=project, zone=ZONE)) == []
    assert list(c.disks.list(project=project, zone=ZONE)) == []


def test_request_id_deduplicates(lc: LocalCloud, project: str) -> None:
    make_network(lc.clients, project)
    body = {
        "name": "fw",
        "network": "global/networks/net",
        "allowed": [{"IPProtocol": "tcp", "ports": ["22"]}],
    }
    path = f"projects/{project}/global/firewalls?requestId=5f2f8e1c-0000-4000-8000-000000000001"
    first = lc.api("POST", path, body)
    again = lc.api("POST", path, body)
    assert first[0] == again[0] == 200 and first[1]["name"] == again[1]["name"]
    assert lc.api("POST", f"projects/{project}/global/firewalls", body)[0] == 409
