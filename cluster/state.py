"""A cluster's local state: its PKI, admin password and SSH key, in a private directory.

The directory is ``$KUBE_UP_STATE_DIR/<cluster>`` or ``~/.local/state/kube-up/<cluster>`` (0700,
every file 0600). It is the only copy of the cluster CA, so re-running kube-up must reuse what is
there: :meth:`ClusterState.ensure_secrets` loads what exists and creates only what is missing or
no longer valid, and :meth:`ClusterState.ensure_apiserver_cert` re-issues the serving
certificate only when the master's names or addresses changed. Cloud resources are never found
through this directory (labels do that); it only holds what cannot be re-derived.

Layout::

    pki/ca.{crt,key}                     cluster CA
    pki/front-proxy-ca.{crt,key}         CA for the requestheader (front proxy) client
    pki/<component>.{crt,key}            apiserver, admin, kubelet, kube-proxy, ...
    pki/sa.{key,pub}                     service-account token signing key
    admin-password, htpasswd             basic auth for nginx on the master
    ssh/id_ed25519{,.pub}                the key kube-up logs into the VMs with
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import shutil
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cluster import pki
from cluster.errors import PrereqError
from cluster.files import private_dir, unusable, write_private

STATE_DIR_ENV = "KUBE_UP_STATE_DIR"
AUTH_FILE_ENV = "KUBERNETES_AUTH_FILE"
ADMIN_USER = "admin"

# Client certificates every cluster gets: file name -> (CN = user, O = groups).
CLIENT_CERTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "admin": ("admin", ("system:masters",)),
    "kubelet": ("kubelet", ()),
    "kube-proxy": ("system:kube-proxy", ()),
    "kube-controller-manager": ("system:kube-controller-manager", ()),
    "kube-scheduler": ("system:kube-scheduler", ()),
    "apiserver-kubelet-client": ("kube-apiserver-kubelet-client", ("system:masters",)),
}
# In-cluster names of the apiserver, always in its serving certificate.
APISERVER_DNS_NAMES = (
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
    "localhost",
)


@dataclass(frozen=True)
class ClusterSecrets:
    """Everything secret about a cluster except the apiserver's serving certificate."""

    ca: pki.CertKey
    front_proxy_ca: pki.CertKey
    front_proxy_client: pki.CertKey
    # Client certificates by CLIENT_CERTS name: "admin", "kubelet", "kube-proxy", ...
    clients: Mapping[str, pki.CertKey]
    service_account_key_pem: bytes = field(repr=False)
    service_account_public_pem: bytes
    admin_password: str = field(repr=False)
    htpasswd: str = field(repr=False)
    ssh_private_key_path: Path
    ssh_public_key: str

    @property
    def admin(self) -> pki.CertKey:
        return self.clients["admin"]

    def secret_values(self) -> tuple[str, ...]:
        """Strings that must never appear in output (for a log redaction filter)."""
        keys = [self.service_account_key_pem, self.ca.key_pem, self.front_proxy_ca.key_pem]
        keys += [self.front_proxy_client.key_pem] + [c.key_pem for c in self.clients.values()]
        return (self.admin_password, self.htpasswd, *(k.decode() for k in keys))


def state_root(env: Mapping[str, str] | None = None) -> Path:
    """Where clusters' state directories live."""
    env = os.environ if env is None else env
    if env.get(STATE_DIR_ENV):
        return Path(env[STATE_DIR_ENV])
    return Path.home() / ".local" / "state" / "kube-up"


