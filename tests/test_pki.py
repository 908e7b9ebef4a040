"""PKI: certificates checked by real TLS handshakes, htpasswd checked by openssl and nginx."""

from __future__ import annotations

import http.client
import shutil
import socket
import ssl
import subprocess
import time
from base64 import b64encode
from pathlib import Path

import paramiko
import pytest

from cluster import pki
from tests.tlsserver import TLSServer


@pytest.fixture(scope="module")
def ca() -> pki.CertKey:
    return pki.new_ca("test-ca")


@pytest.fixture(scope="module")
def apiserver(ca) -> pki.CertKey:
    return pki.issue(
        ca,
        "kube-apiserver",
        dns_names=[
            "kubernetes",
            "kubernetes.default.svc.cluster.local",
            "demo-master",
            "localhost",
        ],
        ip_addresses=["10.240.0.2", "10.0.0.1", "127.0.0.1"],
        server=True,
    )


def client_context(ca_pem: bytes, tmp_path: Path, client: pki.CertKey | None = None):
    context = ssl.create_default_context(cadata=ca_pem.decode())
    if client is not None:
        (tmp_path / "c.crt").write_bytes(client.cert_pem)
        (tmp_path / "c.key").write_bytes(client.key_pem)
        context.load_cert_chain(tmp_path / "c.crt", tmp_path / "c.key")
    return context


