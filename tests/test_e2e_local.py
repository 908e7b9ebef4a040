"""End to end on the real local default: kube-up, kubectl, kube-push, kube-down, nothing left.

One cluster (1 master, 2 nodes) for the whole module, in private state dirs, so a developer's
own kubeconfig and credentials are untouched. It needs root and the release (``make test``
builds it first). The tests run in file order; the last one tears the cluster down and checks
the host is clean, and the fixture tears down again should anything fail before it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster.config import load_config
from cluster.progress import Progress
from cluster.provisioner import make_provider
from cluster.push import ssh_target
from cluster.release.builder import MANIFEST, SALT_TARBALL, ReleaseManifest, write_salt_tarball
from cluster.ssh import connect
from cluster.state import ClusterState
from localcloud.daemon import running
from tests.local_cluster import (
    BRIDGE,
    RELEASE,
    REPO,
    private_cluster_env,
    require_release_and_free_bridge,
)

pytestmark = pytest.mark.e2e

BIN = REPO / ".venv" / "bin"
NODES = ("kubernetes-minion-1", "kubernetes-minion-2")
WEB_POD = """
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  nodeName: kubernetes-minion-1
  containers:
  - name: web
    image: localhost/busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", "echo serving from $(hostname); httpd -f -p 8080 -h /www"]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""

DNS_LOOKUP = "nslookup web.default.svc.cluster.local && wget -q -O - http://web/"


def client_pod(name: str, command: str) -> str:
    """A one-shot busybox pod running ``command`` on the second node (web runs on the first)."""
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeName: kubernetes-minion-2
  restartPolicy: Never
  containers:
  - name: client
    image: localhost/busybox:latest
    imagePullPolicy: Never
    command: ["sh", "-c", {json.dumps(command)}]
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Iterator[dict[str, str]]:
    require_release_and_free_bridge()
    values = private_cluster_env(tmp_path_factory.mktemp("e2e"), nodes=len(NODES))
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield dict(os.environ)
    finally:
        subprocess.run([BIN / "kube-down"], env=dict(os.environ), timeout=600, check=False)
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


@pytest.fixture(scope="module")
def kubectl(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("kubectl")
    with tarfile.open(RELEASE / "kubernetes-server-linux-amd64.tar.gz") as tar:
        member = tar.getmember("kubernetes/server/bin/kubectl")
        tar.extractall(dest, members=[member], filter="data")
    return dest / "kubernetes/server/bin/kubectl"


def run(env: dict[str, str], *cmd: str | Path, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(c) for c in cmd], env=env, capture_output=True, text=True, timeout=timeout
    )


