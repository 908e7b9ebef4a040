"""Conformance with the official Compute v1 discovery document.

Every daemon the localcloud tests start records its answers and validates them when it stops
(see tests/localcloud_support.py). Here: the validator itself can fail, the routes match the
document's methods exactly, and the shared daemon's answers so far conform.
"""

from __future__ import annotations

import json

import pytest

from localcloud.compute.router import ALL_ROUTES
from tests.localcloud_schema import Validator
from tests.localcloud_support import ZONE, LocalCloud, create_instance, make_network

pytest_plugins = ["tests.localcloud_fixtures"]

OPERATION = {
    "kind": "compute#operation",
    "id": "123",
    "name": "operation-1",
    "status": "DONE",
    "progress": 100,
    "httpErrorStatusCode": 403,
    "error": {"errors": [{"code": "QUOTA_EXCEEDED", "message": "m"}]},
}


@pytest.fixture(scope="module")
def validator() -> Validator:
    return Validator()


def test_conforming_bodies_pass(validator: Validator) -> None:
    assert validator.check("compute.zoneOperations.get", 200, OPERATION) == []
    assert validator.check("compute.zoneOperations.delete", 200, {}) == []
    error = {
        "error": {
            "code": 404,
            "message": "m",
            "errors": [{"reason": "notFound", "domain": "global", "message": "m"}],
        }
    }
    assert validator.check("compute.instances.get", 404, error) == []
    labels = {"kind": "compute#instance", "labels": {"a": "b"}, "id": "1"}
    assert validator.check("compute.instances.get", 200, labels) == []


@pytest.mark.parametrize(
    ("method", "status", "body", "problem"),
    [
        (
            "compute.zoneOperations.get",
            200,
            {**OPERATION, "colour": "red"},
            "invented field 'colour'",
        ),
        ("compute.zoneOperations.get", 200, {**OPERATION, "id": 123}, "expected a string"),
        ("compute.zoneOperations.get", 200, {**OPERATION, "id": "12a"}, "decimal string"),
        ("compute.zoneOperations.get", 200, {**OPERATION, "status": "FINISHED"}, "enum"),
        (
            "compute.zoneOperations.get",
            200,
            {**OPERATION, "progress": "100"},
            "expected an integer",
        ),
        (
            "compute.zoneOperations.get",
            200,
            {**OPERATION, "error": {"errors": [{"reason": "x"}]}},
            "invented field 'reason'",
        ),
        ("compute.instances.get", 200, {"labels": {"a": 1}}, "expected a string"),
        ("compute.instances.get", 200, {"fingerprint": "not base64!"}, "not base64"),
        ("compute.instances.get", 200, {"disks": {"a": 1}}, "expected an array"),
        ("compute.instances.get", 200, {"canIpForward": "true"}, "expected a boolean"),
        ("compute.zoneOperations.delete", 200, {"x": 1}, "expected an empty body"),
        ("compute.instances.get", 404, {"error": {"code": 404, "message": "m"}}, "error fields"),
        ("compute.instances.get", 404, {"message": "m"}, "error body"),
        ("compute.nonsense.get", 200, {}, "not a Compute v1 method"),
    ],
)
def test_validator_catches(
    validator: Validator, method: str, status: int, body: dict, problem: str
) -> None:
    problems = validator.check(method, status, body)
    assert any(problem in p for p in problems), problems


def test_routes_match_the_discovery_document(validator: Validator) -> None:
    """Each served method exists in compute.v1.json with the same verb and path."""
    for route in ALL_ROUTES:
        method = validator.methods.get(route.method_id)
        assert method is not None, f"{route.method_id} is not in the discovery document"
        assert (method["httpMethod"], method["path"]) == (route.http_method, route.template), (
            route.method_id
        )
    assert len({r.method_id for r in ALL_ROUTES}) == len(ALL_ROUTES)


def test_shared_daemon_answers_conform(lc: LocalCloud, project: str, validator: Validator) -> None:
    c = lc.clients
    make_network(c, project)
    create_instance(c, project, "vm", external=True)
    lc.api("GET", f"projects/{project}/zones/{ZONE}/instances/missing")
    lc.api("GET", f"projects/{project}/aggregated/nothing")
    lc.api(
        "GET",
        f"projects/{project}/zones/{ZONE}/instances/vm/getGuestAttributes?queryPath=hostkeys/",
    )
    lines = lc.record.read_text().splitlines()
    methods = {json.loads(line)["method"] for line in lines}
    assert {
        "compute.instances.insert",
        "compute.instances.get",
        "compute.zoneOperations.get",
        "compute.instances.getGuestAttributes",
    } <= methods
    assert validator.check_file(lc.record) == []
