"""Render kube-env, the one metadata attribute a VM's startup script configures itself from.

kube-env is a flat YAML map of UPPER_CASE keys to strings, written one ``KEY: 'value'`` line per
key in a fixed order, so the same inputs give the same bytes (golden-tested) and the node script
can read it with a strict line parser instead of a YAML library. Secrets go only into the role
that uses them: a node's kube-env never carries a master key.

Keys (M = master only, N = node only, both otherwise):

- ``CLUSTER_NAME``, ``INSTANCE_PREFIX``: names the cluster and its resources.
- ``KUBE_VERSION``: the Kubernetes release, e.g. ``v1.34.4``.
- ``KUBERNETES_MASTER``: ``"true"`` on the master, ``"false"`` on nodes; picks the salt role.
- ``KUBERNETES_MASTER_NAME``: the master instance's name.
- ``KUBERNETES_MASTER_IP``: the master's internal IP; nodes reach the API at
  ``https://IP:443`` (nginx), the apiserver advertises it for the ``kubernetes`` Service.
- ``SERVICE_CLUSTER_IP_RANGE``, ``CLUSTER_IP_RANGE``: Service and pod address ranges.
- ``SERVER_BINARY_TAR_URL``/``_HASH``, ``SALT_TAR_URL``/``_HASH``,
  ``SALT_RUNTIME_TAR_URL``/``_HASH``: release artifacts and their sha256 (hex).
- ``NODE_IMAGES_TAR_URL``/``_HASH`` (N): the pause and workload images as OCI archives.
- ``PAUSE_IMAGE`` (N): containerd's sandbox image; ``WORKLOAD_IMAGE`` (N): the busybox image.
- ``ENABLE_CLUSTER_DNS`` (``"true"``/``"false"``), ``DNS_SERVER_IP``, ``DNS_DOMAIN``,
  ``DNS_IMAGE``: the CoreDNS addon the master runs at the DNS Service IP, which kubelets hand
  to pods as their resolver (nodes import the image; the master names it in the Deployment).
- ``MASTER_PD_DEVICE`` (M): where the master's persistent disk appears (a block device on GCE,
  a directory on localcloud); etcd keeps its data there.
- ``CA_CERT``: the cluster CA certificate, base64 PEM.
- ``APISERVER_CERT``/``_KEY`` (M): serving pair for the apiserver and nginx.
- ``SERVICE_ACCOUNT_KEY`` (M): signs service account tokens (PKCS#8 is fine for signing).
- ``SERVICE_ACCOUNT_PUBLIC_KEY`` (M): its public half, derived here: the apiserver's
  ``--service-account-key-file`` reads public keys but not PKCS#8 private ones.
- ``KUBECFG_CERT``/``_KEY`` (M): the admin client pair (O=system:masters); kube-up fetches it.
- ``CONTROLLER_MANAGER_CERT``/``_KEY``, ``SCHEDULER_CERT``/``_KEY`` (M): component clients.
- ``APISERVER_KUBELET_CLIENT_CERT``/``_KEY`` (M): the apiserver's client pair for kubelets
  (O=system:masters, so kubelets' webhook authorization lets it read logs and exec).
- ``FRONT_PROXY_CA_CERT``, ``FRONT_PROXY_CLIENT_CERT``/``_KEY`` (M): nginx proves itself to the
  apiserver with this pair and passes the authenticated user in request headers.
- ``KUBE_HTPASSWD`` (M): the htpasswd line of user ``admin`` (a hash, never the password).
- ``KUBELET_CERT``/``_KEY`` (N): kubelet client pair, CN=kubelet, shared by all nodes.
- ``KUBE_PROXY_CERT``/``_KEY`` (N): kube-proxy client pair, CN=system:kube-proxy.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

ROLES = ("master", "node")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_KEY_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


class KubeEnvError(ValueError):
    """Inputs that cannot make a working kube-env; the message names the input and the fix."""


@dataclass(frozen=True)
class Artifact:
    """A staged release file: where a VM downloads it and the sha256 (hex) it must have."""

    url: str
    sha256: str


@dataclass(frozen=True)
class MasterSecrets:
    """PEM material only the master receives."""

    apiserver_cert: bytes
    apiserver_key: bytes
    service_account_key: bytes
    kubecfg_cert: bytes
    kubecfg_key: bytes
    controller_manager_cert: bytes
    controller_manager_key: bytes
    scheduler_cert: bytes
    scheduler_key: bytes
    apiserver_kubelet_client_cert: bytes
    apiserver_kubelet_client_key: bytes
    front_proxy_ca_cert: bytes
    front_proxy_client_cert: bytes
    front_proxy_client_key: bytes
    htpasswd: str


@dataclass(frozen=True)
class NodeSecrets:
    """PEM material only nodes receive."""

    kubelet_cert: bytes
    kubelet_key: bytes
    kube_proxy_cert: bytes
    kube_proxy_key: bytes


@dataclass(frozen=True)
class KubeEnvInputs:
    """Everything kube-env is made of; the secrets of a role may be absent when not rendered."""

    cluster_name: str
    instance_prefix: str
    kube_version: str
    master_name: str
    master_internal_ip: str
    server_binary_tar: Artifact
    salt_tar: Artifact
    salt_runtime_tar: Artifact
    node_images_tar: Artifact
    pause_image: str
    workload_image: str
    dns_image: str
    ca_cert: bytes
    master: MasterSecrets | None = None
    node: NodeSecrets | None = None
    service_cluster_ip_range: str = "10.0.0.0/16"
    cluster_ip_range: str = "10.244.0.0/16"
    master_pd_device: str = "/dev/disk/by-id/google-master-pd"
    enable_cluster_dns: bool = True
    dns_server_ip: str = "10.0.0.10"
    dns_domain: str = "cluster.local"


def _b64(pem: bytes | str) -> str:
    data = pem.encode() if isinstance(pem, str) else pem
    return base64.b64encode(data).decode()


def _subject(name: str, pem: bytes) -> tuple[str, list[str]]:
    """The CN and O values of a PEM certificate, or a KubeEnvError naming the input."""
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise KubeEnvError(
            f"kube-env: {name} is not a PEM certificate; regenerate the PKI"
        ) from None
    cns = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    orgs = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    return (cns[0] if cns else ""), orgs


def _public_key(name: str, pem: bytes) -> bytes:
    """The SubjectPublicKeyInfo PEM of a PEM private key."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise KubeEnvError(f"kube-env: {name} is not an unencrypted PEM private key") from None
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _require_cn(name: str, pem: bytes, expected: str) -> None:
    """Kubernetes' built-in RBAC grants rights by these exact user names."""
    cn, _ = _subject(name, pem)
    if cn != expected:
        raise KubeEnvError(
            f"kube-env: {name} has CN={cn!r}, the cluster's RBAC needs CN={expected!r}; "
            "regenerate it with that subject"
        )


