"""scripts/node/configure-vm.sh in a temporary root against a loopback metadata server and file
server: kube-env, downloads with hash checks and retries, the pod CIDR wait, unpacking, grains
and pillar, and a real masterless salt run (the venv's salt) of a small state tree."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster.kube_env import Artifact, render_kube_env
from cluster.release.builder import write_salt_tarball
from tests.kube_env_samples import sample_inputs
from tests.vm_http_standin import TOKEN, StandIn, serve

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "node" / "configure-vm.sh"
SERVER_BINARIES = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kubelet",
    "kube-proxy",
    "etcd",
    "etcdctl",
]
# A stand-in for the real state tree: records what salt saw, fails on request.
PROBE_TOP = """base:
  'roles:kubernetes-master':
    - match: grain
    - probe
  'roles:kubernetes-pool':
    - match: grain
    - probe
"""
PROBE_SLS = """probe-result:
  file.managed:
    - name: {{ opts['root_dir'] }}/probe.txt
    - contents: "{{ grains['roles'][0] }} {{ grains.get('cbr-cidr', '-') }} \\
{{ grains.get('node_ip', '-') }} {{ pillar['CLUSTER_NAME'] }} VERSION"
"""
BROKEN_SLS = """
probe-broken:
  cmd.run:
    - name: "false"
    - require:
      - file: probe-result
