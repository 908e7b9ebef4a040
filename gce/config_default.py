"""Defaults and value formats for ``KUBERNETES_PROVIDER=gce`` (Google Compute Engine).

Data only: :mod:`cluster.config` merges ``DEFAULTS`` with the environment and ``--config FILE``
and checks provider-specific values against ``FORMATS``. Where the API calls go is not a
setting: :mod:`gce.clients` follows gcloud's ``CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE`` and
google-cloud-storage's ``STORAGE_EMULATOR_HOST``, which is how the local provider reaches
localcloud.
"""

DEBIAN_12 = "projects/debian-cloud/global/images/family/debian-12"

DEFAULTS: dict[str, object] = {
    "NUM_NODES": 3,
    "INSTANCE_PREFIX": "kubernetes",
    "ZONE": "us-central1-b",
    # Empty: derived from ZONE (a value that disagrees with ZONE is an error).
    "REGION": "",
    # Empty: the project of the application-default credentials.
    "PROJECT": "",
    "MASTER_SIZE": "e2-standard-2",
    "NODE_SIZE": "e2-standard-2",
    "MASTER_IMAGE": DEBIAN_12,
    "NODE_IMAGE": DEBIAN_12,
    "MASTER_DISK_SIZE": "20GB",
    "NODE_DISK_SIZE": "50GB",
    "NETWORK": "default",
    "SUBNET_RANGE": "10.240.0.0/16",
    "CLUSTER_IP_RANGE": "10.244.0.0/16",
    "SERVICE_CLUSTER_IP_RANGE": "10.0.0.0/16",
    "KUBE_VERSION": "v1.34.4",
    "KUBE_UP_POLL_INTERVAL": 2,
    "KUBE_UP_TIMEOUT": 1800,
    "MASTER_TAG": "",
    "NODE_TAG": "",
    "STAGING_BUCKET": "",
    "ENABLE_CLUSTER_DNS": True,
    "DNS_DOMAIN": "cluster.local",
}

# Setting -> (regular expression the whole value must match, what to tell the user).
FORMATS: dict[str, tuple[str, str]] = {
    # The named group is the region: us-central1-b is in us-central1.
    "ZONE": (r"(?P<region>[a-z]+-[a-z]+[0-9]{1,2})-[a-z]", "a GCE zone like 'us-central1-b'"),
    "PROJECT": (
        r"([a-z][-a-z0-9]{4,28}[a-z0-9])?",
        "'' (the credentials' project) or a GCE project id like 'my-project-123'",
    ),
    "MASTER_SIZE": (r"[a-z][a-z0-9]*(-[a-z0-9]+)+", "a GCE machine type like 'e2-standard-2'"),
    "NODE_SIZE": (r"[a-z][a-z0-9]*(-[a-z0-9]+)+", "a GCE machine type like 'e2-standard-2'"),
    "MASTER_IMAGE": (
        r"(projects/[a-z][-a-z0-9.:]{2,62}/global/images/(family/)?)?[a-z]([-a-z0-9]*[a-z0-9])?",
        f"an image name or path like '{DEBIAN_12}'",
    ),
    "NODE_IMAGE": (
        r"(projects/[a-z][-a-z0-9.:]{2,62}/global/images/(family/)?)?[a-z]([-a-z0-9]*[a-z0-9])?",
        f"an image name or path like '{DEBIAN_12}'",
    ),
}

# Older names still accepted, as in the original kube-up: alias -> the settings it sets.
ALIASES: dict[str, tuple[str, ...]] = {"NUM_MINIONS": ("NUM_NODES",)}
