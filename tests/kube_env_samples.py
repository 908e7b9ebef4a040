"""Deterministic kube-env inputs for tests: real certificates, the same bytes on every run.

Ed25519 keys come from fixed seeds and Ed25519 signatures are deterministic, so with fixed
serials and dates the PEMs (and so the rendered kube-env) are stable enough for golden files.
"""

from __future__ import annotations

import datetime
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID

from cluster.kube_env import Artifact, KubeEnvInputs, MasterSecrets, NodeSecrets

_NOT_BEFORE = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
_NOT_AFTER = datetime.datetime(2035, 1, 1, tzinfo=datetime.UTC)


def _key(label: str) -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.from_private_bytes(hashlib.sha256(label.encode()).digest())


def key_pem(label: str) -> bytes:
    return _key(label).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def cert_pem(label: str, cn: str, orgs: tuple[str, ...] = (), issuer: str = "ca") -> bytes:
    """A certificate for key ``label`` with subject CN/O, signed by key ``issuer``."""
    subject = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
        + [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    )
    issuer_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"test-{issuer}")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(_key(label).public_key())
        .serial_number(int.from_bytes(hashlib.sha256(label.encode()).digest()[:8], "big"))
        .not_valid_before(_NOT_BEFORE)
        .not_valid_after(_NOT_AFTER)
        .sign(_key(issuer), None)
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def artifact(name: str, data: bytes | None = None, base: str = "https://storage.googleapis.com/b"):
    """An Artifact for ``name``; its hash is of ``data`` (or of the name, for rendering only)."""
    content = data if data is not None else name.encode()
    return Artifact(f"{base}/{name}", hashlib.sha256(content).hexdigest())


def master_secrets() -> MasterSecrets:
    return MasterSecrets(
        apiserver_cert=cert_pem("apiserver", "kube-apiserver"),
        apiserver_key=key_pem("apiserver"),
        service_account_key=key_pem("service-account"),
        kubecfg_cert=cert_pem("admin", "admin", ("system:masters",)),
        kubecfg_key=key_pem("admin"),
        controller_manager_cert=cert_pem("kcm", "system:kube-controller-manager"),
        controller_manager_key=key_pem("kcm"),
        scheduler_cert=cert_pem("sched", "system:kube-scheduler"),
        scheduler_key=key_pem("sched"),
        apiserver_kubelet_client_cert=cert_pem(
            "akc", "kube-apiserver-kubelet-client", ("system:masters",)
        ),
        apiserver_kubelet_client_key=key_pem("akc"),
        front_proxy_ca_cert=cert_pem("front-proxy-ca", "front-proxy-ca", issuer="front-proxy-ca"),
        front_proxy_client_cert=cert_pem(
            "front-proxy-client", "front-proxy-client", issuer="front-proxy-ca"
        ),
        front_proxy_client_key=key_pem("front-proxy-client"),
        htpasswd="admin:$6$saltsaltsaltsalt$0123456789abcdefghijklmnopqrstuvwxyzABCDEF",
    )


def node_secrets() -> NodeSecrets:
    return NodeSecrets(
        kubelet_cert=cert_pem("kubelet", "kubelet"),
        kubelet_key=key_pem("kubelet"),
        kube_proxy_cert=cert_pem("kube-proxy", "system:kube-proxy"),
        kube_proxy_key=key_pem("kube-proxy"),
    )


def sample_inputs(**overrides: object) -> KubeEnvInputs:
    """A complete cluster's inputs; keyword arguments replace fields."""
    fields: dict[str, object] = {
        "cluster_name": "kubernetes",
        "instance_prefix": "kubernetes",
        "kube_version": "v1.34.4",
        "master_name": "kubernetes-master",
        "master_internal_ip": "10.40.0.2",
        "server_binary_tar": artifact("kubernetes-server-linux-amd64.tar.gz"),
        "salt_tar": artifact("kubernetes-salt.tar.gz"),
        "salt_runtime_tar": artifact("salt-runtime-py3.11-linux-amd64.tar.gz"),
        "node_images_tar": artifact("kubernetes-node-images.tar.gz"),
        "pause_image": "registry.k8s.io/pause:3.10",
        "workload_image": "localhost/busybox:latest",
        "dns_image": "registry.k8s.io/coredns/coredns:v1.13.1",
        "ca_cert": cert_pem("ca", "kubernetes-ca"),
        "master": master_secrets(),
        "node": node_secrets(),
    }
    fields.update(overrides)
    return KubeEnvInputs(**fields)  # type: ignore[arg-type]