def _require_org(name: str, pem: bytes, expected: str) -> None:
    _, orgs = _subject(name, pem)
    if expected not in orgs:
        raise KubeEnvError(
            f"kube-env: {name} has O={orgs!r}, it needs O={expected!r}; "
            "regenerate it with that subject"
        )


def _check_artifact(key: str, artifact: Artifact) -> None:
    if not artifact.url.startswith(("http://", "https://")):
        raise KubeEnvError(f"kube-env: {key}_URL {artifact.url!r} must be an http(s) URL")
    if not _HEX64.match(artifact.sha256):
        raise KubeEnvError(
            f"kube-env: {key}_HASH {artifact.sha256!r} must be a sha256 as 64 lowercase hex digits"
        )


def _check_common(inputs: KubeEnvInputs) -> None:
    try:
        ipaddress.IPv4Address(inputs.master_internal_ip)
    except ValueError:
        raise KubeEnvError(
            f"kube-env: KUBERNETES_MASTER_IP {inputs.master_internal_ip!r} is not an IPv4 address"
        ) from None
    for key, value in (
        ("SERVICE_CLUSTER_IP_RANGE", inputs.service_cluster_ip_range),
        ("CLUSTER_IP_RANGE", inputs.cluster_ip_range),
    ):
        try:
            if "/" not in value:
                raise ValueError(value)
            ipaddress.IPv4Network(value)
        except ValueError:
            raise KubeEnvError(
                f"kube-env: {key} {value!r} is not an IPv4 CIDR like 10.0.0.0/16"
            ) from None
    _check_dns(inputs)
    _subject("CA_CERT", inputs.ca_cert)


