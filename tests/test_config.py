"""Configuration: defaults per provider, merge order, derived values, and one-line errors."""

from __future__ import annotations

import ipaddress
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cluster.config import (
    ClusterConfig,
    ProviderDefaults,
    build_config,
    load_config,
    parse_config_yaml,
)
from cluster.config_schema import MAX_NAME, RFC1035
from cluster.errors import ConfigError


def one_line(error: ConfigError) -> str:
    text = str(error)
    assert len(text.splitlines()) == 1, text
    assert text == text.strip() and text
    return text


@pytest.mark.parametrize(
    ("provider", "zone", "region", "nodes"),
    [
        ("local", "us-central1-b", "us-central1", 2),
        ("gce", "us-central1-b", "us-central1", 3),
        ("aws", "us-west-2a", "us-west-2", 3),
    ],
)
def test_each_provider_defaults_are_valid(provider, zone, region, nodes):
    env = {} if provider == "local" else {"KUBERNETES_PROVIDER": provider}
    config = build_config(env, {})
    assert (config.provider, config.zone, config.region, config.num_nodes) == (
        provider,
        zone,
        region,
        nodes,
    )
    assert config.kube_version == "v1.34.4"
    assert config.poll_interval == 2.0
    assert config.cluster_ip_range == ipaddress.IPv4Network("10.244.0.0/16")
    assert config.service_cluster_ip_range == ipaddress.IPv4Network("10.0.0.0/16")


def test_local_is_the_gce_provider_pointed_at_localcloud():
    local = build_config({}, {})
    assert local.subnet_range == ipaddress.IPv4Network("10.240.0.0/16")
    assert ProviderDefaults.load("local").formats == ProviderDefaults.load("gce").formats


def test_environment_overrides_defaults_and_file_overrides_environment(tmp_path):
    config_file = tmp_path / "cluster.yaml"
    config_file.write_text("num_nodes: 5\nZone: europe-west4-a\n")
    env = {"NUM_NODES": "4", "INSTANCE_PREFIX": "demo", "KUBERNETES_PROVIDER": "gce"}
    config = load_config(env, config_file)
    assert config.num_nodes == 5
    assert config.zone == "europe-west4-a" and config.region == "europe-west4"
    assert config.instance_prefix == "demo"
    assert build_config(env, {}).num_nodes == 4


def test_empty_environment_values_count_as_unset():
    assert build_config({"NUM_NODES": "", "ZONE": ""}, {}) == build_config({}, {})


def test_provider_can_come_from_the_file():
    config = build_config({}, parse_config_yaml("KUBERNETES_PROVIDER: aws\nAMI: ami-0123abcd", "f"))
    assert config.provider == "aws"
    assert config.master_image == config.node_image == "ami-0123abcd"


def test_derived_names_and_ranges():
    config = build_config({"INSTANCE_PREFIX": "demo", "NUM_NODES": "3"}, {})
    assert config.cluster_name == "demo"
    assert config.master_name == "demo-master"
    assert config.node_names == ("demo-minion-1", "demo-minion-2", "demo-minion-3")
    assert (config.master_tag, config.node_tag) == ("demo-master", "demo-minion")
    assert config.pod_cidr_for(0) == ipaddress.IPv4Network("10.244.0.0/24")
    assert config.pod_cidr_for(3) == ipaddress.IPv4Network("10.244.3.0/24")
    assert config.kubernetes_service_ip == ipaddress.IPv4Address("10.0.0.1")
    assert config.dns_service_ip == ipaddress.IPv4Address("10.0.0.10")
    assert config.max_nodes == 255
    with pytest.raises(ValueError):
        config.pod_cidr_for(4)
    with pytest.raises(ValueError):
        config.node_name(0)


@pytest.mark.parametrize(
    ("raw", "enabled"),
    [("false", False), ("No", False), ("0", False), ("true", True), ("yes", True), ("1", True)],
)
def test_cluster_dns_switch_and_domain(raw, enabled):
    config = build_config({"ENABLE_CLUSTER_DNS": raw, "DNS_DOMAIN": "corp.example"}, {})
    assert config.enable_cluster_dns is enabled
    assert config.dns_domain == "corp.example"
    assert build_config({}, {"ENABLE_CLUSTER_DNS": False}).enable_cluster_dns is False
    assert str(build_config({}, {}).dns_service_ip) == "10.0.0.10"


def test_staging_bucket_is_derived_per_owner_unless_set():
    config = build_config({}, {})
    bucket = config.staging_bucket("my-project")
    assert re.fullmatch(r"kubernetes-staging-[0-9a-f]{10}", bucket)
    assert config.staging_bucket("other-project") != bucket
    assert build_config({"STAGING_BUCKET": "my-bucket"}, {}).staging_bucket("x") == "my-bucket"


