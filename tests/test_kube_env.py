"""kube-env rendering: golden output per role, secrets only where used, clear errors."""

from __future__ import annotations

import base64
import dataclasses
import os
from pathlib import Path

import pytest
import yaml

from cluster.kube_env import KubeEnvError, kube_env_pairs, render_kube_env
from tests.kube_env_samples import artifact, cert_pem, master_secrets, node_secrets, sample_inputs

GOLDEN = Path(__file__).parent / "golden"
MASTER_SECRET_KEYS = {
    "APISERVER_KEY",
    "SERVICE_ACCOUNT_KEY",
    "KUBECFG_KEY",
    "CONTROLLER_MANAGER_KEY",
    "SCHEDULER_KEY",
    "APISERVER_KUBELET_CLIENT_KEY",
    "FRONT_PROXY_CLIENT_KEY",
    "KUBE_HTPASSWD",
}


def check_golden(name: str, text: str) -> None:
    """Compare with tests/golden/NAME; UPDATE_GOLDEN=1 rewrites it instead."""
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.read_text() == text, f"{name} differs from the golden file (UPDATE_GOLDEN=1)"


@pytest.mark.parametrize("role", ["master", "node"])
def test_golden(role: str) -> None:
    check_golden(f"kube-env-{role}.yaml", render_kube_env(sample_inputs(), role))


@pytest.mark.parametrize("role", ["master", "node"])
def test_yaml_round_trip(role: str) -> None:
    inputs = sample_inputs(cluster_name="it's-a-cluster")
    parsed = yaml.safe_load(render_kube_env(inputs, role))
    assert parsed == dict(kube_env_pairs(inputs, role))
    assert all(isinstance(v, str) for v in parsed.values())
    assert parsed["CLUSTER_NAME"] == "it's-a-cluster"
    assert parsed["KUBERNETES_MASTER"] == ("true" if role == "master" else "false")
    assert base64.b64decode(parsed["CA_CERT"]) == inputs.ca_cert


def test_node_holds_no_master_secret() -> None:
    inputs = sample_inputs()
    node = yaml.safe_load(render_kube_env(inputs, "node"))
    master = yaml.safe_load(render_kube_env(inputs, "master"))
    assert set(master) >= MASTER_SECRET_KEYS
    assert not MASTER_SECRET_KEYS & set(node)
    node_text = render_kube_env(inputs, "node")
    secrets = master_secrets()
    for field in dataclasses.fields(secrets):
        value = getattr(secrets, field.name)
        raw = value.encode() if isinstance(value, str) else value
        if field.name.endswith(("_key", "htpasswd")):
            assert base64.b64encode(raw).decode() not in node_text, field.name
            assert raw.decode() not in node_text, field.name


def test_master_holds_no_node_key() -> None:
    master = yaml.safe_load(render_kube_env(sample_inputs(), "master"))
    assert not {"KUBELET_KEY", "KUBE_PROXY_KEY"} & set(master)


def test_node_renders_without_master_secrets() -> None:
    text = render_kube_env(sample_inputs(master=None), "node")
    assert "KUBELET_CERT" in text


def _replace_master(**changes: object):
    return sample_inputs(master=dataclasses.replace(master_secrets(), **changes))


def _replace_node(**changes: object):
    return sample_inputs(node=dataclasses.replace(node_secrets(), **changes))


@pytest.mark.parametrize(
    ("role", "inputs", "message"),
    [
        ("worker", sample_inputs(), "role 'worker' is not one of master, node"),
        ("master", sample_inputs(master=None), "the master role needs MasterSecrets"),
        ("node", sample_inputs(node=None), "the node role needs NodeSecrets"),
        ("node", _replace_node(kubelet_cert=cert_pem("k", "node-1")), "needs CN='kubelet'"),
        (
            "node",
            _replace_node(kube_proxy_cert=cert_pem("p", "kube-proxy")),
            "needs CN='system:kube-proxy'",
        ),
        (
            "master",
            _replace_master(kubecfg_cert=cert_pem("a", "admin")),
            "KUBECFG_CERT has O=[], it needs O='system:masters'",
        ),
        (
            "master",
            _replace_master(scheduler_cert=cert_pem("s", "scheduler")),
            "SCHEDULER_CERT has CN='scheduler'",
        ),
        ("master", _replace_master(htpasswd="admin:secret password"), "one htpasswd line"),
        ("master", _replace_master(htpasswd="root:$6$x$y"), "one htpasswd line"),
        ("node", sample_inputs(ca_cert=b"not a cert"), "CA_CERT is not a PEM certificate"),
        ("node", sample_inputs(master_internal_ip="master"), "KUBERNETES_MASTER_IP 'master'"),
        ("node", sample_inputs(cluster_ip_range="10.244.0.0"), "CLUSTER_IP_RANGE '10.244.0.0'"),
        (
            "node",
            sample_inputs(salt_tar=dataclasses.replace(artifact("s.tgz"), sha256="abc")),
            "SALT_TAR_HASH 'abc' must be a sha256",
        ),
        (
            "node",
            sample_inputs(salt_tar=artifact("s.tgz", base="gs://bucket")),
            "SALT_TAR_URL 'gs://bucket/s.tgz' must be an http(s) URL",
        ),
        ("node", sample_inputs(cluster_name="a\nb"), "CLUSTER_NAME holds a control character"),
        ("node", sample_inputs(dns_server_ip="10.1.0.10"), "DNS_SERVER_IP '10.1.0.10' is not"),
        ("master", sample_inputs(dns_server_ip="10.0.0.1"), "DNS_SERVER_IP '10.0.0.1' is not"),
        ("node", sample_inputs(dns_server_ip="dns"), "DNS_SERVER_IP 'dns' is not"),
    ],
)
def test_bad_inputs_name_the_problem(role: str, inputs, message: str) -> None:
    with pytest.raises(KubeEnvError) as err:
        render_kube_env(inputs, role)
    assert message in str(err.value)
    assert "\n" not in str(err.value)