class ClusterState:
    """The state directory of one cluster."""

    def __init__(self, cluster_name: str, root: Path | None = None) -> None:
        if not cluster_name or "/" in cluster_name or cluster_name.startswith("."):
            raise ValueError(f"bad cluster name for a state directory: {cluster_name!r}")
        self.cluster_name = cluster_name
        self.path = (root if root is not None else state_root()) / cluster_name

    @property
    def pki_dir(self) -> Path:
        return self.path / "pki"

    def exists(self) -> bool:
        return self.path.is_dir()

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Serialise kube-up runs on the same cluster (an exclusive lock on ``.lock``)."""
        private_dir(self.path)
        try:
            fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise unusable(self.path / ".lock", exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def ensure_secrets(self) -> ClusterSecrets:
        """Load the cluster's secrets, creating whatever is missing or no longer valid."""
        with self.lock():
            private_dir(self.pki_dir)
            private_dir(self.path / "ssh")
            ca = self._ensure_ca("ca", "kubernetes-ca")
            front_proxy_ca = self._ensure_ca("front-proxy-ca", "front-proxy-ca")
            clients = {
                name: self._ensure_leaf(name, ca, cn, orgs, client=True)
                for name, (cn, orgs) in CLIENT_CERTS.items()
            }
            front_proxy_client = self._ensure_leaf(
                "front-proxy-client", front_proxy_ca, "front-proxy-client", (), client=True
            )
            sa_key = self._ensure_file(self.pki_dir / "sa.key", pki.new_private_key_pem)
            sa_pub = pki.public_key_pem(sa_key)
            pub_path = self.pki_dir / "sa.pub"
            if not pub_path.exists() or pub_path.read_bytes() != sa_pub:
                write_private(pub_path, sa_pub)
            password = self._ensure_file(
                self.path / "admin-password", lambda: pki.new_password().encode()
            ).decode()
            htpasswd = self._ensure_htpasswd(password)
            ssh_key, ssh_pub = self._ensure_ssh_key()
            return ClusterSecrets(
                ca=ca,
                front_proxy_ca=front_proxy_ca,
                front_proxy_client=front_proxy_client,
                clients=types.MappingProxyType(clients),
                service_account_key_pem=sa_key,
                service_account_public_pem=sa_pub,
                admin_password=password,
                htpasswd=htpasswd,
                ssh_private_key_path=ssh_key,
                ssh_public_key=ssh_pub,
            )

    def ensure_apiserver_cert(
        self,
        ca: pki.CertKey,
        *,
        master_name: str,
        master_ips: Iterable[str | ipaddress.IPv4Address],
        service_ip: str | ipaddress.IPv4Address,
    ) -> pki.CertKey:
        """The apiserver's serving certificate for the master's current names and addresses.

        ``master_ips`` are its internal and external addresses; the first service IP, the
        ``kubernetes.default...`` names, ``localhost`` and 127.0.0.1 are always added. The
        certificate on disk is reused when it already covers exactly these.
        """
        dns = frozenset((*APISERVER_DNS_NAMES, master_name))
        ips = frozenset(ipaddress.ip_address(ip) for ip in (*master_ips, service_ip, "127.0.0.1"))
        with self.lock():
            private_dir(self.pki_dir)
            current = self._load_pair("apiserver")
            if (
                current is not None
                and pki.still_valid(current, ca)
                and pki.subject_alt_names(current.cert) == (dns, ips)
            ):
                return current
            pair = pki.issue(
                ca, "kube-apiserver", dns_names=sorted(dns), ip_addresses=sorted(ips), server=True
            )
            self._save_pair("apiserver", pair)
            return pair

    def destroy(self) -> None:
        """Remove the whole state directory (kube-down, once the cloud resources are gone)."""
        shutil.rmtree(self.path, ignore_errors=True)

    def _ensure_ca(self, name: str, common_name: str) -> pki.CertKey:
        pair = self._load_pair(name)
        if pair is None:
            pair = pki.new_ca(common_name)
            self._save_pair(name, pair)
        return pair

    def _ensure_leaf(
        self, name: str, ca: pki.CertKey, cn: str, orgs: tuple[str, ...], *, client: bool
    ) -> pki.CertKey:
        pair = self._load_pair(name)
        if pair is None or not pki.still_valid(pair, ca) or pki.identity(pair.cert) != (cn, orgs):
            pair = pki.issue(ca, cn, organizations=orgs, client=client)
            self._save_pair(name, pair)
        return pair

    def _load_pair(self, name: str) -> pki.CertKey | None:
        """The pair ``name`` from disk: None if both files are absent; a half pair or a
        corrupt one is an error (for a CA, replacing it would orphan the running cluster)."""
        cert_path, key_path = self.pki_dir / f"{name}.crt", self.pki_dir / f"{name}.key"
        if not cert_path.exists():
            # No pair, or a key alone: _save_pair writes the key first, so a key without its
            # certificate is a save cut short (kube-up killed); nothing can trust a
            # certificate that was never written, so a new pair replaces it.
            return None
        try:
            pair = pki.CertKey(cert_path.read_bytes(), key_path.read_bytes())
            if pair.cert.public_key() != pair.private_key().public_key():
                raise ValueError("the key does not belong to the certificate")
        except (OSError, ValueError, TypeError) as exc:
            raise PrereqError(
                f"state directory {self.pki_dir}: {name}.crt/{name}.key unusable ({_reason(exc)})",
                fix=f"restore them, or delete both to issue new ones (a new {name} breaks "
                "running VMs that trust the old one)",
            ) from None
        return pair

    def _save_pair(self, name: str, pair: pki.CertKey) -> None:
        write_private(self.pki_dir / f"{name}.key", pair.key_pem)
        write_private(self.pki_dir / f"{name}.crt", pair.cert_pem)

    def _ensure_file(self, path: Path, make: Callable[[], bytes]) -> bytes:
        if path.exists():
            return path.read_bytes()
        data = make()
        write_private(path, data)
        return data

    def _ensure_htpasswd(self, password: str) -> str:
        path = self.path / "htpasswd"
        if path.exists():
            line = path.read_text().strip()
            if pki.htpasswd_matches(line, ADMIN_USER, password):
                return line
        line = pki.htpasswd_line(ADMIN_USER, password)
        write_private(path, line + "\n")
        return line

    def _ensure_ssh_key(self) -> tuple[Path, str]:
        key_path = self.path / "ssh" / "id_ed25519"
        pub_path = key_path.with_name("id_ed25519.pub")
        if key_path.exists() and pub_path.exists():
            return key_path, pub_path.read_text().strip()
        private, public = pki.new_ssh_keypair(f"kube-up@{self.cluster_name}")
        write_private(key_path, private)
        write_private(pub_path, public + "\n")
        return key_path, public