def k(env: dict[str, str], kubectl: Path, *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(
        [str(kubectl), *args], env=env, input=stdin, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def wait_for(what: str, check, timeout: float = 180.0):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout}s"
        time.sleep(2)


def on_vms(names: tuple[str, ...], command: str) -> dict[str, tuple[int, str]]:
    """Run ``command`` as root on VMs over SSH, trusting only their published host keys."""
    config = load_config()
    provider = make_provider(config, Progress())
    cluster_secrets = ClusterState(config.cluster_name).ensure_secrets()
    addresses = provider.node_addresses()
    master = provider.ensure_master_addresses().external_ip
    out = {}
    for name in names:
        address = master if name == config.master_name else addresses[name]
        with connect(ssh_target(provider, cluster_secrets, name, address)) as session:
            result = session.run(command, timeout=60)
        out[name] = (result.exit_status, result.stdout.strip())
    return out


def test_kube_up_brings_up_a_valid_cluster(env):
    proc = run(env, BIN / "kube-up")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Nodes Ready: kubernetes-minion-1, kubernetes-minion-2" in proc.stderr
    assert oct(Path(env["KUBERNETES_AUTH_FILE"]).stat().st_mode & 0o777) == "0o600"
    kubeconfig = Path(env["KUBECONFIG"]).read_text()
    assert "insecure-skip-tls-verify" not in kubeconfig
    assert "certificate-authority-data" in kubeconfig


def test_kubectl_lists_the_ready_nodes(env, kubectl):
    nodes = json.loads(k(env, kubectl, "get", "nodes", "-o", "json"))["items"]
    ready = {
        n["metadata"]["name"]
        for n in nodes
        if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
    }
    assert ready == set(NODES)


def test_a_pod_runs_and_its_log_is_read(env, kubectl):
    k(env, kubectl, "apply", "-f", "-", stdin=WEB_POD)
    wait_for(
        "web pod Running",
        lambda: k(env, kubectl, "get", "pod", "web", "-o", "jsonpath={.status.phase}") == "Running",
    )
    assert "serving from web" in wait_for(
        "web log", lambda: k(env, kubectl, "logs", "web"), timeout=60
    )


def test_a_service_reaches_the_pod_from_another_node(env, kubectl):
    service_ip = k(env, kubectl, "get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}")
    k(
        env,
        kubectl,
        "apply",
        "-f",
        "-",
        stdin=client_pod(
            "client", f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 10 {service_ip} 80"
        ),
    )
    phase = wait_for(
        "client pod finished",
        lambda: (
            k(env, kubectl, "get", "pod", "client", "-o", "jsonpath={.status.phase}")
            in ("Succeeded", "Failed")
            and k(env, kubectl, "get", "pod", "client", "-o", "jsonpath={.status.phase}")
        ),
    )
    assert phase == "Succeeded"
    assert "hello from kube-up" in k(env, kubectl, "logs", "client")


def test_pods_resolve_service_names_through_cluster_dns(env, kubectl):
    wait_for(
        "coredns ready",
        lambda: k(
            env, kubectl, "-n", "kube-system", "get", "deployment", "coredns",
            "-o", "jsonpath={.status.readyReplicas}",
        ) == "1",
    )  # fmt: skip
    dns_ip = k(
        env,
        kubectl,
        "-n",
        "kube-system",
        "get",
        "svc",
        "kube-dns",
        "-o",
        "jsonpath={.spec.clusterIP}",
    )
    assert dns_ip == "10.0.0.10"
    k(env, kubectl, "apply", "-f", "-", stdin=client_pod("dns-client", DNS_LOOKUP))
    wait_for(
        "dns-client pod finished",
        lambda: (
            k(env, kubectl, "get", "pod", "dns-client", "-o", "jsonpath={.status.phase}")
            in ("Succeeded", "Failed")
        ),
    )
    log = k(env, kubectl, "logs", "dns-client")
    service_ip = k(env, kubectl, "get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}")
    assert f"Address: {service_ip}" in log, log
    assert "hello from kube-up" in log, log
    status = k(env, kubectl, "get", "pod", "dns-client", "-o", "jsonpath={.status.phase}")
    assert status == "Succeeded", log


def _release_with_salt_change(tmp_path: Path, extra_state: str) -> Path:
    """A release like _output/release whose salt tree has one more state in base/init.sls."""
    tree = tmp_path / "repo"
    shutil.copytree(REPO / "salt", tree / "salt")
    (tree / "scripts").mkdir()
    shutil.copytree(REPO / "scripts" / "node", tree / "scripts" / "node")
    with (tree / "salt" / "base" / "init.sls").open("a") as sls:
        sls.write("\n" + extra_state)
    out = tmp_path / "release"
    out.mkdir()
    manifest = ReleaseManifest.load(RELEASE / MANIFEST)
    for artifact in manifest.artifacts.values():
        if artifact.file != SALT_TARBALL:
            os.link(RELEASE / artifact.file, out / artifact.file)
    digest = write_salt_tarball(out / SALT_TARBALL, repo=tree)
    manifest.artifacts["salt"] = type(manifest.artifacts["salt"])(SALT_TARBALL, digest)
    (out / MANIFEST).write_text(manifest.to_json())
    return out


def test_kube_push_applies_a_changed_salt_tree(env, tmp_path):
    token = secrets.token_hex(8)
    state = (
        "kube-up-e2e-marker:\n  file.managed:\n    - name: /etc/kube-up-e2e-marker\n"
        f"    - contents: {token}\n"
    )
    release = _release_with_salt_change(tmp_path, state)
    proc = run(env, BIN / "kube-push", "--release-dir", release)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = on_vms(("kubernetes-master", *NODES), "cat /etc/kube-up-e2e-marker")
    assert found == {name: (0, token) for name in ("kubernetes-master", *NODES)}


def test_a_failing_state_stops_kube_push_naming_the_vm_and_state(env, tmp_path):
    broken = "kube-up-e2e-broken:\n  cmd.run:\n    - name: exit 3\n"
    proc = run(env, BIN / "kube-push", "--release-dir", _release_with_salt_change(tmp_path, broken))
    assert proc.returncode == 4, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert "kubernetes-master" in last and "kube-up-e2e-broken" in last
    restored = run(env, BIN / "kube-push")
    assert restored.returncode == 0, restored.stderr[-3000:]


def test_kube_push_can_switch_cluster_dns_off(env, kubectl):
    proc = run({**env, "ENABLE_CLUSTER_DNS": "false"}, BIN / "kube-push")
    assert proc.returncode == 0, proc.stderr[-3000:]
    left = k(env, kubectl, "-n", "kube-system", "get", "deployment,service,configmap",
             "-l", "k8s-app=kube-dns", "-o", "name")  # fmt: skip
    assert left.strip() == ""
    kubelets = on_vms(NODES, "grep -c clusterDNS /var/lib/kubelet/config.yaml")
    assert kubelets == {name: (1, "0") for name in NODES}


def test_kube_down_leaves_nothing_behind(env):
    state_dir = Path(env["LOCALCLOUD_STATE_DIR"])
    proc = run(env, BIN / "kube-down")
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = run(env, BIN / "kube-down", "--dry-run")
    assert "would delete" not in again.stderr
    assert running(state_dir) is None
    assert not Path(f"/sys/class/net/{BRIDGE}").exists()
    assert run(env, "ip", "netns", "list").stdout.strip() == ""
    assert str(state_dir) not in Path("/proc/self/mountinfo").read_text()
    leftovers = [
        p.name
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and str(state_dir).encode() in _cmdline(p)
    ]
    assert leftovers == []
    assert not Path(env["KUBERNETES_AUTH_FILE"]).exists()
    assert "kubernetes" not in Path(env["KUBECONFIG"]).read_text()


def _cmdline(proc_dir: Path) -> bytes:
    try:
        return (proc_dir / "cmdline").read_bytes()
    except OSError:
        return b""
