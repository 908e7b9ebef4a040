"""Which Kubernetes release we build, and why that one.

v1.34 is the newest minor whose kubelet still runs on cgroup v1 hosts by default: from v1.35 the
kubelet refuses to start on cgroup v1 unless ``failCgroupV1: false`` is set, and the hosts this
project targets (and its CI machines) expose cgroup v1 controllers with cgroup2 only at
``/sys/fs/cgroup/unified``. v1.34.4 is the newest v1.34 patch release the Go module proxy serves.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from cluster.errors import ConfigError

DEFAULT_KUBE_VERSION = "v1.34.4"
PAUSE_IMAGE_TAG = "3.10.1"
PAUSE_IMAGE = f"registry.k8s.io/pause:{PAUSE_IMAGE_TAG}"
WORKLOAD_IMAGE = "localhost/busybox:latest"
# The cluster DNS server; built from the Go module proxy like etcd, shipped as an image.
COREDNS_VERSION = "v1.13.1"
DNS_IMAGE = f"registry.k8s.io/coredns/coredns:{COREDNS_VERSION}"

_VERSION = re.compile(r"^v1\.(\d{1,3})\.(\d{1,3})$")


@dataclass(frozen=True)
class KubeVersion:
    """A Kubernetes release version such as ``v1.34.4``."""

    text: str
    minor: int
    patch: int

    @property
    def staging_version(self) -> str:
        """The matching version of the staging modules (k8s.io/api and friends): ``v0.34.4``."""
        return f"v0.{self.minor}.{self.patch}"


def parse_kube_version(text: str) -> KubeVersion:
    """Parse a release version, refusing pre-releases and anything not shaped ``v1.N.P``."""
    match = _VERSION.match(text.strip())
    if not match:
        raise ConfigError(
            f"KUBE_VERSION={text!r} is not a Kubernetes release version; "
            f"use the form v1.MINOR.PATCH, e.g. {DEFAULT_KUBE_VERSION}"
        )
    return KubeVersion(text=text.strip(), minor=int(match[1]), patch=int(match[2]))


def requested_kube_version(explicit: str | None = None) -> KubeVersion:
    """The version asked for: an explicit argument, else ``KUBE_VERSION``, else the pinned one."""
    return parse_kube_version(explicit or os.environ.get("KUBE_VERSION") or DEFAULT_KUBE_VERSION)
