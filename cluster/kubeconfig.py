"""Adding a cluster to the user's kubeconfig, and taking it out again.

kube-up merges one cluster, one user and one context, all named after the cluster (as the
original kube-up did), into the first file of ``$KUBECONFIG`` or ``~/.kube/config``, keeping every
other entry, and makes it the current context. The cluster entry always carries the CA
(``certificate-authority-data``): kube-up never writes ``insecure-skip-tls-verify``. The file is
written atomically with mode 0600 since it holds the admin's private key.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from cluster.errors import PrereqError
from cluster.files import check_writable, unusable, write_private
from cluster.pki import CertKey

SECTIONS = ("clusters", "users", "contexts")


def kubeconfig_path(env: Mapping[str, str] | None = None) -> Path:
    """The file kubectl writes to: the first entry of ``$KUBECONFIG``, else ``~/.kube/config``."""
    env = os.environ if env is None else env
    for entry in env.get("KUBECONFIG", "").split(os.pathsep):
        if entry:
            return Path(entry).expanduser()
    return Path.home() / ".kube" / "config"


def write_kubeconfig(
    cluster_name: str,
    server: str,
    ca_pem: bytes,
    admin: CertKey,
    *,
    path: Path | None = None,
) -> Path:
    """Merge the cluster's entries into the kubeconfig and make its context current."""
    if not server.startswith("https://"):
        raise ValueError(f"the apiserver URL must be https://, got {server!r}")
    path = _target(path)
    config = _load(path)
    cluster = {"server": server, "certificate-authority-data": _b64(ca_pem)}
    user = {"client-certificate-data": _b64(admin.cert_pem), "client-key-data": _b64(admin.key_pem)}
    context = {"cluster": cluster_name, "user": cluster_name}
    _put(config, "clusters", cluster_name, "cluster", cluster)
    _put(config, "users", cluster_name, "user", user)
    _put(config, "contexts", cluster_name, "context", context)
    config["current-context"] = cluster_name
    _save(path, config)
    return path


def check_usable(path: Path | None = None) -> Path:
    """Check before any cloud call that the kubeconfig parses and can be written: finding out
    only once the cluster is up would leave the user with a cluster and no way in."""
    path = _target(path)
    _load(path)
    check_writable(path)
    return path


def remove_context(cluster_name: str, *, path: Path | None = None) -> bool:
    """Remove the cluster, user and context named ``cluster_name``; keep everything else.

    Returns whether anything was removed. A current context that was this one is unset.
    """
    path = _target(path)
    if not path.exists():
        return False
    config = _load(path)
    removed = False
    for section in SECTIONS:
        entries = config.get(section) or []
        kept = [e for e in entries if not (isinstance(e, dict) and e.get("name") == cluster_name)]
        removed |= len(kept) != len(entries)
        config[section] = kept
    if config.get("current-context") == cluster_name:
        config["current-context"] = ""
        removed = True
    if removed:
        _save(path, config)
    return removed


def _target(path: Path | None) -> Path:
    """The real file to write: a symlinked kubeconfig is updated where it points."""
    return (path if path is not None else kubeconfig_path()).resolve()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _load(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        config = yaml.safe_load(text) if text.strip() else None
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise _unusable(path, type(exc).__name__) from None
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise _unusable(path, "it is not a YAML mapping")
    for section in SECTIONS:
        if not isinstance(config.get(section) or [], list):
            raise _unusable(path, f"'{section}' is not a list")
    config.setdefault("apiVersion", "v1")
    config.setdefault("kind", "Config")
    config.setdefault("preferences", {})
    return config


def _unusable(path: Path, why: str) -> PrereqError:
    return PrereqError(f"kubeconfig {path} is unusable: {why}", fix="repair it or move it away")


def _put(config: dict[str, Any], section: str, name: str, key: str, body: dict[str, Any]) -> None:
    """Replace the entry ``name`` of ``section`` (or append it), keeping the others' order."""
    entries = list(config.get(section) or [])
    entry = {"name": name, key: body}
    for i, existing in enumerate(entries):
        if isinstance(existing, dict) and existing.get("name") == name:
            entries[i] = entry
            break
    else:
        entries.append(entry)
    config[section] = entries


def _save(path: Path, config: dict[str, Any]) -> None:
    if not path.parent.exists():
        try:
            path.parent.mkdir(mode=0o700, parents=True)
        except OSError as exc:
            raise unusable(path.parent, exc) from None
    write_private(path, yaml.safe_dump(config, default_flow_style=False, sort_keys=False))
