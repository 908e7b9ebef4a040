"""On a real local cluster: a killed kube-up finished by a re-run, then what only real machines
can show — the apiserver's answers, the ports open from outside, masterless salt, host key
checking, secrets on the VMs — then a killed kube-push and a killed kube-down, each finished.

One cluster (1 master, 2 nodes) for the module, in private state dirs, brought up the hard way:
``kube-up`` is SIGKILLed as soon as the cloud has been asked for the master VM (watched through
localcloud's per-method call counters, no hook in the product), and a second ``kube-up`` must
take it to Ready. Tests run in file order; the last tears the cluster down through a killed
kube-down and checks the host is clean, and the fixture tears down again if anything failed
before. Like tests/test_e2e_local.py it refuses to start while a local cluster is up.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from cluster.config import load_config
from cluster.pki import CertKey, issue, new_ca, new_ssh_keypair
from cluster.progress import Progress
from cluster.provisioner import make_provider
from cluster.push import ssh_target
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
from tests.reliability_cloud import metadata_items, private_mode_problems
from tests.reliability_secrets import (
    MASTER_KEYS,
    NODE_KEYS,
    cluster_secrets,
    command_lines,
    found_in,
    leaks_in_files,
    watching_command_lines,
)
from tests.tlsserver import TLSServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]

BIN = REPO / ".venv" / "bin"
MASTER = "kubernetes-master"
NODES = ("kubernetes-minion-1", "kubernetes-minion-2")
PROJECT, ZONE = "kube-local", "us-central1-b"
# Ports worth probing besides those something listens on inside the VMs: the control plane's,
# the kubelet's, salt's master ports, plain http.
WELL_KNOWN_PORTS = (22, 80, 443, 2379, 2380, 4505, 4506, 6443, 8080, 10248, 10249, 10250, 10255,
                    10256, 10257, 10259)  # fmt: skip


@dataclass
class Live:
    """The module's cluster and what happened while it came up."""

    env: dict[str, str]
    root: Path
    runs: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)
    command_lines: set[bytes] = field(default_factory=set)

    @property
    def localcloud(self) -> Path:
        return Path(self.env["LOCALCLOUD_STATE_DIR"])

    @property
    def state(self) -> Path:
        return Path(self.env["KUBE_UP_STATE_DIR"]) / "kubernetes"

    def run(self, *cmd: str | Path, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(c) for c in cmd], env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def stats(self) -> dict[str, int]:
        endpoints = running(self.localcloud)
        if endpoints is None:
            return {}
        with urllib.request.urlopen(f"{endpoints.admin}/stats", timeout=10) as answer:
            return json.load(answer)["calls"]

    def admin(self, path: str, body: object) -> None:
        endpoints = running(self.localcloud)
        assert endpoints is not None
        request = urllib.request.Request(
            f"{endpoints.admin}/{path}", data=json.dumps(body).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=10):
            pass

    def kill_when(
        self, command: str, ready: Callable[[], bool], timeout: float = 900
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` and SIGKILL it once ``ready()`` holds (checked every 50 ms)."""
        log = self.root / f"{command}-killed.log"
        with log.open("w") as out:
            proc = subprocess.Popen([BIN / command], env=self.env, stdout=out, stderr=out)
            deadline = time.monotonic() + timeout
            while proc.poll() is None and not ready() and time.monotonic() < deadline:
                time.sleep(0.05)
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            code = proc.wait()
        return subprocess.CompletedProcess([command], code, "", log.read_text())


def _ssh(live: Live, names: tuple[str, ...], command: str) -> dict[str, str]:
    """Run ``command`` as root on VMs, trusting only their published host keys."""
    with _environment(live.env):
        config = load_config()
        provider = make_provider(config, Progress())
        secrets = ClusterState(config.cluster_name).ensure_secrets()
        addresses = {**provider.node_addresses(), MASTER: _master_ip(provider)}
        out = {}
        for name in names:
            with connect(ssh_target(provider, secrets, name, addresses[name])) as session:
                result = session.run(command, timeout=60)
            assert result.exit_status == 0, f"{name}: {command}: {result.stderr}"
            out[name] = result.stdout
    return out


def _master_ip(provider: object) -> str:
    return provider.ensure_master_addresses().external_ip  # type: ignore[attr-defined]


class _environment:
    """os.environ as ``env`` for the block (the product's helpers read it)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env, self.saved = env, dict(os.environ)

    def __enter__(self) -> None:
        os.environ.update(self.env)

    def __exit__(self, *exc: object) -> None:
        os.environ.clear()
        os.environ.update(self.saved)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    require_release_and_free_bridge()
    root = tmp_path_factory.mktemp("reliability-e2e")
    env = {**os.environ, **private_cluster_env(root, nodes=2)}
    env.pop("LOCALCLOUD_BACKEND", None)
    cluster = Live(env, root)
    try:
        with watching_command_lines(interval=0.2) as seen:
            cluster.runs["killed up"] = cluster.kill_when(
                "kube-up", lambda: cluster.stats().get("compute.instances.insert", 0) >= 1
            )
            cluster.runs["up"] = cluster.run(BIN / "kube-up")
        cluster.command_lines = seen
        yield cluster
    finally:
        cluster.run(BIN / "kube-down", timeout=900)


@pytest.fixture(scope="module")
def kubectl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("kubectl")
    with tarfile.open(RELEASE / "kubernetes-server-linux-amd64.tar.gz") as tar:
        member = tar.getmember("kubernetes/server/bin/kubectl")
        tar.extractall(dest, members=[member], filter="data")
    return dest / "kubernetes/server/bin/kubectl"


def test_kube_up_killed_while_vms_are_created_is_finished_by_a_rerun(live: Live) -> None:
    killed, up = live.runs["killed up"], live.runs["up"]
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert "Creating the master VM ..." in killed.stderr
    assert "Validating" not in killed.stderr
    assert up.returncode == 0, up.stderr[-3000:]
    assert "Nodes Ready: kubernetes-minion-1, kubernetes-minion-2" in up.stderr


def test_credentials_and_keys_are_private(live: Live) -> None:
    for path in (Path(live.env["KUBERNETES_AUTH_FILE"]), Path(live.env["KUBECONFIG"])):
        assert oct(path.stat().st_mode & 0o777) == "0o600", path
    assert private_mode_problems(live.state) == []


def _https(
    host: str, ca: bytes, headers: dict[str, str] | None = None, cert: CertKey | None = None
) -> int | str:
    """GET /api/v1/nodes on host:443 verifying the server against ``ca``: the status, or the
    TLS error's name when the handshake was refused."""
    context = ssl.create_default_context(cadata=ca.decode())
    context.check_hostname = False  # it names the master's IPs; the CA check is what matters
    if cert is not None:
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "c.crt").write_bytes(cert.cert_pem)
            (Path(tmp) / "c.key").write_bytes(cert.key_pem)
            context.load_cert_chain(Path(tmp) / "c.crt", Path(tmp) / "c.key")
    connection = http.client.HTTPSConnection(host, 443, context=context, timeout=20)
    try:
        connection.request("GET", "/api/v1/nodes", headers=headers or {})
        return connection.getresponse().status
    except (ssl.SSLError, ConnectionResetError) as exc:
        return type(exc).__name__
    finally:
        connection.close()


def test_the_apiserver_answers_only_valid_credentials(live: Live) -> None:
    with _environment(live.env):
        master = _master_ip(make_provider(load_config(), Progress()))
    ca = (live.state / "pki" / "ca.crt").read_bytes()
    password = (live.state / "admin-password").read_text().strip()

    def basic(secret: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"admin:{secret}".encode()).decode()}

    admin = CertKey(
        (live.state / "pki" / "admin.crt").read_bytes(),
        (live.state / "pki" / "admin.key").read_bytes(),
    )
    other_ca = new_ca("someone-elses-ca")
    impostor = issue(other_ca, "admin", organizations=("system:masters",), client=True)
    assert _https(master, ca, basic(password)) == 200
    assert _https(master, ca, cert=admin) == 200
    assert _https(master, ca) == 401
    assert _https(master, ca, basic(password + "x")) == 401
    assert _https(master, ca, basic("")) == 401
    assert _https(master, ca, cert=impostor) in (400, 401, "SSLError", "ConnectionResetError")


def test_kubeconfig_trusts_only_the_cluster_ca(live: Live, kubectl: Path, tmp_path: Path) -> None:
    kubeconfig = Path(live.env["KUBECONFIG"])
    text = kubeconfig.read_text()
    assert "insecure-skip-tls-verify" not in text
    config = yaml.safe_load(text)
    cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == "kubernetes")
    ca = (live.state / "pki" / "ca.crt").read_bytes()
    assert base64.b64decode(cluster["certificate-authority-data"]) == ca
    assert cluster["server"].startswith("https://")
    ok = subprocess.run(
        [kubectl, "get", "nodes", "-o", "name"], env=live.env, capture_output=True, text=True
    )
    assert ok.returncode == 0 and "node/kubernetes-minion-1" in ok.stdout, ok.stderr
    # The same kubeconfig pointed at a server with a certificate from another CA.
    other = new_ca("impostor-ca")
    with TLSServer(
        issue(other, "impostor", ip_addresses=["127.0.0.1"], server=True), tmp_path
    ) as srv:
        cluster["server"] = f"https://127.0.0.1:{srv.port}"
        forged = tmp_path / "forged-kubeconfig"
        forged.write_text(yaml.safe_dump(config))
        forged.chmod(0o600)
        bad = subprocess.run(
            [kubectl, "--kubeconfig", forged, "get", "nodes"],
            env=live.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert bad.returncode != 0
    assert "certificate" in bad.stderr and "node/" not in bad.stdout, bad.stderr


def _open_ports(host: str, ports: set[int]) -> set[int]:
    found = set()
    for port in sorted(ports):
        with socket.socket() as sock:
            sock.settimeout(2)
            if sock.connect_ex((host, port)) == 0:
                found.add(port)
    return found


def test_only_ssh_and_https_are_open_from_outside_the_cluster_network(live: Live) -> None:
    """From the host (outside the cluster's network: it joins the bridge at a link-local
    address), ports that something listens on inside the VMs are closed, but ssh everywhere
    and https on the master."""
    listening = _ssh(live, (MASTER, *NODES), "ss -Hltn")
    with _environment(live.env):
        provider = make_provider(load_config(), Progress())
        addresses = {**provider.node_addresses(), MASTER: _master_ip(provider)}
    for name, table in listening.items():
        ports = {int(line.split()[3].rsplit(":", 1)[1]) for line in table.splitlines()}
        assert len(ports - {22, 443}) >= 2, f"{name} listens on too little to test: {ports}"
        want = {22, 443} if name == MASTER else {22}
        assert _open_ports(addresses[name], ports | set(WELL_KNOWN_PORTS)) == want, name


def test_salt_runs_masterless_and_listens_nowhere(live: Live) -> None:
    """Every salt run seen while the cluster came up was ``salt-call --local``; no salt
    process listens on any port, no minion or master daemon runs (4505/4506 are among the
    ports the previous test found closed)."""
    runs = [line for line in live.command_lines if b"salt-call" in line and b"highstate" in line]
    assert runs and all(b"--local" in line for line in runs)
    sockets = _ssh(live, (MASTER, *NODES), "ss -Hltunp")
    processes = _ssh(live, (MASTER, *NODES), "ps -eo args")
    for name in (MASTER, *NODES):
        assert "salt" not in sockets[name], f"{name}: {sockets[name]}"
        daemons = [p for p in processes[name].splitlines() if re.search(r"salt-(minion|master)", p)]
        assert daemons == [], name


def test_no_secret_in_process_arguments_logs_or_files_others_can_read(live: Live) -> None:
    secrets = cluster_secrets(live.state)
    seen = live.command_lines | set(command_lines().values())
    assert any(b"kube-apiserver" in line for line in seen)  # the VMs' processes were watched
    assert {line[:300] for line in seen if found_in(line, secrets)} == set()
    for name, result in live.runs.items():
        assert found_in(result.stdout + result.stderr, secrets) == set(), name
    logs = [live.localcloud / "localcloud.log", *live.localcloud.glob("machines/*/*/console.log")]
    assert len(logs) == 4
    for log in logs:
        assert found_in(log.read_bytes(), secrets) == set(), log
    vm_roots = sorted(live.localcloud.glob("machines/*/*/upper"))
    assert len(vm_roots) == 3
    assert leaks_in_files([live.root, *vm_roots], secrets) == {}


def test_vm_metadata_holds_only_what_each_role_needs(live: Live) -> None:
    secrets = cluster_secrets(live.state)
    endpoints = running(live.localcloud)
    assert endpoints is not None
    base = f"{endpoints.compute}/compute/v1/projects/{PROJECT}"
    for name in (MASTER, *NODES):
        with urllib.request.urlopen(f"{base}/zones/{ZONE}/instances/{name}") as answer:
            text = "\n".join(metadata_items(json.load(answer)).values())
        assert found_in(text, secrets) == (MASTER_KEYS if name == MASTER else NODE_KEYS), name
    with urllib.request.urlopen(base) as answer:
        assert found_in(answer.read(), secrets) == set()


def test_a_substituted_host_key_is_refused(live: Live) -> None:
    """The master's published host key is replaced (as a compromised metadata path or a
    substituted VM would): kube-up must refuse to fetch credentials from it."""
    endpoints = running(live.localcloud)
    assert endpoints is not None
    host, port = endpoints.metadata_address
    url = f"http://{host}:{port}/computeMetadata/v1/instance/guest-attributes/hostkeys/ssh-ed25519"
    headers = {"Metadata-Flavor": "Google"}
    live.admin("metadata-aliases", {host: f"projects/{PROJECT}/zones/{ZONE}/instances/{MASTER}"})
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as answer:
            real = answer.read()
        _, fake = new_ssh_keypair("impostor")
        put = urllib.request.Request(url, data=fake.encode(), headers=headers, method="PUT")
        urllib.request.urlopen(put).close()
        refused = live.run(BIN / "kube-up")
        put = urllib.request.Request(url, data=real, headers=headers, method="PUT")
        urllib.request.urlopen(put).close()
    finally:
        live.admin("metadata-aliases", {})
    assert refused.returncode == 4, refused.stderr[-2000:]
    last = refused.stderr.strip().splitlines()[-1]
    assert "does not match the key it published" in last and "refusing" in last
    assert "Fetching credentials" in refused.stderr
    assert "✓ Fetching credentials" not in refused.stderr


def _pushing() -> bool:
    return any(
        b"configure-vm.sh" in line and b"--push" in line for line in command_lines().values()
    )


def test_kube_push_killed_mid_highstate_leaves_a_usable_cluster_and_a_rerun_finishes(
    live: Live,
) -> None:
    killed = live.kill_when("kube-push", _pushing)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert "Re-applying the salt states" in killed.stderr
    usable = live.run(BIN / "validate-cluster")
    assert usable.returncode == 0, usable.stderr[-2000:]
    again = live.run(BIN / "kube-push")
    assert again.returncode == 0, again.stderr[-3000:]


def test_kube_down_killed_half_way_then_rerun_leaves_nothing(live: Live) -> None:
    killed = live.kill_when(
        "kube-down", lambda: live.stats().get("compute.instances.delete", 0) >= 1
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    down = live.run(BIN / "kube-down")
    assert down.returncode == 0, down.stderr[-3000:]
    again = live.run(BIN / "kube-down", "--dry-run")
    assert "would delete" not in again.stderr
    assert running(live.localcloud) is None
    assert not Path(f"/sys/class/net/{BRIDGE}").exists()
    assert live.run("ip", "netns", "list").stdout.strip() == ""
    assert str(live.localcloud) not in Path("/proc/self/mountinfo").read_text()
    leftovers = [
        pid for pid, line in command_lines().items() if str(live.localcloud).encode() in line
    ]
    assert leftovers == []
    assert not Path(live.env["KUBERNETES_AUTH_FILE"]).exists()
    assert "kubernetes" not in Path(live.env["KUBECONFIG"]).read_text()
    assert not live.state.exists()
