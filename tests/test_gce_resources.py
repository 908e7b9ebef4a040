"""The GCE resource bodies kube-up asks for: names, ownership marks, what is open to the world."""

from __future__ import annotations

import ipaddress
from types import SimpleNamespace

import pytest

from cluster.config import build_config
from cluster.errors import CloudError
from gce import resources
from gce.fanout import settle

ENV = {"KUBERNETES_PROVIDER": "gce", "PROJECT": "my-project", "NUM_NODES": "3"}


@pytest.fixture
def config():
    return build_config(ENV, {})


def test_only_ssh_and_https_are_open_to_the_world(config):
    open_to_world = [
        (rule["name"], allowed)
        for rule in resources.firewall_bodies(config)
        if "0.0.0.0/0" in rule["sourceRanges"]
        for allowed in rule["allowed"]
    ]
    assert sorted((a["IPProtocol"], tuple(a["ports"])) for _, a in open_to_world) == [
        ("tcp", ("22",)),
        ("tcp", ("443",)),
    ]
    https = next(r for r in resources.firewall_bodies(config) if "443" in str(r["allowed"]))
    assert https["targetTags"] == [resources.Names(config).master_tag]


def test_internal_rule_covers_vms_and_pods_only(config):
    internal = resources.firewall_bodies(config)[0]
    ranges = [ipaddress.ip_network(r) for r in internal["sourceRanges"]]
    assert config.subnet_range in ranges and config.cluster_ip_range in ranges
    assert all(r.is_private for r in ranges)


def test_every_labelable_resource_carries_the_cluster_label(config):
    metadata = {"kube-env": "x"}
    bodies = [
        resources.master_address_body(config),
        resources.master_internal_address_body(config),
        resources.master_disk_body(config),
        resources.master_instance_body(config, metadata, "10.240.0.3", "10.240.0.2"),
        resources.node_template_properties(config, metadata),
    ]
    for body in bodies:
        assert body["labels"][resources.CLUSTER_LABEL] == config.cluster_name


def test_unlabelable_resources_carry_the_owner_description(config):
    mine = resources.owner_description(config)
    bodies = [
        resources.network_body(config),
        resources.subnetwork_body(config),
        resources.route_body(config, config.node_name(1), str(config.pod_cidr_for(1))),
        resources.node_template_body(config, {}),
        *resources.firewall_bodies(config),
    ]
    assert all(body["description"] == mine for body in bodies)


def test_template_name_follows_its_content(config):
    a = resources.node_template_body(config, {"kube-env": "one"})
    b = resources.node_template_body(config, {"kube-env": "two"})
    again = resources.node_template_body(config, {"kube-env": "one"})
    assert a["name"] != b["name"]
    assert a["name"] == again["name"]
    assert len(a["name"]) <= 63


def test_routes_send_each_nodes_pod_range_to_it(config):
    bodies = [
        resources.route_body(config, config.node_name(i), str(config.pod_cidr_for(i)))
        for i in range(1, config.num_nodes + 1)
    ]
    ranges = [ipaddress.ip_network(b["destRange"]) for b in bodies]
    assert len(set(ranges)) == config.num_nodes
    assert all(r.subnet_of(config.cluster_ip_range) for r in ranges)
    assert all(b["nextHopInstance"].endswith(f"/instances/{b['name'][:-6]}") for b in bodies)


def test_master_has_its_persistent_disk_under_a_stable_device_name(config):
    body = resources.master_instance_body(config, {}, "10.240.0.3", "10.240.0.2")
    disk = next(d for d in body["disks"] if not d["boot"])
    assert disk["deviceName"] == resources.MASTER_PD_DEVICE
    assert disk["autoDelete"] is False
    assert body["networkInterfaces"][0]["networkIP"] == "10.240.0.2"
    assert body["networkInterfaces"][0]["accessConfigs"][0]["natIP"] == "10.240.0.3"


def _op(name: str, error_code: str = "") -> SimpleNamespace:
    errors = [SimpleNamespace(code=error_code, message=f"{error_code} here")] if error_code else []
    return SimpleNamespace(
        name=name,
        error=SimpleNamespace(errors=errors),
        http_error_status_code=403 if error_code else 0,
        http_error_message=f"{error_code} here" if error_code else "",
    )


def test_settle_reads_operation_lists_not_each_operation():
    created: set[str] = set()
    listed: list[str] = []
    rounds = iter([["op-a", "op-stuck"], ["op-stuck"], []])

    def send(name: str) -> SimpleNamespace:
        if name != "stuck":
            created.add(name)
        return _op(f"op-{name}")

    def operations(filter_: str) -> list[SimpleNamespace]:
        listed.append(filter_)
        if filter_ == "status != DONE":
            return [_op(n) for n in next(rounds)] + [_op("someone-elses")]
        return [_op("op-stuck", "QUOTA_EXCEEDED"), _op("old-failure", "QUOTA_EXCEEDED")]

    with pytest.raises(CloudError, match=r"thing stuck: QUOTA_EXCEEDED") as err:
        settle(
            ["a", "b", "stuck"],
            send,
            operations,
            lambda: set(created),
            present=True,
            what="things",
            poll_s=0,
        )
    assert "\n" not in str(err.value)
    assert listed == ["status != DONE"] * 3 + ["error:*"]


def test_settle_checks_the_outcome_on_the_resources():
    ops = {"a": _op("op-a")}
    with pytest.raises(CloudError, match="1 things missing"):
        settle(["a"], ops.get, lambda f: [], lambda: set(), present=True, what="things", poll_s=0)
    settle(["a"], ops.get, lambda f: [], lambda: set(), present=False, what="things", poll_s=0)