def test_alias_alone_and_agreeing_are_accepted():
    assert build_config({"NUM_MINIONS": "4"}, {}).num_nodes == 4
    assert build_config({"NUM_MINIONS": "4", "NUM_NODES": "04"}, {}).num_nodes == 4
    aws = {"KUBERNETES_PROVIDER": "aws", "AWS_ZONE": "eu-west-1c", "AWS_REGION": "eu-west-1"}
    assert build_config(aws, {}).zone == "eu-west-1c"


def test_file_overrides_an_alias_from_the_environment():
    assert build_config({"NUM_MINIONS": "4"}, {"NUM_NODES": 6}).num_nodes == 6


def test_a_large_cluster_fits_in_a_large_enough_range():
    config = build_config({"NUM_NODES": "1000", "CLUSTER_IP_RANGE": "10.128.0.0/14"}, {})
    assert config.max_nodes == 1000
    assert config.pod_cidr_for(1000) == ipaddress.IPv4Network("10.131.232.0/24")


# (environment, file, the setting the error must name, a phrase it must contain)
BAD = [
    ({"NUM_NODES": "0"}, {}, "NUM_NODES='0'", "from 1 to 1000"),
    ({"NUM_NODES": "-3"}, {}, "NUM_NODES='-3'", "whole number"),
    ({"NUM_NODES": "three"}, {}, "NUM_NODES='three'", "whole number"),
    ({"NUM_NODES": "99999999999999999999"}, {}, "NUM_NODES=", "whole number"),
    ({"NUM_NODES": "３"}, {}, "NUM_NODES='３'", "whole number"),
    ({"NUM_NODES": "300"}, {}, "NUM_NODES='300'", "room for 255 nodes"),
    ({"NUM_NODES": "5", "SUBNET_RANGE": "10.240.0.0/29"}, {}, "NUM_NODES='5'", "SUBNET_RANGE"),
    ({"NUM_NODES": "3", "NUM_MINIONS": "4"}, {}, "NUM_MINIONS='4' and NUM_NODES='3'", "only"),
    ({}, {"NUM_NODES": True}, "NUM_NODES=True", "whole number"),
    ({}, {"NUM_NODES": 2.5}, "NUM_NODES=2.5", "whole number"),
    ({}, {"NUM_NODES": None}, "NUM_NODES=None", "whole number"),
    ({}, {"NUM_NODES": [1, 2]}, "NUM_NODES=[1, 2]", "whole number"),
    ({"KUBERNETES_PROVIDER": "gcp"}, {}, "KUBERNETES_PROVIDER='gcp'", "local, gce, aws"),
    ({"INSTANCE_PREFIX": "Kube"}, {}, "INSTANCE_PREFIX='Kube'", "lowercase"),
    ({"INSTANCE_PREFIX": "kube_1"}, {}, "INSTANCE_PREFIX='kube_1'", "lowercase"),
    ({"INSTANCE_PREFIX": "1kube"}, {}, "INSTANCE_PREFIX='1kube'", "lowercase"),
    ({"INSTANCE_PREFIX": "kube-"}, {}, "INSTANCE_PREFIX='kube-'", "lowercase"),
    ({"INSTANCE_PREFIX": "k" * 39}, {}, "INSTANCE_PREFIX=", "at most 38"),
    ({"INSTANCE_PREFIX": "kübe"}, {}, "INSTANCE_PREFIX='kübe'", "lowercase"),
    ({"INSTANCE_PREFIX": "a\nb"}, {}, "INSTANCE_PREFIX='a\\nb'", "lowercase"),
    ({"ZONE": "us-central1"}, {}, "ZONE='us-central1'", "like 'us-central1-b'"),
    ({"ZONE": "us-central1-b", "REGION": "europe-west1"}, {}, "REGION='europe-west1'", "follows"),
    ({"KUBERNETES_PROVIDER": "aws", "ZONE": "us-central1-b"}, {}, "ZONE=", "'us-west-2a'"),
    ({"KUBERNETES_PROVIDER": "aws", "AWS_ZONE": "x"}, {}, "AWS_ZONE='x'", "AWS zone"),
    ({"KUBERNETES_PROVIDER": "aws", "NODE_SIZE": "e2-medium"}, {}, "NODE_SIZE=", "t3.medium"),
    ({"KUBERNETES_PROVIDER": "aws", "AMI": "ubuntu"}, {}, "AMI='ubuntu'", "AMI id"),
    ({"MASTER_SIZE": "t3.medium"}, {}, "MASTER_SIZE='t3.medium'", "e2-standard-2"),
    ({"NODE_IMAGE": "Debian 12"}, {}, "NODE_IMAGE='Debian 12'", "image name"),
    ({"PROJECT": "My Project"}, {}, "PROJECT='My Project'", "project id"),
    ({"MASTER_DISK_SIZE": "5TB"}, {}, "MASTER_DISK_SIZE='5TB'", "'20GB'"),
    ({"NODE_DISK_SIZE": "1GB"}, {}, "NODE_DISK_SIZE='1GB'", "from 10GB"),
    ({"NETWORK": "my_net"}, {}, "NETWORK='my_net'", "lowercase"),
    ({"SUBNET_RANGE": "10.240.0.0"}, {}, "SUBNET_RANGE='10.240.0.0'", "IPv4 CIDR"),
    ({"SUBNET_RANGE": "10.240.0.0/33"}, {}, "SUBNET_RANGE=", "IPv4 CIDR"),
    ({"SUBNET_RANGE": "300.1.0.0/16"}, {}, "SUBNET_RANGE=", "IPv4 CIDR"),
    ({"SUBNET_RANGE": "fd00::/64"}, {}, "SUBNET_RANGE='fd00::/64'", "IPv4 CIDR"),
    ({"CLUSTER_IP_RANGE": "10.244.1.0/16"}, {}, "CLUSTER_IP_RANGE=", "10.244.0.0/16"),
    ({"CLUSTER_IP_RANGE": "10.244.0.0/25"}, {}, "CLUSTER_IP_RANGE=", "/8 to /24"),
    ({"SERVICE_CLUSTER_IP_RANGE": "8.8.0.0/16"}, {}, "SERVICE_CLUSTER_IP_RANGE=", "private"),
    ({"CLUSTER_IP_RANGE": "10.0.0.0/8"}, {}, "CLUSTER_IP_RANGE='10.0.0.0/8'", "overlaps"),
    ({"SERVICE_CLUSTER_IP_RANGE": "10.240.5.0/24"}, {}, "SERVICE_CLUSTER_IP_RANGE=", "overlaps"),
    ({"KUBE_VERSION": "1.34.4"}, {}, "KUBE_VERSION='1.34.4'", "'v1.34.4'"),
    ({}, {"KUBE_VERSION": 1.34}, "KUBE_VERSION=1.34", "expected text"),
    ({"KUBE_UP_POLL_INTERVAL": "0"}, {}, "KUBE_UP_POLL_INTERVAL='0'", "0.1s to 60"),
    ({"KUBE_UP_POLL_INTERVAL": "nan"}, {}, "KUBE_UP_POLL_INTERVAL='nan'", "duration"),
    ({}, {"KUBE_UP_TIMEOUT": float("inf")}, "KUBE_UP_TIMEOUT=inf", "duration"),
    ({"KUBE_UP_TIMEOUT": "2d"}, {}, "KUBE_UP_TIMEOUT='2d'", "'15m'"),
    ({"MASTER_TAG": "-x"}, {}, "MASTER_TAG='-x'", "derived"),
    ({"STAGING_BUCKET": "UPPER"}, {}, "STAGING_BUCKET='UPPER'", "bucket"),
    ({"ENABLE_CLUSTER_DNS": "maybe"}, {}, "ENABLE_CLUSTER_DNS='maybe'", "true or false"),
    ({}, {"ENABLE_CLUSTER_DNS": 2}, "ENABLE_CLUSTER_DNS=2", "true or false"),
    ({"DNS_DOMAIN": "Cluster.Local"}, {}, "DNS_DOMAIN='Cluster.Local'", "'cluster.local'"),
    ({"DNS_DOMAIN": "cluster..local"}, {}, "DNS_DOMAIN=", "lowercase labels"),
    ({"DNS_DOMAIN": "cluster.local."}, {}, "DNS_DOMAIN=", "lowercase labels"),
]