def _check_dns(inputs: KubeEnvInputs) -> None:
    """The DNS Service IP must be a usable address of the service range (not its first, which
    the ``kubernetes`` Service takes, nor its network or broadcast address)."""
    services = ipaddress.IPv4Network(inputs.service_cluster_ip_range)
    try:
        ip = ipaddress.IPv4Address(inputs.dns_server_ip)
    except ValueError:
        ip = None
    usable = (
        ip is not None
        and ip in services
        and ip
        not in (
            services.network_address,
            services.network_address + 1,
            services.broadcast_address,
        )
    )
    if not usable:
        raise KubeEnvError(
            f"kube-env: DNS_SERVER_IP {inputs.dns_server_ip!r} is not a free address of "
            f"SERVICE_CLUSTER_IP_RANGE {services}; pick one from its third address on"
        )


def _common(inputs: KubeEnvInputs, role: str) -> list[tuple[str, str]]:
    _check_common(inputs)
    artifacts = [
        ("SERVER_BINARY_TAR", inputs.server_binary_tar),
        ("SALT_TAR", inputs.salt_tar),
        ("SALT_RUNTIME_TAR", inputs.salt_runtime_tar),
    ]
    if role == "node":
        artifacts.append(("NODE_IMAGES_TAR", inputs.node_images_tar))
    pairs = [
        ("CLUSTER_NAME", inputs.cluster_name),
        ("INSTANCE_PREFIX", inputs.instance_prefix),
        ("KUBE_VERSION", inputs.kube_version),
        ("KUBERNETES_MASTER", "true" if role == "master" else "false"),
        ("KUBERNETES_MASTER_NAME", inputs.master_name),
        ("KUBERNETES_MASTER_IP", inputs.master_internal_ip),
        ("SERVICE_CLUSTER_IP_RANGE", inputs.service_cluster_ip_range),
        ("CLUSTER_IP_RANGE", inputs.cluster_ip_range),
        ("ENABLE_CLUSTER_DNS", "true" if inputs.enable_cluster_dns else "false"),
        ("DNS_SERVER_IP", inputs.dns_server_ip),
        ("DNS_DOMAIN", inputs.dns_domain),
        ("DNS_IMAGE", inputs.dns_image),
    ]
    for key, artifact in artifacts:
        _check_artifact(key, artifact)
        pairs += [(f"{key}_URL", artifact.url), (f"{key}_HASH", artifact.sha256)]
    pairs.append(("CA_CERT", _b64(inputs.ca_cert)))
    return pairs


