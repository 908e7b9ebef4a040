"""Defaults for ``KUBERNETES_PROVIDER=local`` (the default): the GCE provider pointed at localcloud.

Same settings and formats as :mod:`gce.config_default` (the same code path runs), sized for
machines that share this host. Data only; :mod:`cluster.config` does the merging.
"""

from gce.config_default import ALIASES, FORMATS
from gce.config_default import DEFAULTS as GCE_DEFAULTS

DEFAULTS: dict[str, object] = {
    **GCE_DEFAULTS,
    "NUM_NODES": 2,
    # localcloud accepts any project id; a fixed one keeps local resource names predictable.
    "PROJECT": "kube-local",
    "MASTER_SIZE": "e2-standard-2",
    "NODE_SIZE": "e2-medium",
    "MASTER_DISK_SIZE": "20GB",
    "NODE_DISK_SIZE": "20GB",
}

__all__ = ["ALIASES", "DEFAULTS", "FORMATS"]