def _reason(exc: BaseException) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


# --- ~/.kubernetes_auth ----------------------------------------------------------------------


def auth_file_path(env: Mapping[str, str] | None = None) -> Path:
    """``$KUBERNETES_AUTH_FILE`` or ``~/.kubernetes_auth``."""
    env = os.environ if env is None else env
    return Path(env[AUTH_FILE_ENV]) if env.get(AUTH_FILE_ENV) else Path.home() / ".kubernetes_auth"


def write_auth_file(
    state: ClusterState, secrets: ClusterSecrets, env: Mapping[str, str] | None = None
) -> Path:
    """Write the classic admin credentials file (0600): user, password and certificate paths."""
    path = auth_file_path(env)
    pki_dir = state.pki_dir.resolve()
    content = {
        "User": ADMIN_USER,
        "Password": secrets.admin_password,
        "CAFile": str(pki_dir / "ca.crt"),
        "CertFile": str(pki_dir / "admin.crt"),
        "KeyFile": str(pki_dir / "admin.key"),
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise unusable(path.parent, exc) from None
    write_private(path, json.dumps(content, indent=2) + "\n")
    return path


def remove_auth_file(state: ClusterState, env: Mapping[str, str] | None = None) -> bool:
    """Delete the credentials file if it belongs to this cluster; say whether it did."""
    path = auth_file_path(env)
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    cert = content.get("CertFile") if isinstance(content, dict) else None
    if not isinstance(cert, str) or Path(cert).parent != state.pki_dir.resolve():
        return False
    path.unlink(missing_ok=True)
    return True