@pytest.mark.parametrize(("env", "file_values", "names", "allowed"), BAD)
def test_bad_values_get_one_line_naming_setting_value_and_rule(env, file_values, names, allowed):
    with pytest.raises(ConfigError) as caught:
        build_config(env, file_values, "cluster.yaml")
    text = one_line(caught.value)
    assert names in text
    assert allowed in text
    assert caught.value.exit_code == 2


def test_error_says_where_the_value_came_from():
    with pytest.raises(ConfigError, match=r"\(from cluster.yaml\)"):
        build_config({}, {"NUM_NODES": 0}, "cluster.yaml")
    with pytest.raises(ConfigError, match=r"\(from the environment\)"):
        build_config({"NUM_NODES": "0"}, {}, "cluster.yaml")


def test_overlap_blames_the_range_the_user_changed():
    with pytest.raises(ConfigError, match=r"^SUBNET_RANGE='10.244.0.0/20' \(from the env"):
        build_config({"SUBNET_RANGE": "10.244.0.0/20"}, {})


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("NUM_NODES: [", "not valid YAML at line 1"),
        ("NUM_NODES: 3\n  ZONE: x: y", "not valid YAML"),
        ("num_nodes: 3\nNUM_NODES: 4", "'NUM_NODES' is set more than once"),
        ("- NUM_NODES", "expected a mapping"),
        ("just text", "expected a mapping"),
        ("{1: 2}", "key 1 is not a setting name"),
        ("ZONE: !!python/object/apply:os.system ['true']", "not valid YAML"),
        ("X: 2021-13-45", "not valid YAML"),
        ("a: &a [*a]\n", "unknown setting 'A'"),
    ],
)
def test_malformed_yaml_is_a_config_error(text, phrase):
    with pytest.raises(ConfigError) as caught:
        build_config({}, parse_config_yaml(text, "cluster.yaml"), "cluster.yaml")
    assert phrase in one_line(caught.value)


