"""The per-cluster state directory: private files, idempotent secrets, the auth file."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import paramiko
import pytest

from cluster import pki
from cluster.errors import PrereqError
from cluster.files import write_private
from cluster.state import (
    CLIENT_CERTS,
    ClusterState,
    auth_file_path,
    remove_auth_file,
    state_root,
    write_auth_file,
)


@pytest.fixture
def state(tmp_path) -> ClusterState:
    return ClusterState("demo", root=tmp_path / "state")


@pytest.fixture
def open_umask():
    """Run with umask 000: files must still come out private."""
    old = os.umask(0)
    yield
    os.umask(old)


def modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in root.rglob("*")}


def snapshot(state: ClusterState) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in state.pki_dir.iterdir()}


def test_everything_is_private_even_with_an_open_umask(state, open_umask):
    state.ensure_secrets()
    state.ensure_apiserver_cert(
        state.ensure_secrets().ca, master_name="m", master_ips=["10.240.0.2"], service_ip="10.0.0.1"
    )
    found = modes(state.path)
    assert found["pki/ca.key"] == 0o600 and found["ssh/id_ed25519"] == 0o600
    for name, mode in found.items():
        is_dir = (state.path / name).is_dir()
        assert mode == (0o700 if is_dir else 0o600), name
    assert stat.S_IMODE(state.path.stat().st_mode) == 0o700
    assert not [name for name in found if name.endswith(".tmp")]


def test_client_certs_carry_the_kubernetes_identities(state):
    secrets = state.ensure_secrets()
    assert set(secrets.clients) == set(CLIENT_CERTS)
    for name, (cn, orgs) in CLIENT_CERTS.items():
        assert pki.identity(secrets.clients[name].cert) == (cn, orgs)
        assert pki.still_valid(secrets.clients[name], secrets.ca)
    assert pki.identity(secrets.clients["apiserver-kubelet-client"].cert) == (
        "kube-apiserver-kubelet-client",
        ("system:masters",),
    )
    assert pki.identity(secrets.front_proxy_client.cert) == ("front-proxy-client", ())
    assert pki.still_valid(secrets.front_proxy_client, secrets.front_proxy_ca)
    assert not pki.still_valid(secrets.front_proxy_client, secrets.ca)


def test_second_run_reuses_everything(state):
    first = state.ensure_secrets()
    before = snapshot(state)
    second = ClusterState("demo", root=state.path.parent).ensure_secrets()
    assert snapshot(state) == before
    assert second.admin_password == first.admin_password
    assert second.ssh_public_key == first.ssh_public_key
    assert second.ca == first.ca


def test_a_missing_leaf_is_reissued_alone(state):
    first = state.ensure_secrets()
    before = snapshot(state)
    (state.pki_dir / "kube-proxy.crt").unlink()
    (state.pki_dir / "kube-proxy.key").unlink()
    second = state.ensure_secrets()
    after = snapshot(state)
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"kube-proxy.crt", "kube-proxy.key"}
    assert second.clients["kube-proxy"] != first.clients["kube-proxy"]
    assert pki.still_valid(second.clients["kube-proxy"], first.ca)


def test_a_new_ca_reissues_every_leaf_it_signs(state):
    first = state.ensure_secrets()
    (state.pki_dir / "ca.crt").unlink()
    (state.pki_dir / "ca.key").unlink()
    second = state.ensure_secrets()
    assert second.ca != first.ca
    assert all(pki.still_valid(c, second.ca) for c in second.clients.values())
    assert second.front_proxy_client == first.front_proxy_client  # other CA, untouched


@pytest.mark.parametrize(
    ("damage", "phrase"),
    [
        (lambda d: (d / "ca.key").unlink(), "ca.crt/ca.key unusable"),
        (lambda d: (d / "ca.crt").write_text("not a cert"), "ca.crt/ca.key unusable"),
        (
            lambda d: (d / "admin.key").write_bytes(pki.new_private_key_pem()),
            "admin.crt/admin.key unusable (the key does not belong to the certificate)",
        ),
    ],
)
def test_damaged_pairs_stop_with_one_clear_line(state, damage, phrase):
    state.ensure_secrets()
    damage(state.pki_dir)
    with pytest.raises(PrereqError) as caught:
        state.ensure_secrets()
    text = str(caught.value)
    assert phrase in text and "\n" not in text and caught.value.exit_code == 3


def test_apiserver_cert_is_reissued_only_when_the_master_moves(state):
    secrets = state.ensure_secrets()
    args = {"master_name": "demo-master", "service_ip": "10.0.0.1"}
    first = state.ensure_apiserver_cert(secrets.ca, master_ips=["10.240.0.2", "34.1.2.3"], **args)
    dns, ips = pki.subject_alt_names(first.cert)
    assert dns == {
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "localhost",
        "demo-master",
    }
    assert {str(ip) for ip in ips} == {"10.240.0.2", "34.1.2.3", "10.0.0.1", "127.0.0.1"}
    before = snapshot(state)

    again = state.ensure_apiserver_cert(secrets.ca, master_ips=["34.1.2.3", "10.240.0.2"], **args)
    assert again == first

    moved = state.ensure_apiserver_cert(secrets.ca, master_ips=["10.240.0.2", "35.9.9.9"], **args)
    assert moved != first
    assert "35.9.9.9" in {str(ip) for ip in pki.subject_alt_names(moved.cert)[1]}
    after = snapshot(state)
    assert {n for n in before if before[n] != after[n]} == {"apiserver.crt", "apiserver.key"}
    assert state.ensure_secrets().ca == secrets.ca


def test_htpasswd_and_ssh_key_match_what_they_protect(state):
    secrets = state.ensure_secrets()
    assert pki.htpasswd_matches(secrets.htpasswd, "admin", secrets.admin_password)
    (state.path / "htpasswd").write_text("admin:$6$x$stale\n")
    assert pki.htpasswd_matches(state.ensure_secrets().htpasswd, "admin", secrets.admin_password)

    key = paramiko.PKey.from_path(secrets.ssh_private_key_path)
    kind, blob, comment = secrets.ssh_public_key.split()
    assert (kind, blob, comment) == (key.get_name(), key.get_base64(), "kube-up@demo")


def test_repr_of_secrets_shows_no_secret(state):
    secrets = state.ensure_secrets()
    text = repr(secrets)
    for value in secrets.secret_values():
        assert value not in text
    assert "CN=admin" in text


def test_concurrent_runs_agree_on_one_ca(state):
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(state.ensure_secrets())) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({r.ca.cert_pem for r in results}) == 1
    assert len({r.admin_password for r in results}) == 1


def test_state_root_comes_from_env_or_home(monkeypatch, tmp_path):
    assert state_root({"KUBE_UP_STATE_DIR": str(tmp_path)}) == tmp_path
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert state_root({}) == tmp_path / "home" / ".local" / "state" / "kube-up"
    monkeypatch.setenv("KUBE_UP_STATE_DIR", str(tmp_path / "s"))
    assert ClusterState("demo").path == tmp_path / "s" / "demo"


@pytest.mark.parametrize("name", ["", "../etc", "a/b", ".hidden"])
def test_cluster_names_cannot_escape_the_state_root(name, tmp_path):
    with pytest.raises(ValueError):
        ClusterState(name, root=tmp_path)


def test_destroy_removes_the_directory(state):
    state.ensure_secrets()
    state.destroy()
    assert not state.exists()


def test_auth_file_is_the_classic_json_and_private(state, tmp_path, open_umask):
    secrets = state.ensure_secrets()
    env = {"KUBERNETES_AUTH_FILE": str(tmp_path / "auth" / "kubernetes_auth")}
    path = write_auth_file(state, secrets, env)
    assert path == auth_file_path(env)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    content = json.loads(path.read_text())
    assert content["User"] == "admin" and content["Password"] == secrets.admin_password
    assert Path(content["CAFile"]).read_bytes() == secrets.ca.cert_pem
    assert Path(content["CertFile"]).read_bytes() == secrets.admin.cert_pem
    assert Path(content["KeyFile"]).read_bytes() == secrets.admin.key_pem

    other = ClusterState("other", root=state.path.parent)
    assert remove_auth_file(other, env) is False and path.exists()
    assert remove_auth_file(state, env) is True and not path.exists()
    assert remove_auth_file(state, env) is False


def test_auth_file_defaults_to_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert auth_file_path({}) == tmp_path / ".kubernetes_auth"


def test_write_private_replaces_atomically_and_cleans_up(tmp_path, open_umask):
    target = tmp_path / "secret"
    write_private(target, "one")
    inode = target.stat().st_ino
    write_private(target, b"two")
    assert target.read_bytes() == b"two" and target.stat().st_ino != inode
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    with pytest.raises(TypeError):
        write_private(target, 3)  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret"]
    assert target.read_bytes() == b"two"