def _master(inputs: KubeEnvInputs) -> list[tuple[str, str]]:
    s = inputs.master
    if s is None:
        raise KubeEnvError("kube-env: the master role needs MasterSecrets; generate the PKI first")
    _require_cn(
        "CONTROLLER_MANAGER_CERT", s.controller_manager_cert, "system:kube-controller-manager"
    )
    _require_cn("SCHEDULER_CERT", s.scheduler_cert, "system:kube-scheduler")
    # The master's own kubectl (RBAC bindings) uses the admin pair; kubelets authorize the
    # apiserver's log/exec calls by its group.
    _require_org("KUBECFG_CERT", s.kubecfg_cert, "system:masters")
    _require_org("APISERVER_KUBELET_CLIENT_CERT", s.apiserver_kubelet_client_cert, "system:masters")
    _subject("FRONT_PROXY_CA_CERT", s.front_proxy_ca_cert)
    if not re.match(r"^admin:[^\s:]+$", s.htpasswd):
        raise KubeEnvError(
            "kube-env: KUBE_HTPASSWD must be one htpasswd line 'admin:<hash>' (no password text)"
        )
    return [
        ("MASTER_PD_DEVICE", inputs.master_pd_device),
        ("APISERVER_CERT", _b64(s.apiserver_cert)),
        ("APISERVER_KEY", _b64(s.apiserver_key)),
        ("SERVICE_ACCOUNT_KEY", _b64(s.service_account_key)),
        (
            "SERVICE_ACCOUNT_PUBLIC_KEY",
            _b64(_public_key("SERVICE_ACCOUNT_KEY", s.service_account_key)),
        ),
        ("KUBECFG_CERT", _b64(s.kubecfg_cert)),
        ("KUBECFG_KEY", _b64(s.kubecfg_key)),
        ("CONTROLLER_MANAGER_CERT", _b64(s.controller_manager_cert)),
        ("CONTROLLER_MANAGER_KEY", _b64(s.controller_manager_key)),
        ("SCHEDULER_CERT", _b64(s.scheduler_cert)),
        ("SCHEDULER_KEY", _b64(s.scheduler_key)),
        ("APISERVER_KUBELET_CLIENT_CERT", _b64(s.apiserver_kubelet_client_cert)),
        ("APISERVER_KUBELET_CLIENT_KEY", _b64(s.apiserver_kubelet_client_key)),
        ("FRONT_PROXY_CA_CERT", _b64(s.front_proxy_ca_cert)),
        ("FRONT_PROXY_CLIENT_CERT", _b64(s.front_proxy_client_cert)),
        ("FRONT_PROXY_CLIENT_KEY", _b64(s.front_proxy_client_key)),
        ("KUBE_HTPASSWD", s.htpasswd),
    ]


def _node(inputs: KubeEnvInputs) -> list[tuple[str, str]]:
    s = inputs.node
    if s is None:
        raise KubeEnvError("kube-env: the node role needs NodeSecrets; generate the PKI first")
    _require_cn("KUBELET_CERT", s.kubelet_cert, "kubelet")
    _require_cn("KUBE_PROXY_CERT", s.kube_proxy_cert, "system:kube-proxy")
    return [
        ("PAUSE_IMAGE", inputs.pause_image),
        ("WORKLOAD_IMAGE", inputs.workload_image),
        ("KUBELET_CERT", _b64(s.kubelet_cert)),
        ("KUBELET_KEY", _b64(s.kubelet_key)),
        ("KUBE_PROXY_CERT", _b64(s.kube_proxy_cert)),
        ("KUBE_PROXY_KEY", _b64(s.kube_proxy_key)),
    ]


def _line(key: str, value: str) -> str:
    """One YAML line with a single-quoted scalar: only ``'`` needs escaping (as ``''``)."""
    if not _KEY_NAME.match(key):
        raise KubeEnvError(f"kube-env: key {key!r} must be UPPER_CASE")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise KubeEnvError(f"kube-env: {key} holds a control character or newline; remove it")
    return f"{key}: '{value.replace(chr(39), chr(39) * 2)}'"


def kube_env_pairs(inputs: KubeEnvInputs, role: str) -> list[tuple[str, str]]:
    """The (key, value) pairs of ``role``'s kube-env, in rendering order."""
    if role not in ROLES:
        raise KubeEnvError(f"kube-env: role {role!r} is not one of {', '.join(ROLES)}")
    pairs = _common(inputs, role)
    pairs += _master(inputs) if role == "master" else _node(inputs)
    return pairs


def render_kube_env(inputs: KubeEnvInputs, role: str) -> str:
    """kube-env for ``role`` ("master" or "node") as deterministic YAML text."""
    return "".join(_line(key, value) + "\n" for key, value in kube_env_pairs(inputs, role))