def test_unknown_file_key_suggests_the_close_one():
    with pytest.raises(ConfigError, match=r"unknown setting 'NUM_NODE'; did you mean NUM_NODES\?"):
        build_config({}, parse_config_yaml("NUM_NODE: 3", "c.yaml"), "c.yaml")
    with pytest.raises(ConfigError, match=r"unknown setting 'COLOUR'; known settings: CLUSTER_IP"):
        build_config({}, parse_config_yaml("colour: blue", "c.yaml"), "c.yaml")


def test_provider_specific_keys_are_unknown_elsewhere():
    with pytest.raises(ConfigError, match="unknown setting 'AMI'"):
        build_config({}, {"AMI": "ami-0123abcd"}, "c.yaml")


def test_empty_file_means_no_overrides(tmp_path):
    (tmp_path / "empty.yaml").write_text("# nothing\n")
    assert load_config({}, tmp_path / "empty.yaml") == build_config({}, {})


@pytest.mark.parametrize("content", [None, b"\xff\xfe not utf-8"])
def test_unreadable_config_file_is_a_config_error(tmp_path, content):
    path = tmp_path / "cluster.yaml"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError, match="cannot read it") as caught:
        load_config({}, path)
    one_line(caught.value)


# --- the property: any input gives a valid config or a one-line ConfigError -----------------

SETTING_NAMES = sorted(
    ProviderDefaults.load("aws").known_names() | ProviderDefaults.load("gce").known_names()
)
_yaml_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(),
    st.lists(st.integers(), max_size=3),
)
_likely_values = st.sampled_from(
    ["3", "0", "1000", "10.0.0.0/8", "10.244.0.0/14", "us-east1-b", "us-west-2a", "gce", "aws",
     "v1.34.4", "20GB", "15m", "kubernetes", "ami-0123abcd", "t3.medium", "local", "2s"]
)  # fmt: skip


def _check_total(build) -> None:
    try:
        config = build()
    except ConfigError as error:
        one_line(error)
        return
    assert isinstance(config, ClusterConfig)
    assert 1 <= config.num_nodes <= config.max_nodes
    ranges = [config.subnet_range, config.cluster_ip_range, config.service_cluster_ip_range]
    assert not any(a.overlaps(b) for i, a in enumerate(ranges) for b in ranges[i + 1 :])
    names = [config.master_name, *config.node_names, config.master_tag, config.node_tag]
    assert all(re.fullmatch(RFC1035, n) and len(n) <= MAX_NAME for n in names)


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    env=st.dictionaries(
        st.sampled_from(SETTING_NAMES), st.one_of(st.text(max_size=30), _likely_values)
    ),
    file_values=st.dictionaries(
        st.one_of(st.sampled_from(SETTING_NAMES), st.text(max_size=12)),
        st.one_of(_yaml_scalars, _likely_values),
        max_size=4,
    ),
)
def test_any_settings_give_a_config_or_one_line_error(env, file_values):
    _check_total(lambda: build_config(env, {k.upper(): v for k, v in file_values.items()}, "f"))


@settings(max_examples=300, deadline=None, derandomize=True)
@given(text=st.text(max_size=200))
def test_any_yaml_text_gives_a_config_or_one_line_error(text):
    _check_total(lambda: build_config({}, parse_config_yaml(text, "cluster.yaml"), "cluster.yaml"))