"""


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _salt_tar(tmp: Path, version: str, broken: bool = False) -> bytes:
    """The salt tarball as the release builder packs it, around the probe state tree."""
    repo = tmp / f"repo-{version}-{'broken' if broken else 'ok'}"
    (repo / "salt" / "probe").mkdir(parents=True)
    (repo / "scripts" / "node").mkdir(parents=True)
    (repo / "salt" / "top.sls").write_text(PROBE_TOP)
    sls = PROBE_SLS.replace("VERSION", version) + (BROKEN_SLS if broken else "")
    (repo / "salt" / "probe" / "init.sls").write_text(sls)
    (repo / "scripts" / "node" / "configure-vm.sh").write_bytes(SCRIPT.read_bytes())
    (repo / "scripts" / "node" / "configure-vm.sh").chmod(0o755)
    dest = repo / "salt.tar.gz"
    write_salt_tarball(dest, repo)
    return dest.read_bytes()


class Cluster:
    """A stand-in cloud for one VM: the files it downloads and its metadata."""

    names = {
        "server_binary_tar": "kubernetes-server-linux-amd64.tar.gz",
        "salt_tar": "kubernetes-salt.tar.gz",
        "salt_runtime_tar": "salt-runtime-py3.11-linux-amd64.tar.gz",
        "node_images_tar": "kubernetes-node-images.tar.gz",
    }

    def __init__(self, standin: StandIn, tmp: Path) -> None:
        self.standin = standin
        self.tmp = tmp
        self.root = tmp / "root"
        self.root.mkdir()
        self.master_pd = tmp / "master-pd"
        self.master_pd.mkdir()
        self.prefix = {key: "files" for key in self.names}
        self.content = {
            "server_binary_tar": _tar_gz(
                {
                    f"kubernetes/server/bin/{b}": f"#!/bin/sh\necho {b}\n".encode()
                    for b in SERVER_BINARIES
                }
            ),
            "salt_tar": _salt_tar(tmp, "v1"),
            "salt_runtime_tar": _tar_gz({"salt-runtime/README": b"salt goes here\n"}),
            "node_images_tar": _tar_gz(
                {"images/pause.oci.tar": b"pause image", "images/busybox.oci.tar": b"busybox image"}
            ),
        }

    def publish(self, role: str, served: dict[str, bytes] | None = None) -> None:
        """Serve the artifacts (``served`` overrides bytes, not hashes) and set kube-env."""
        artifacts = {}
        for key, name in self.names.items():
            data = self.content[key]
            self.standin.files[name] = (served or {}).get(key, data)
            url = self.standin.url(self.prefix[key], name)
            artifacts[key] = Artifact(url, hashlib.sha256(data).hexdigest())
        inputs = sample_inputs(master_pd_device=str(self.master_pd), **artifacts)
        self.standin.set_attribute("kube-env", render_kube_env(inputs, role))

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            "PATH": os.environ["PATH"],
            "KUBE_ROOT": str(self.root),
            "KUBE_METADATA_URL": self.standin.metadata_url,
            "KUBE_GCS_URL_PREFIX": self.standin.url("gcs", ""),
            "KUBE_PYTHON": sys.executable,
            "KUBE_CURL_RETRY_DELAY": "1",
            "KUBE_ENV_TIMEOUT": "5",
            "KUBE_POD_CIDR_TIMEOUT": "10",
            "KUBE_POD_CIDR_POLL": "5",
        }
        env.update(extra)
        return env

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """Run the script as a VM would (``main``)."""
        return subprocess.run(
            ["bash", str(SCRIPT), *args],
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    def call(self, commands: str, **env: str) -> subprocess.CompletedProcess[str]:
        """Source the script and run ``commands`` (its functions) in the same shell."""
        return subprocess.run(
            ["bash", "-c", f'source "{SCRIPT}"\n{commands}'],
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def downloads(self) -> list[str]:
        return [r.path for r in self.standin.requests if r.path.startswith(("/files/", "/gcs/"))]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with serve() as standin:
        yield Cluster(standin, tmp_path)


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_node_boot_then_push(cluster: Cluster) -> None:
    cluster.publish("node")
    cluster.standin.set_attribute("pod-cidr", "10.244.3.0/24")
    proc = cluster.run()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "kube-up: node configuration done" in proc.stdout
    for step in ("read-kube-env", "wait-pod-cidr", "download", "unpack", "highstate"):
        assert f"kube-up: {step} ..." in proc.stdout
    root = cluster.root
    # Salt ran with the grains and pillar the script wrote.
    assert (
        root / "probe.txt"
    ).read_text().strip() == "kubernetes-pool 10.244.3.0/24 10.40.0.7 kubernetes v1"
    grains = (root / "etc/kube-salt/grains").read_text()
    assert "roles:\n  - kubernetes-pool" in grains
    assert "dns_upstream: false" in grains  # this VM has no resolv.conf nameserver
    bins = root / "opt/kubernetes/server/bin"
    assert sorted(p.name for p in bins.iterdir()) == ["kube-proxy", "kubectl", "kubelet"]
    assert (root / "srv/salt/probe/init.sls").exists()
    assert os.access(root / "opt/kube-salt/scripts/configure-vm.sh", os.X_OK)
    assert (root / "opt/kube-salt/salt-runtime/README").exists()
    assert (root / "opt/kubernetes/images/pause.oci.tar").read_bytes() == b"pause image"
    # kube-env holds keys: pillar and the downloaded copy are root-only.
    assert _mode(root / "srv/pillar") == 0o700
    assert _mode(root / "srv/pillar/kube-env.sls") == 0o600
    assert _mode(root / "var/cache/kubernetes-install") == 0o700
    assert _mode(root / "var/cache/kubernetes-install/kube-env.yaml") == 0o600
    assert "state.highstate" not in proc.stdout  # salt's output goes to the log
    assert len(cluster.downloads()) == 4

    # kube-push with nothing changed downloads nothing and re-applies.
    (root / "probe.txt").unlink()
    proc = cluster.run("--push")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "node configuration starting (push)" in proc.stdout
    assert len(cluster.downloads()) == 4
    assert (root / "probe.txt").exists()

    # A new salt tree: only it is fetched again, and highstate applies it.
    cluster.content["salt_tar"] = _salt_tar(cluster.tmp, "v2")
    cluster.publish("node")
    proc = cluster.run("--push")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert cluster.downloads()[4:] == ["/files/kubernetes-salt.tar.gz"]
    assert (root / "probe.txt").read_text().strip().endswith("kubernetes v2")


def test_master_boot_uses_the_disk_directory(cluster: Cluster) -> None:
    cluster.publish("master")
    (cluster.root / "etc").mkdir(parents=True, exist_ok=True)
    (cluster.root / "etc/resolv.conf").write_text("search internal\nnameserver 169.254.169.254\n")
    proc = cluster.run()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    root = cluster.root
    assert (root / "mnt/master-pd").resolve() == cluster.master_pd
    assert _mode(cluster.master_pd / "var/etcd") == 0o700
    bins = sorted(p.name for p in (root / "opt/kubernetes/server/bin").iterdir())
    assert bins == sorted(
        [
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kubectl",
            "etcd",
            "etcdctl",
        ]
    )
    assert "kubernetes-node-images.tar.gz" not in " ".join(cluster.downloads())
    assert (root / "probe.txt").read_text().startswith("kubernetes-master - 10.40.0.7 ")
    assert "dns_upstream: true" in (root / "etc/kube-salt/grains").read_text()
    # Re-running keeps the same disk link (idempotent).
    assert cluster.run("--push").returncode == 0
    assert (root / "mnt/master-pd").resolve() == cluster.master_pd


def test_corrupt_artifact_fails_and_leaves_nothing(cluster: Cluster) -> None:
    truncated = cluster.content["server_binary_tar"][:100]
    cluster.publish("node", served={"server_binary_tar": truncated})
    cluster.standin.set_attribute("pod-cidr", "10.244.3.0/24")
    proc = cluster.run()
    assert proc.returncode != 0
    want = hashlib.sha256(cluster.content["server_binary_tar"]).hexdigest()
    got = hashlib.sha256(truncated).hexdigest()
    assert (
        f"kube-up: error: kubernetes-server-linux-amd64.tar.gz has sha256 {got}, "
        f"kube-env expects {want}" in proc.stderr
    )
    assert proc.stdout.rstrip().endswith("kube-up: FAILED at download")
    install = cluster.root / "var/cache/kubernetes-install"
    assert not list(install.glob("kubernetes-server*"))
    assert not (cluster.root / "opt/kubernetes").exists()
    assert not (cluster.root / "srv/salt").exists()


def test_download_retries_transient_errors(cluster: Cluster) -> None:
    cluster.publish("node")
    cluster.standin.failures["kubernetes-salt.tar.gz"] = 2
    proc = cluster.call("read-kube-env && download-artifact SALT_TAR")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert cluster.downloads() == ["/files/kubernetes-salt.tar.gz"] * 3
    saved = cluster.root / "var/cache/kubernetes-install/kubernetes-salt.tar.gz"
    assert saved.read_bytes() == cluster.content["salt_tar"]


def test_gcs_urls_get_the_service_account_token(cluster: Cluster) -> None:
    cluster.prefix["server_binary_tar"] = "gcs"
    cluster.publish("node")
    proc = cluster.call("read-kube-env && download-artifacts")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    gcs = cluster.standin.requests_for("/gcs/kubernetes-server-linux-amd64.tar.gz")
    assert [r.headers.get("Authorization") for r in gcs] == [f"Bearer {TOKEN}"]
    plain = [r for r in cluster.standin.requests if r.path.startswith("/files/")]
    assert plain and all("Authorization" not in r.headers for r in plain)
    assert TOKEN not in proc.stdout + proc.stderr


def test_pod_cidr_wait_blocks_on_metadata_changes(cluster: Cluster) -> None:
    cluster.publish("node")
    timer = threading.Timer(1.0, cluster.standin.set_attribute, ("pod-cidr", "10.244.9.0/24"))
    timer.start()
    try:
        proc = cluster.call('wait-pod-cidr && echo "got ${POD_CIDR}"')
    finally:
        timer.cancel()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "got 10.244.9.0/24" in proc.stdout
    waits = [
        r
        for r in cluster.standin.requests_for("/computeMetadata/v1/instance/attributes/")
        if r.query.get("wait_for_change") == ["true"]
    ]
    assert waits and all(r.headers.get("Metadata-Flavor") == "Google" for r in waits)


def test_a_node_from_a_shared_template_finds_its_pod_cidr_in_the_map(cluster: Cluster) -> None:
    cluster.standin.set_attribute("pod-cidrs", "node-1 10.244.1.0/24\nnode-2 10.244.2.0/24\n")
    proc = cluster.call('wait-pod-cidr && echo "got ${POD_CIDR}"')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "got 10.244.2.0/24" in proc.stdout
    cluster.standin.set_attribute("pod-cidr", "10.244.7.0/24")  # its own attribute wins
    assert "got 10.244.7.0/24" in cluster.call('wait-pod-cidr && echo "got ${POD_CIDR}"').stdout


def test_pod_cidr_wait_times_out_clearly(cluster: Cluster) -> None:
    proc = cluster.call("wait-pod-cidr", KUBE_POD_CIDR_TIMEOUT="1", KUBE_POD_CIDR_POLL="1")
    assert proc.returncode != 0
    assert "kube-up: error: no pod-cidr in the instance metadata after 1s" in proc.stderr


def test_bad_pod_cidr_is_refused(cluster: Cluster) -> None:
    cluster.standin.set_attribute("pod-cidr", "10.244.3.0/24; rm -rf /")
    proc = cluster.call("wait-pod-cidr")
    assert proc.returncode != 0
    assert "is not an IPv4 CIDR" in proc.stderr


def test_kube_env_parsing(cluster: Cluster, tmp_path: Path) -> None:
    env = tmp_path / "kube-env"
    env.write_text("CLUSTER_NAME: 'it''s'\nCA_CERT: 'abc='\n\nEMPTY: ''\n")
    proc = cluster.call(
        f'parse-kube-env "{env}"; printf "%s|%s|%s|%s" "${{KUBE_ENV[CLUSTER_NAME]}}" '
        '"${KUBE_ENV[CA_CERT]}" "${KUBE_ENV[EMPTY]}" "${#KUBE_ENV[@]}"'
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "it's|abc=||3"


@pytest.mark.parametrize(
    "text",
    ["CLUSTER_NAME: kubernetes\n", "cluster_name: 'x'\n", "A: 'x'; touch /tmp/y\n", "A: 'it's'\n"],
)
def test_malformed_kube_env_is_refused(cluster: Cluster, text: str) -> None:
    cluster.standin.set_attribute("kube-env", text)
    proc = cluster.run()
    assert proc.returncode != 0
    assert "kube-up: error: kube-env line 1 is not KEY: 'value'" in proc.stderr
    assert "kube-up: FAILED at read-kube-env" in proc.stdout


def test_missing_kube_env_times_out(cluster: Cluster) -> None:
    proc = cluster.run(KUBE_ENV_TIMEOUT="0")
    assert proc.returncode != 0
    assert "kube-up: error: no kube-env in the instance metadata after 0s" in proc.stderr
    assert "kube-up: FAILED at read-kube-env" in proc.stdout


def test_failed_state_is_named_with_the_exit_status(cluster: Cluster) -> None:
    cluster.content["salt_tar"] = _salt_tar(cluster.tmp, "v1", broken=True)
    cluster.publish("master")
    proc = cluster.run("--push")
    assert proc.returncode != 0
    assert "kube-up: state failed: probe-broken (cmd.run)" in proc.stdout
    assert "kube-up: FAILED at highstate" in proc.stdout
    assert "salt highstate exited 2" in proc.stderr
    log = cluster.root / "var/log/kube-salt"
    assert _mode(log) == 0o700 and (log / "highstate.json").exists()


def test_master_block_device_is_formatted_once_and_mounted(cluster: Cluster) -> None:
    """GCE's master disk is a block device: a loop device here, mounted in a private mount
    namespace so nothing outlives the test."""
    image = cluster.tmp / "master-pd.img"
    with image.open("wb") as f:
        f.truncate(64 << 20)
    attach = subprocess.run(
        ["losetup", "--find", "--show", str(image)], capture_output=True, text=True, check=True
    )
    device = attach.stdout.strip()
    script = (
        f'source "{SCRIPT}"\nKUBE_ENV[MASTER_PD_DEVICE]={device}\n'
        'mount-master-pd && findmnt -n -o SOURCE,FSTYPE "${MASTER_PD_MOUNT}" '
        '&& stat -c %a "${MASTER_PD_MOUNT}/var/etcd"'
    )
    try:
        runs = [
            subprocess.run(
                ["unshare", "--mount", "bash", "-c", script],
                env=cluster.env(),
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            for _ in range(2)
        ]
    finally:
        subprocess.run(["losetup", "--detach", device], check=True)
    first, second = runs
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"kube-up: formatting {device} (first boot)" in first.stdout
    assert first.stdout.splitlines()[-2:] == [f"{device} ext4", "700"]
    # The next boot finds the filesystem and keeps its data.
    assert second.returncode == 0, second.stdout + second.stderr
    assert "formatting" not in second.stdout
    assert second.stdout.splitlines()[-2:] == [f"{device} ext4", "700"]
