"""The salt tree compiled by the real salt for each role, with the sample cluster's kube-env as
pillar: which states exist, how they are ordered, and what the daemons are told."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.kube_env_samples import master_secrets, node_secrets, sample_inputs
from tests.salt_harness import State, exec_start, role_config, salt_call, show_highstate
from tests.test_kube_env import check_golden


@pytest.fixture(scope="module")
def master(tmp_path_factory: pytest.TempPathFactory) -> dict[str, State]:
    return show_highstate(role_config(tmp_path_factory.mktemp("master"), "master"))


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> dict[str, State]:
    return show_highstate(role_config(tmp_path_factory.mktemp("node"), "node"))


def _golden_view(states: dict[str, State]) -> str:
    """Everything but secret contents, as YAML, for the golden file."""
    view = {}
    for state_id, state in states.items():
        args = dict(state.args)
        if state_id.startswith("kube-pki-") or state_id == "nginx-htpasswd":
            args["contents"] = "<from kube-env>"
        view[state_id] = {"function": state.fun, "sls": state.sls, **args}
    return yaml.dump(view, Dumper=_BlockDumper, sort_keys=False, width=100)


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (rendered files) as literal blocks, readable in a diff."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _represent_str)


def _unit_args(state: State) -> list[str]:
    return exec_start(state)[1:]


@pytest.mark.parametrize("role", ["master", "node"])
def test_golden(role: str, request: pytest.FixtureRequest) -> None:
    states = request.getfixturevalue(role)
    check_golden(f"salt-highstate-{role}.yaml", _golden_view(states))


def test_master_states(master: dict[str, State]) -> None:
    services = {sid for sid, s in master.items() if s.fun == "service.running"}
    assert services == {
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "nginx",
    }
    assert not {"kubelet", "containerd", "kube-proxy"} & set(master)
    assert master["kube-rbac-bindings"].fun == "cmd.run"


def test_node_states(node: dict[str, State]) -> None:
    services = {sid for sid, s in node.items() if s.fun == "service.running"}
    assert services == {"containerd", "kubelet", "kube-proxy"}
    assert not {"etcd", "kube-apiserver", "nginx"} & set(node)


def test_pki_files_come_from_kube_env(master: dict[str, State], node: dict[str, State]) -> None:
    secrets = master_secrets()
    key = master["kube-pki-apiserver.key"].args
    assert key["contents"] == secrets.apiserver_key.decode()
    assert key["mode"] == "0600" and key["show_changes"] is False
    assert master["kube-pki-ca.crt"].args["contents"] == sample_inputs().ca_cert.decode()
    assert node["kube-pki-kubelet.key"].args["contents"] == node_secrets().kubelet_key.decode()
    keys = [s for sid, s in master.items() if sid.startswith("kube-pki-") and sid.endswith(".key")]
    assert len(keys) == 7 and all(s.args["mode"] == "0600" for s in keys)
    # A node never gets master material.
    assert not [sid for sid in node if "apiserver" in sid or "kubecfg" in sid]


def test_etcd_listens_on_loopback_on_the_master_disk(master: dict[str, State]) -> None:
    args = _unit_args(master["etcd-unit"])
    urls = [a for a in args if "-urls=" in a]
    assert urls and all("//127.0.0.1:" in a for a in urls)
    assert "--data-dir=/mnt/master-pd/var/etcd" in args
    assert "User=etcd" in str(master["etcd-unit"].args["contents"])
    assert master["etcd-data-dir"].args["mode"] == "0700"


def test_apiserver_flags(master: dict[str, State]) -> None:
    args = _unit_args(master["kube-apiserver-unit"])
    for flag in [
        "--etcd-servers=http://127.0.0.1:2379",
        "--advertise-address=10.40.0.2",
        "--secure-port=6443",
        "--anonymous-auth=false",
        "--authorization-mode=Node,RBAC",
        "--service-cluster-ip-range=10.0.0.0/16",
        "--client-ca-file=/srv/kubernetes/ca.crt",
        "--requestheader-client-ca-file=/srv/kubernetes/front-proxy-ca.crt",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--kubelet-client-certificate=/srv/kubernetes/apiserver-kubelet-client.crt",
    ]:
        assert flag in args
    # Extra headers are not trusted: nginx cannot strip a whole header prefix.
    assert not [a for a in args if a.startswith("--requestheader-extra-headers-prefix")]
    service = master["kube-apiserver"].args
    assert {"service": "etcd"} in service["require"]
    assert {"file": "kube-binary-kube-apiserver"} in service["watch"]
    assert {"file": "kube-pki-apiserver.key"} in service["watch"]


def test_controller_manager_and_scheduler(master: dict[str, State]) -> None:
    kcm = _unit_args(master["kube-controller-manager-unit"])
    assert "--allocate-node-cidrs=false" in kcm
    assert "--service-account-private-key-file=/srv/kubernetes/service-account.key" in kcm
    config = yaml.safe_load(str(master["kube-controller-manager-kubeconfig"].args["contents"]))
    assert config["clusters"][0]["cluster"]["server"] == "https://10.40.0.2:6443"
    assert config["users"][0]["user"]["client-key"] == "/srv/kubernetes/kube-controller-manager.key"
    assert "--bind-address=127.0.0.1" in _unit_args(master["kube-scheduler-unit"])
    for daemon in ("kube-controller-manager", "kube-scheduler"):
        assert {"service": "kube-apiserver"} in master[daemon].args["require"]


def test_nginx_site(master: dict[str, State]) -> None:
    site = str(master["nginx-site"].args["contents"])
    for directive in [
        "listen 443 ssl;",
        "ssl_certificate /srv/kubernetes/apiserver.crt;",
        "ssl_client_certificate /srv/kubernetes/ca.crt;",
        "ssl_verify_client optional;",
        "auth_basic $kube_auth_realm;",
        "auth_basic_user_file /etc/nginx/kube-htpasswd;",
        "proxy_pass https://127.0.0.1:6443;",
        "proxy_ssl_certificate /srv/kubernetes/front-proxy-client.crt;",
        "proxy_set_header X-Remote-User $kube_user;",
        'proxy_set_header Authorization "";',
        "proxy_buffering off;",
        "proxy_set_header Upgrade $http_upgrade;",
    ]:
        assert directive in site
    htpasswd = master["nginx-htpasswd"].args
    assert htpasswd["contents"] == master_secrets().htpasswd + "\n"
    assert htpasswd["group"] == "www-data" and htpasswd["mode"] == "0640"
    assert master["nginx"].args["reload"] is True


def test_rbac_binds_kubelet_after_apiserver_answers(master: dict[str, State]) -> None:
    binding = yaml.safe_load(str(master["kube-rbac-manifest"].args["contents"]))
    assert binding["kind"] == "ClusterRoleBinding"
    assert binding["roleRef"]["name"] == "system:node"
    assert binding["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "kubelet"}
    ]
    assert "/readyz" in str(master["kube-apiserver-ready"].args["name"])
    assert {"cmd": "kube-apiserver-ready"} in master["kube-rbac-bindings"].args["require"]
    admin = yaml.safe_load(str(master["kube-admin-kubeconfig"].args["contents"]))
    assert admin["users"][0]["user"]["client-certificate"] == "/srv/kubernetes/kubecfg.crt"


def test_containerd_config(node: dict[str, State]) -> None:
    config = tomllib.loads(str(node["containerd-config"].args["contents"]))
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["sandbox_image"] == "registry.k8s.io/pause:3.10"
    assert cri["containerd"]["snapshotter"] in ("overlayfs", "native")
    assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is False
    assert cri["cni"]["bin_dir"] in ("/usr/lib/cni", "/opt/cni/bin")
    assert {"file": "containerd-config"} in node["containerd"].args["watch"]


def test_cni_config_uses_the_pod_cidr_grain(node: dict[str, State]) -> None:
    conflist = json.loads(str(node["cni-bridge-config"].args["contents"]))
    bridge = conflist["plugins"][0]
    assert bridge["type"] == "bridge" and bridge["bridge"] == "cbr0"
    assert bridge["ipam"]["type"] == "host-local"
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.244.3.0/24"}]]
    assert json.loads(str(node["cni-loopback-config"].args["contents"]))["type"] == "loopback"
    masquerade = node["cni-pod-egress-masquerade"].args
    assert masquerade["source"] == "10.244.3.0/24"
    assert masquerade["destination"] == "! 10.244.0.0/16"
    # Only per-network-namespace kernel settings.
    sysctls = {s.args["name"] for s in node.values() if s.fun == "sysctl.present"}
    assert sysctls == {"net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables"}


def test_images_imported_once_per_content(node: dict[str, State]) -> None:
    imports = {
        sid: s for sid, s in node.items() if sid.startswith("node-image-") and s.fun == "cmd.run"
    }
    assert set(imports) == {
        "node-image-registry.k8s.io/pause:3.10",
        "node-image-localhost/busybox:latest",
        "node-image-registry.k8s.io/coredns/coredns:v1.13.1",
    }
    for state in imports.values():
        assert str(state.args["name"]).startswith("ctr -n k8s.io images import")
        assert "image-current.sh" in str(state.args["unless"])
    for image in imports:
        assert {"cmd": image} in node["kubelet"].args["require"]


def _dns_addon(master: dict[str, State]) -> dict[str, dict]:
    """The objects of the CoreDNS manifest the master applies, by kind."""
    listed = yaml.safe_load(str(master["kube-dns-manifest"].args["contents"]))
    return {item["kind"]: item for item in listed["items"]}


def test_cluster_dns_addon_serves_the_cluster_domain_at_the_dns_ip(
    master: dict[str, State], node: dict[str, State]
) -> None:
    addon = _dns_addon(master)
    assert addon["Service"]["spec"]["clusterIP"] == "10.0.0.10"
    assert {p["port"] for p in addon["Service"]["spec"]["ports"]} == {53, 9153}
    pod = addon["Deployment"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "registry.k8s.io/coredns/coredns:v1.13.1"
    assert pod["serviceAccountName"] == addon["ServiceAccount"]["metadata"]["name"]
    corefile = addon["ConfigMap"]["data"]["Corefile"]
    assert "kubernetes cluster.local in-addr.arpa" in corefile
    assert "forward" not in corefile  # the master's grains name no upstream resolver
    assert master["kube-dns"].args["require"] == [
        {"cmd": "kube-apiserver-ready"},
        {"file": "kube-dns-manifest"},
    ]
    kubelet = yaml.safe_load(str(node["kubelet-config"].args["contents"]))
    assert kubelet["clusterDNS"] == ["10.0.0.10"]
    assert kubelet["clusterDomain"] == "cluster.local"


def test_cluster_dns_forwards_outside_names_only_to_a_resolver_the_vm_has(
    tmp_path: Path,
) -> None:
    master = show_highstate(role_config(tmp_path, "master", dns_upstream=True))
    assert "forward . /etc/resolv.conf" in _dns_addon(master)["ConfigMap"]["data"]["Corefile"]


def test_cluster_dns_follows_its_settings_and_can_be_switched_off(tmp_path: Path) -> None:
    changes = {"dns_domain": "corp.example", "dns_server_ip": "10.0.0.53"}
    master = show_highstate(role_config(tmp_path / "m", "master", changes))
    addon = _dns_addon(master)
    assert addon["Service"]["spec"]["clusterIP"] == "10.0.0.53"
    assert "kubernetes corp.example in-addr.arpa" in addon["ConfigMap"]["data"]["Corefile"]
    off = {"enable_cluster_dns": False}
    master = show_highstate(role_config(tmp_path / "off-m", "master", off))
    node = show_highstate(role_config(tmp_path / "off-n", "node", off))
    assert "kube-dns-manifest" not in master
    assert "delete" in str(master["kube-dns-absent"].args["name"])
    assert "clusterDNS" not in yaml.safe_load(str(node["kubelet-config"].args["contents"]))
    assert not any("coredns" in state_id for state_id in node)


def test_kubelet(node: dict[str, State]) -> None:
    config = yaml.safe_load(str(node["kubelet-config"].args["contents"]))
    assert config["kind"] == "KubeletConfiguration"
    assert config["cgroupDriver"] == "cgroupfs"
    assert config["failCgroupV1"] is False
    assert config["failSwapOn"] is False
    assert config["authentication"]["anonymous"]["enabled"] is False
    assert config["authentication"]["webhook"]["enabled"] is True
    assert config["authentication"]["x509"]["clientCAFile"] == "/srv/kubernetes/ca.crt"
    assert config["authorization"]["mode"] == "Webhook"
    assert config["readOnlyPort"] == 0
    kubeconfig = yaml.safe_load(str(node["kubelet-kubeconfig"].args["contents"]))
    assert kubeconfig["clusters"][0]["cluster"]["server"] == "https://10.40.0.2:443"
    assert kubeconfig["users"][0]["user"]["client-certificate"] == "/srv/kubernetes/kubelet.crt"
    args = _unit_args(node["kubelet-unit"])
    assert "--node-ip=10.40.0.7" in args
    assert {"service": "containerd"} in node["kubelet"].args["require"]
    assert {"file": "kubelet-config"} in node["kubelet"].args["watch"]


def test_kube_proxy(node: dict[str, State]) -> None:
    config = yaml.safe_load(str(node["kube-proxy-config"].args["contents"]))
    assert config["mode"] == "iptables"
    assert config["clusterCIDR"] == "10.244.0.0/16"
    assert config["conntrack"]["maxPerCore"] == 0 and config["conntrack"]["min"] == 0
    kubeconfig = yaml.safe_load(str(node["kube-proxy-kubeconfig"].args["contents"]))
    assert kubeconfig["users"][0]["user"]["client-key"] == "/srv/kubernetes/kube-proxy.key"


def test_packages_are_installed_only_when_missing(node: dict[str, State]) -> None:
    packages = node["kube-packages"].args
    assert {"containerd", "runc", "containernetworking-plugins"} <= set(packages["pkgs"])
    assert packages["refresh"] is True


def test_node_without_pod_cidr_grain_fails_clearly(tmp_path: Path) -> None:
    proc = salt_call(role_config(tmp_path, "node", **{"cbr-cidr": None}), "state.show_highstate")
    assert proc.returncode != 0
    assert "grain cbr-cidr (the pod CIDR of this node) is not set" in proc.stdout + proc.stderr


def test_missing_kube_env_key_is_named(tmp_path: Path) -> None:
    conf = role_config(tmp_path, "node")
    pillar = tmp_path / "pillar" / "kube-env.sls"
    pillar.write_text("".join(
        line for line in pillar.read_text().splitlines(keepends=True)
        if not line.startswith("KUBELET_KEY:")
    ))  # fmt: skip
    proc = salt_call(conf, "state.show_highstate")
    assert proc.returncode != 0
    assert "kube-env lacks KUBELET_KEY for the node role" in proc.stdout + proc.stderr
