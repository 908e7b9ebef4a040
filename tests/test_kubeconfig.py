"""kubeconfig merging and removal, checked on the file and by a real kubectl over TLS."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess

import pytest
import yaml

from cluster import pki
from cluster.errors import PrereqError
from cluster.kubeconfig import kubeconfig_path, remove_context, write_kubeconfig
from tests.tlsserver import TLSServer

OTHER = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "prod", "cluster": {"server": "https://prod.example:6443"}}],
    "users": [{"name": "prod", "user": {"token": "t"}}],
    "contexts": [{"name": "prod", "context": {"cluster": "prod", "user": "prod"}}],
    "current-context": "prod",
    "preferences": {"colors": True},
}


@pytest.fixture(scope="module")
def ca() -> pki.CertKey:
    return pki.new_ca("kubernetes-ca")


@pytest.fixture(scope="module")
def admin(ca) -> pki.CertKey:
    return pki.issue(ca, "admin", organizations=["system:masters"], client=True)


def read(path):
    return yaml.safe_load(path.read_text())


def entry(config, section, name):
    return next(e for e in config[section] if e["name"] == name)


def test_new_file_holds_the_cluster_user_and_context(tmp_path, ca, admin):
    path = tmp_path / "home" / ".kube" / "config"
    assert write_kubeconfig("demo", "https://10.240.0.2", ca.cert_pem, admin, path=path) == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    config = read(path)
    assert config["current-context"] == "demo"
    cluster = entry(config, "clusters", "demo")["cluster"]
    assert cluster == {
        "server": "https://10.240.0.2",
        "certificate-authority-data": base64.b64encode(ca.cert_pem).decode(),
    }
    user = entry(config, "users", "demo")["user"]
    assert base64.b64decode(user["client-key-data"]) == admin.key_pem
    assert entry(config, "contexts", "demo")["context"] == {"cluster": "demo", "user": "demo"}
    assert "insecure-skip-tls-verify" not in path.read_text()


def test_merge_keeps_other_entries_and_replaces_its_own(tmp_path, ca, admin):
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(OTHER))
    write_kubeconfig("demo", "https://10.240.0.2", ca.cert_pem, admin, path=path)
    write_kubeconfig("demo", "https://10.240.0.9", ca.cert_pem, admin, path=path)
    config = read(path)
    assert [e["name"] for e in config["clusters"]] == ["prod", "demo"]
    assert [e["name"] for e in config["users"]] == ["prod", "demo"]
    assert entry(config, "clusters", "demo")["cluster"]["server"] == "https://10.240.0.9"
    assert entry(config, "users", "prod") == OTHER["users"][0]
    assert config["preferences"] == {"colors": True}
    assert config["current-context"] == "demo"


def test_remove_context_takes_out_only_its_entries(tmp_path, ca, admin):
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(OTHER))
    write_kubeconfig("demo", "https://10.240.0.2", ca.cert_pem, admin, path=path)
    assert remove_context("demo", path=path) is True
    config = read(path)
    for section in ("clusters", "users", "contexts"):
        assert config[section] == OTHER[section]
    assert config["current-context"] == ""
    assert remove_context("demo", path=path) is False
    assert remove_context("demo", path=tmp_path / "missing") is False


def test_remove_keeps_another_current_context(tmp_path, ca, admin):
    path = tmp_path / "config"
    write_kubeconfig("demo", "https://10.240.0.2", ca.cert_pem, admin, path=path)
    config = read(path)
    config["current-context"] = "prod"
    path.write_text(yaml.safe_dump(config))
    remove_context("demo", path=path)
    assert read(path)["current-context"] == "prod"


def test_path_is_the_first_kubeconfig_entry_or_home(monkeypatch, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    assert kubeconfig_path({"KUBECONFIG": f"{os.pathsep}{first}{os.pathsep}{second}"}) == first
    monkeypatch.setenv("HOME", str(tmp_path))
    assert kubeconfig_path({}) == tmp_path / ".kube" / "config"
    assert kubeconfig_path({"KUBECONFIG": ""}) == tmp_path / ".kube" / "config"


def test_a_symlinked_kubeconfig_is_updated_where_it_points(tmp_path, ca, admin):
    real = tmp_path / "dotfiles" / "kubeconfig"
    real.parent.mkdir()
    real.write_text(yaml.safe_dump(OTHER))
    link = tmp_path / "config"
    link.symlink_to(real)
    write_kubeconfig("demo", "https://10.240.0.2", ca.cert_pem, admin, path=link)
    assert link.is_symlink()
    assert entry(read(real), "contexts", "demo")


@pytest.mark.parametrize("content", ["clusters: [", "- a list", "clusters: {a: 1}"])
def test_a_broken_kubeconfig_is_left_alone_with_a_clear_error(tmp_path, ca, admin, content):
    path = tmp_path / "config"
    path.write_text(content)
    with pytest.raises(PrereqError, match=f"kubeconfig {path} is unusable"):
        write_kubeconfig("demo", "https://10.240.0.2", ca.cert_pem, admin, path=path)
    assert path.read_text() == content


def test_only_https_servers(tmp_path, ca, admin):
    with pytest.raises(ValueError):
        write_kubeconfig("demo", "http://10.240.0.2", ca.cert_pem, admin, path=tmp_path / "c")


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_reaches_the_server_with_verified_tls_and_the_admin_cert(tmp_path, ca, admin):
    serving = pki.issue(ca, "kube-apiserver", ip_addresses=["127.0.0.1"], server=True)
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(OTHER))
    with TLSServer(serving, tmp_path, client_ca=ca.cert_pem) as server:
        write_kubeconfig("demo", f"https://127.0.0.1:{server.port}", ca.cert_pem, admin, path=path)
        env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
        run = subprocess.run(
            ["kubectl", "--kubeconfig", str(path), "get", "--raw", "/version"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout) == {"path": "/version", "cn": "admin", "o": "system:masters"}
        contexts = subprocess.run(
            ["kubectl", "--kubeconfig", str(path), "config", "current-context"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert contexts.stdout.strip() == "demo"
