"""Quotas ending in QUOTA_EXCEEDED operation errors, and the per-client rate limit (429)."""

from __future__ import annotations

from http.client import HTTPConnection

import pytest
from google.api_core import exceptions
from google.cloud import compute_v1

from tests.localcloud_support import (
    REGION,
    ZONE,
    LocalCloud,
    create_instance,
    http,
    instance_body,
    make_network,
    properties,
)

pytest_plugins = ["tests.localcloud_fixtures"]


def _quota_error(lc: LocalCloud, project: str, op_name: str, scope: str) -> dict:
    status, raw = lc.api("GET", f"projects/{project}/{scope}/operations/{op_name}")
    assert status == 200 and raw["status"] == "DONE"
    assert (raw["httpErrorStatusCode"], raw["httpErrorMessage"]) == (403, "FORBIDDEN")
    (err,) = raw["error"]["errors"]
    assert err["code"] == "QUOTA_EXCEEDED"
    return err


def test_cpu_and_instance_quotas(lc: LocalCloud, project: str) -> None:
    c = lc.clients
    make_network(c, project)
    lc.admin("POST", "quotas", {"CPUS": 6, "INSTANCES": 4})
    create_instance(c, project, "a", machine="e2-standard-4")  # 4 of 6 CPUs
    op = c.instances.insert(
        project=project, zone=ZONE, instance_resource=instance_body("b", machine="e2-standard-4")
    )
    with pytest.raises(exceptions.Forbidden, match="Quota 'CPUS' exceeded"):
        op.result(timeout=30)
    err = _quota_error(lc, project, op.name, f"zones/{ZONE}")
    assert err["message"] == "Quota 'CPUS' exceeded.  Limit: 6.0 in region us-central1."
    assert [i.name for i in c.instances.list(project=project, zone=ZONE)] == ["a"]

    region = c.regions.get(project=project, region=REGION)
    usage = {q.metric: (q.usage, q.limit) for q in region.quotas}
    assert usage["CPUS"] == (4.0, 6.0) and usage["INSTANCES"] == (1.0, 4.0)
    assert usage["DISKS_TOTAL_GB"][0] == 10.0

    # Stopped instances release CPUs but still count as instances.
    c.instances.stop(project=project, zone=ZONE, instance="a").result(timeout=30)
    bulk = compute_v1.BulkInsertInstanceResource(
        count=4, name_pattern="n-#", instance_properties=properties(machine="e2-small")
    )
    op = c.instances.bulk_insert(
        project=project, zone=ZONE, bulk_insert_instance_resource_resource=bulk
    )
    with pytest.raises(exceptions.Forbidden):
        op.result(timeout=30)
    assert "'INSTANCES'" in _quota_error(lc, project, op.name, f"zones/{ZONE}")["message"]
    bulk.count = 3
    c.instances.bulk_insert(
        project=project, zone=ZONE, bulk_insert_instance_resource_resource=bulk
    ).result(timeout=30)
    assert len(list(c.instances.list(project=project, zone=ZONE))) == 4


def test_project_quotas_and_addresses(lc: LocalCloud, project: str) -> None:
    c = lc.clients
    make_network(c, project)
    lc.admin(
        "POST",
        "quotas",
        {"FIREWALLS": 1, "ROUTES": 1, "STATIC_ADDRESSES": 1, "IN_USE_ADDRESSES": 2},
    )

    def allowed() -> list[compute_v1.Allowed]:
        return [compute_v1.Allowed(I_p_protocol="tcp", ports=["22"])]

    c.firewalls.insert(
        project=project,
        firewall_resource=compute_v1.Firewall(
            name="fw1", network="global/networks/net", allowed=allowed()
        ),
    ).result(timeout=30)
    op = c.firewalls.insert(
        project=project,
        firewall_resource=compute_v1.Firewall(
            name="fw2", network="global/networks/net", allowed=allowed()
        ),
    )
    with pytest.raises(exceptions.Forbidden, match="FIREWALLS"):
        op.result(timeout=30)
    assert "globally" in _quota_error(lc, project, op.name, "global")["message"]

    c.addresses.insert(
        project=project, region=REGION, address_resource=compute_v1.Address(name="ip1")
    ).result(timeout=30)
    op = c.addresses.insert(
        project=project, region=REGION, address_resource=compute_v1.Address(name="ip2")
    )
    with pytest.raises(exceptions.Forbidden, match="STATIC_ADDRESSES"):
        op.result(timeout=30)
    # ip1 (reserved) + one external interface = 2 in-use addresses: a second one is over.
    create_instance(c, project, "ext1", external=True)
    op = c.instances.insert(
        project=project, zone=ZONE, instance_resource=instance_body("ext2", external=True)
    )
    with pytest.raises(exceptions.Forbidden, match="IN_USE_ADDRESSES"):
        op.result(timeout=30)
    lc.admin("POST", "quotas", {})
    assert lc.admin("GET", "quotas")["FIREWALLS"] == 500


def test_bad_quota_config_is_rejected(lc: LocalCloud) -> None:
    status, body = http(lc.endpoints.admin + "/quotas", "POST", {"GPUS": 1})
    assert status == 400 and "unknown quota metric 'GPUS'" in body["error"]
    status, body = http(lc.endpoints.admin + "/quotas", "POST", {"CPUS": -1})
    assert status == 400 and ">= 0" in body["error"]


def test_rate_limit_per_client(lc: LocalCloud, project: str) -> None:
    lc.admin("POST", "ratelimit", {"rate": 5, "burst": 10})
    statuses = [lc.api("GET", f"projects/{project}/zones/{ZONE}")[0] for _ in range(25)]
    assert statuses[:10] == [200] * 10 and 429 in statuses[10:]
    status, body = lc.api("GET", f"projects/{project}/zones/{ZONE}")
    assert status == 429 and body["error"]["errors"] == [
        {"message": "Rate Limit Exceeded", "domain": "usageLimits", "reason": "rateLimitExceeded"}
    ]
    with pytest.raises(exceptions.TooManyRequests):
        lc.clients.zones.get(project=project, zone=ZONE)
    # The admin API is not limited, and another client address has its own bucket.
    assert lc.admin("GET", "ratelimit") == {"rate": 5.0, "burst": 10}
    host, port = lc.endpoints.compute.removeprefix("http://").split(":")
    conn = HTTPConnection(host, int(port), source_address=("127.0.0.2", 0))
    conn.request("GET", f"/compute/v1/projects/{project}/zones/{ZONE}")
    assert conn.getresponse().status == 200
    conn.close()
    assert lc.admin("GET", "stats")["errors"]["compute.zones.get"] >= 2