def get(port: int, context: ssl.SSLContext, server_hostname: str) -> str:
    """GET / over TLS to 127.0.0.1, verifying the certificate for ``server_hostname``."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=server_hostname) as tls,
    ):
        tls.sendall(b"GET / HTTP/1.0\r\n\r\n")
        return b"".join(iter(lambda: tls.recv(4096), b"")).decode()


@pytest.mark.parametrize(
    "name",
    ["kubernetes", "kubernetes.default.svc.cluster.local", "demo-master", "localhost",
     "10.240.0.2", "10.0.0.1", "127.0.0.1"],
)  # fmt: skip
def test_serving_cert_verifies_for_each_san(ca, apiserver, tmp_path, name):
    with TLSServer(apiserver, tmp_path) as server:
        assert "200 OK" in get(server.port, client_context(ca.cert_pem, tmp_path), name)


def test_serving_cert_is_refused_for_other_names_and_other_cas(ca, apiserver, tmp_path):
    with TLSServer(apiserver, tmp_path) as server:
        with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
            get(server.port, client_context(ca.cert_pem, tmp_path), "evil.example.com")
        stranger = pki.new_ca("stranger")
        with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
            get(server.port, client_context(stranger.cert_pem, tmp_path), "kubernetes")


def test_client_cert_authenticates_with_its_cn_and_groups(ca, apiserver, tmp_path):
    admin = pki.issue(ca, "admin", organizations=["system:masters"], client=True)
    assert pki.identity(admin.cert) == ("admin", ("system:masters",))
    with TLSServer(apiserver, tmp_path, client_ca=ca.cert_pem) as server:
        reply = get(server.port, client_context(ca.cert_pem, tmp_path, admin), "kubernetes")
        assert '"cn": "admin", "o": "system:masters"' in reply
        outsider = pki.issue(pki.new_ca("other"), "admin", client=True)
        with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
            get(server.port, client_context(ca.cert_pem, tmp_path, outsider), "kubernetes")


def test_a_client_cert_cannot_serve_and_a_ca_signs_only_leaves(ca, tmp_path):
    client_only = pki.issue(ca, "kubelet", client=True, ip_addresses=["127.0.0.1"])
    unsuitable = pytest.raises(ssl.SSLCertVerificationError, match="unsuitable certificate purpose")
    with TLSServer(client_only, tmp_path) as server, unsuitable:
        get(server.port, client_context(ca.cert_pem, tmp_path), "127.0.0.1")
    with pytest.raises(ValueError):
        pki.issue(ca, "nothing")


def test_still_valid_checks_issuer_key_and_expiry(ca, apiserver):
    assert pki.still_valid(apiserver, ca)
    assert not pki.still_valid(apiserver, pki.new_ca("test-ca"))  # same name, other key
    other_key = pki.CertKey(apiserver.cert_pem, pki.new_private_key_pem())
    assert not pki.still_valid(other_key, ca)
    short = pki.issue(ca, "x", client=True, days=10)
    assert not pki.still_valid(short, ca)


def test_service_account_public_key_matches_private(tmp_path):
    private = pki.new_private_key_pem()
    public = pki.public_key_pem(private)
    assert public.startswith(b"-----BEGIN PUBLIC KEY-----")
    (tmp_path / "sa.key").write_bytes(private)
    derived = subprocess.run(
        ["openssl", "pkey", "-in", str(tmp_path / "sa.key"), "-pubout"],
        capture_output=True,
        check=True,
    ).stdout
    assert derived == public


def test_ssh_keypair_is_openssh_ed25519_and_loads_in_paramiko(tmp_path):
    private, public = pki.new_ssh_keypair("kube-up@demo")
    assert private.startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")
    kind, blob, comment = public.split()
    assert (kind, comment) == ("ssh-ed25519", "kube-up@demo")
    (tmp_path / "id").write_bytes(private)
    key = paramiko.PKey.from_path(tmp_path / "id")
    assert b64encode(key.asbytes()).decode() == blob


def test_password_is_long_and_random():
    first, second = pki.new_password(), pki.new_password()
    assert first != second and len(first) >= 43


# --- htpasswd --------------------------------------------------------------------------------

# Vectors from Drepper's "Unix crypt using SHA-256 and SHA-512" specification.
SPEC_VECTORS = [
    ("saltstring", 5000, "Hello world!",
     "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"),
    ("saltstringsaltstring", 10000, "Hello world!",
     "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v."),
]  # fmt: skip


@pytest.mark.parametrize(("salt", "rounds", "password", "expected"), SPEC_VECTORS)
def test_sha512_crypt_matches_the_specification(salt, rounds, password, expected):
    assert pki.sha512_crypt(password, salt, rounds) == expected


@pytest.mark.parametrize(
    ("password", "salt"),
    [("x" * 200, "abcdefghijklmnop"), ("pässwörd ünicode", "Zz./09"), ("a", "s")],
)
def test_sha512_crypt_matches_openssl(password, salt):
    expected = subprocess.run(
        ["openssl", "passwd", "-6", "-salt", salt, "-stdin"],
        input=password.encode() + b"\n",
        capture_output=True,
        check=True,
    ).stdout.decode()
    assert pki.sha512_crypt(password, salt) == expected.strip()


def test_htpasswd_line_uses_a_fresh_salt_and_verifies():
    first = pki.htpasswd_line("admin", "pw-123456")
    assert first.startswith("admin:$6$") and first != pki.htpasswd_line("admin", "pw-123456")
    assert pki.htpasswd_matches(first, "admin", "pw-123456")
    assert not pki.htpasswd_matches(first, "admin", "pw-1234567")
    assert not pki.htpasswd_matches(first, "root", "pw-123456")
    assert not pki.htpasswd_matches("admin:{SHA}abc", "admin", "pw-123456")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + b64encode(f"{user}:{password}".encode()).decode()}


@pytest.mark.skipif(shutil.which("nginx", path="/usr/sbin:/usr/bin") is None, reason="no nginx")
def test_nginx_accepts_the_htpasswd_line(tmp_path):
    password = pki.new_password()
    (tmp_path / "htpasswd").write_text(pki.htpasswd_line("admin", password) + "\n")
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "index.html").write_text("welcome\n")
    port = _free_port()
    temp_dirs = "".join(
        f"{kind}_temp_path {tmp_path}/{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (tmp_path / "nginx.conf").write_text(
        f"daemon off; master_process off; pid {tmp_path}/nginx.pid;\n"
        f"error_log {tmp_path}/error.log;\n"
        "events { worker_connections 16; }\n"
        f"http {{ access_log off; {temp_dirs}\n"
        f"  server {{ listen 127.0.0.1:{port};\n"
        f'    location / {{ auth_basic "kube"; auth_basic_user_file {tmp_path}/htpasswd;\n'
        f"      root {tmp_path}/www; }} }} }}\n"
    )
    nginx = subprocess.Popen(
        [shutil.which("nginx", path="/usr/sbin:/usr/bin"), "-p", str(tmp_path), "-c", "nginx.conf"]
    )
    try:
        statuses = {}
        for label, headers in [
            ("right", _basic("admin", password)),
            ("wrong", _basic("admin", password + "x")),
            ("none", {}),
        ]:
            for _ in range(100):
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                    conn.request("GET", "/", headers=headers)
                    statuses[label] = conn.getresponse().status
                    conn.close()
                    break
                except ConnectionRefusedError:
                    assert nginx.poll() is None, (tmp_path / "error.log").read_text()
                    time.sleep(0.05)
        assert statuses == {"right": 200, "wrong": 401, "none": 401}
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
