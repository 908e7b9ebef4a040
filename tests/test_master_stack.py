"""The master's states run for real on loopback: etcd, kube-apiserver and the controller manager
with the flags salt renders, nginx with the rendered site, and the rendered RBAC manifest applied
with the admin kubeconfig. Checks who the apiserver believes each caller is (basic auth, client
certificates, spoofed headers), that nothing is anonymous, and that watches stream through nginx.

Only paths, ports and the listen address are rewritten, to a temporary dir and free loopback
ports; every flag and directive is the rendered one.
"""

from __future__ import annotations

import base64
import datetime
import http.client
import ipaddress
import json
import socket
import ssl
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cluster.kube_env import MasterSecrets, render_kube_env
from cluster.release.builder import MANIFEST, ReleaseBuilder, default_output_dir
from cluster.release.server_tarball import SERVER_TARBALL
from cluster.release.versions import DEFAULT_KUBE_VERSION, parse_kube_version
from tests.kube_env_samples import sample_inputs
from tests.salt_harness import GRAINS, exec_start, show_highstate, write_salt_config

pytestmark = pytest.mark.release
PASSWORD = "correct horse battery staple"


@dataclass
class Pair:
    cert: bytes
    key: bytes


def _key() -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key, pem


def _issue(ca: Pair | None, cn: str, orgs: tuple[str, ...] = (), server: bool = False) -> Pair:
    key, key_pem = _key()
    subject = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
        + [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    )
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if ca is None:
        signer, issuer = key, subject
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
    else:
        signer = serialization.load_pem_private_key(ca.key, None)
        issuer = x509.load_pem_x509_certificate(ca.cert).subject
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), False)
    if server:
        sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), False)
    cert = builder.issuer_name(issuer).sign(signer, hashes.SHA256())  # type: ignore[arg-type]
    return Pair(cert.public_bytes(serialization.Encoding.PEM), key_pem)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _htpasswd(user: str, password: str) -> str:
    proc = subprocess.run(
        ["openssl", "passwd", "-6", "-stdin"], input=password, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return f"{user}:{proc.stdout.strip()}"


@pytest.fixture(scope="module")
def server_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = default_output_dir()
    if not (out / MANIFEST).exists():
        ReleaseBuilder(out, report=lambda _: None).build(parse_kube_version(DEFAULT_KUBE_VERSION))
    dest = tmp_path_factory.mktemp("server")
    with tarfile.open(out / SERVER_TARBALL) as tar:
        tar.extractall(dest, filter="data")
    return dest / "kubernetes" / "server" / "bin"


@dataclass
class Master:
    """The running master; ``call`` talks to nginx like a user or a kubelet would."""

    dir: Path
    nginx_port: int
    apiserver_port: int
    clients: dict[str, Pair]
    procs: dict[str, subprocess.Popen[bytes]]

    def context(self, client: str | None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.dir / "certs" / "ca.crt"))
        if client:
            ctx.load_cert_chain(self.dir / f"{client}.crt", self.dir / f"{client}.key")
        return ctx

    def connect(self, port: int, client: str | None = None) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(
            "localhost", port, context=self.context(client), timeout=20
        )

    def call(
        self,
        method: str,
        path: str,
        *,
        client: str | None = None,
        password: str | None = None,
        body: object = None,
        headers: dict[str, str] | None = None,
        port: int | None = None,
    ) -> tuple[int, dict]:
        conn = self.connect(port or self.nginx_port, client)
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if password is not None:
            token = base64.b64encode(f"admin:{password}".encode()).decode()
            all_headers["Authorization"] = f"Basic {token}"
        conn.request(method, path, json.dumps(body) if body else None, all_headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        try:
            return response.status, json.loads(data)
        except ValueError:
            return response.status, {"raw": data.decode(errors="replace")}

    def whoami(self, **kwargs: object) -> tuple[int, dict]:
        review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        status, body = self.call(
            "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", body=review, **kwargs
        )
        return status, body.get("status", {}).get("userInfo", {})


def _start(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)


def _wait(what: str, check, procs: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if check():
            return
        for proc, log in zip(procs, logs, strict=True):
            if proc.poll() is not None:
                pytest.fail(f"{log.name} exited {proc.returncode}: {log.read_text()[-2000:]}")
        time.sleep(0.5)
    pytest.fail(f"{what} did not happen in 120s")


@pytest.fixture(scope="module")
def master(tmp_path_factory: pytest.TempPathFactory, server_bin: Path) -> Iterator[Master]:
    tmp = tmp_path_factory.mktemp("master-stack")
    ca, front_ca = _issue(None, "test-ca"), _issue(None, "test-front-proxy-ca")
    clients = {
        "admin": _issue(ca, "admin", ("system:masters",)),
        "kubelet": _issue(ca, "kubelet"),
        "outsider": _issue(_issue(None, "other-ca"), "admin", ("system:masters",)),
    }
    for name, pair in clients.items():
        (tmp / f"{name}.crt").write_bytes(pair.cert)
        (tmp / f"{name}.key").write_bytes(pair.key)
    apiserver = _issue(ca, "kube-apiserver", server=True)
    kcm = _issue(ca, "system:kube-controller-manager")
    scheduler = _issue(ca, "system:kube-scheduler")
    akc = _issue(ca, "kube-apiserver-kubelet-client", ("system:masters",))
    front_client = _issue(front_ca, "front-proxy-client")
    _, sa_key = _key()
    secrets = MasterSecrets(
        apiserver_cert=apiserver.cert,
        apiserver_key=apiserver.key,
        service_account_key=sa_key,
        kubecfg_cert=clients["admin"].cert,
        kubecfg_key=clients["admin"].key,
        controller_manager_cert=kcm.cert,
        controller_manager_key=kcm.key,
        scheduler_cert=scheduler.cert,
        scheduler_key=scheduler.key,
        apiserver_kubelet_client_cert=akc.cert,
        apiserver_kubelet_client_key=akc.key,
        front_proxy_ca_cert=front_ca.cert,
        front_proxy_client_cert=front_client.cert,
        front_proxy_client_key=front_client.key,
        htpasswd=_htpasswd("admin", PASSWORD),
    )
    kube_env = render_kube_env(sample_inputs(ca_cert=ca.cert, master=secrets), "master")
    states = show_highstate(write_salt_config(tmp / "salt", GRAINS["master"], kube_env))

    ports = {
        name: _free_port() for name in ("etcd", "peer", "apiserver", "nginx", "kcm", "scheduler")
    }
    rewrites = {
        "/srv/kubernetes/": f"{tmp}/certs/",
        "/mnt/master-pd/var/etcd": f"{tmp}/etcd",
        "/usr/local/bin/": f"{server_bin}/",
        "/etc/nginx/kube-htpasswd": f"{tmp}/htpasswd",
        "/etc/kubernetes/": f"{tmp}/",
        "127.0.0.1:2379": f"127.0.0.1:{ports['etcd']}",
        "127.0.0.1:2380": f"127.0.0.1:{ports['peer']}",
        "--bind-address=0.0.0.0": "--bind-address=127.0.0.1",
        "--advertise-address=10.40.0.2": "--advertise-address=127.0.0.1",
        "10.40.0.2:6443": f"127.0.0.1:{ports['apiserver']}",
        ":6443": f":{ports['apiserver']}",
        "=6443": f"={ports['apiserver']}",
        "listen 443 ssl;": f"listen 127.0.0.1:{ports['nginx']} ssl;",
    }

    def local(text: str) -> str:
        for old, new in rewrites.items():
            text = text.replace(old, new)
        return text

    (tmp / "certs").mkdir()
    (tmp / "etcd").mkdir(mode=0o700)
    for state in states.values():
        if state.fun == "file.managed" and "contents" in state.args:
            name = local(str(state.args["name"]))
            if name.startswith(str(tmp)):
                Path(name).parent.mkdir(parents=True, exist_ok=True)
                Path(name).write_text(local(str(state.args["contents"])))

    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    master = Master(tmp, ports["nginx"], ports["apiserver"], clients, {})

    def start(name: str, argv: list[str]) -> None:
        logs.append(tmp / f"{name}.log")
        procs.append(_start(argv, logs[-1]))
        master.procs[name] = procs[-1]

    nginx_conf = tmp / "nginx.conf"
    nginx_conf.write_text(
        # Workers as root: pytest's temp dirs are private to root.
        f"daemon off;\nuser root;\npid {tmp}/nginx.pid;\nerror_log {tmp}/nginx-error.log;\n"
        "worker_processes 1;\nevents {}\nhttp {\n    access_log off;\n"
        + "".join(
            f"    {kind}_temp_path {tmp}/{kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        + f"    include {tmp}/site.conf;\n}}\n"
    )
    (tmp / "site.conf").write_text(local(str(states["nginx-site"].args["contents"])))
    check = subprocess.run(
        ["nginx", "-t", "-p", str(tmp), "-c", str(nginx_conf)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr

    try:
        start("etcd", local(" ".join(exec_start(states["etcd-unit"]))).split())
        start("kube-apiserver", local(" ".join(exec_start(states["kube-apiserver-unit"]))).split())
        start("nginx", ["nginx", "-p", str(tmp), "-c", str(nginx_conf)])
        _wait(
            "apiserver ready through nginx",
            lambda: _ready(master),
            procs,
            logs,
        )
        kcm_args = local(" ".join(exec_start(states["kube-controller-manager-unit"]))).split()
        start("kube-controller-manager", [*kcm_args, f"--secure-port={ports['kcm']}"])
        scheduler_args = local(" ".join(exec_start(states["kube-scheduler-unit"]))).split()
        start("kube-scheduler", [*scheduler_args, f"--secure-port={ports['scheduler']}"])
        yield master
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _ready(master: Master) -> bool:
    try:
        status, _ = master.call("GET", "/readyz", password=PASSWORD)
    except OSError:
        return False
    return status == 200


def test_nothing_is_anonymous(master: Master) -> None:
    assert master.call("GET", "/api")[0] == 401
    assert master.call("GET", "/api", password="wrong")[0] == 401
    # The apiserver's own port wants credentials too.
    assert master.call("GET", "/api", port=master.apiserver_port)[0] == 401


def test_basic_auth_is_the_cluster_admin(master: Master) -> None:
    status, user = master.whoami(password=PASSWORD)
    assert status == 201
    assert user["username"] == "admin"
    assert "system:masters" in user["groups"]


def test_client_certificates_pass_their_identity(master: Master) -> None:
    status, user = master.whoami(client="kubelet")
    assert status == 201
    assert user["username"] == "kubelet"
    assert "system:masters" not in user["groups"]
    status, user = master.whoami(client="admin")
    assert (status, user["username"]) == (201, "admin")
    assert "system:masters" in user["groups"]


def test_identity_headers_from_clients_are_ignored(master: Master) -> None:
    spoof = {"X-Remote-User": "admin", "X-Remote-Group": "system:masters"}
    status, user = master.whoami(client="kubelet", headers=spoof)
    assert (status, user["username"]) == (201, "kubelet")
    assert "system:masters" not in user["groups"]
    status, _ = master.call("GET", "/api", headers=spoof)
    assert status == 401


def test_certificates_from_another_ca_are_refused(master: Master) -> None:
    status, _ = master.call("GET", "/api", client="outsider")
    assert status in (400, 401)


def test_rbac_manifest_lets_kubelets_read_nodes(master: Master, server_bin: Path) -> None:
    assert master.call("GET", "/api/v1/nodes", client="kubelet")[0] == 403
    kubectl = [
        str(server_bin / "kubectl"),
        f"--kubeconfig={master.dir}/certs/admin.kubeconfig",
    ]
    manifest = str(master.dir / "kube-up-rbac.yaml")
    applied = subprocess.run([*kubectl, "apply", "-f", manifest], capture_output=True, text=True)
    assert applied.returncode == 0, applied.stderr
    # The salt state's `unless`: no diff once applied.
    diff = subprocess.run([*kubectl, "diff", "-f", manifest], capture_output=True, text=True)
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert master.call("GET", "/api/v1/nodes", client="kubelet")[0] == 200


def test_the_dns_addon_is_accepted_by_the_apiserver_and_applies_once(
    master: Master, server_bin: Path
) -> None:
    kubectl = [str(server_bin / "kubectl"), f"--kubeconfig={master.dir}/certs/admin.kubeconfig"]
    manifest = str(master.dir / "addons" / "coredns.yaml")
    applied = subprocess.run([*kubectl, "apply", "-f", manifest], capture_output=True, text=True)
    assert applied.returncode == 0, applied.stderr
    # The salt state's `unless`: no diff once applied, so a re-run of highstate changes nothing.
    diff = subprocess.run([*kubectl, "diff", "-f", manifest], capture_output=True, text=True)
    assert diff.returncode == 0, diff.stdout + diff.stderr
    status, body = master.call(
        "GET", "/api/v1/namespaces/kube-system/services/kube-dns", password=PASSWORD
    )
    assert status == 200 and body["spec"]["clusterIP"] == "10.0.0.10"


def test_controller_manager_runs_with_its_certificate(master: Master) -> None:
    """The service account controller creates `default` in each namespace."""
    deadline = time.monotonic() + 90
    status = 0
    while time.monotonic() < deadline and status != 200:
        status, _ = master.call(
            "GET", "/api/v1/namespaces/default/serviceaccounts/default", password=PASSWORD
        )
        time.sleep(1)
    log = (master.dir / "kube-controller-manager.log").read_text()[-2000:]
    assert status == 200, log
    for daemon in ("kube-controller-manager", "kube-scheduler"):
        assert master.procs[daemon].poll() is None, (master.dir / f"{daemon}.log").read_text()[
            -2000:
        ]


def test_watches_stream_through_nginx(master: Master) -> None:
    conn = master.connect(master.nginx_port)
    token = base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
    conn.request(
        "GET",
        "/api/v1/namespaces/default/configmaps?watch=1&fieldSelector=metadata.name%3Dstreamed",
        headers={"Authorization": f"Basic {token}"},
    )
    response = conn.getresponse()
    assert response.status == 200
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "streamed"}}
    created = master.call(
        "POST", "/api/v1/namespaces/default/configmaps", password=PASSWORD, body=configmap
    )
    assert created[0] == 201
    # The event arrives while the watch is still open: nginx does not buffer it.
    event = json.loads(response.readline())
    conn.close()
    assert event["type"] == "ADDED"
    assert event["object"]["metadata"]["name"] == "streamed"
