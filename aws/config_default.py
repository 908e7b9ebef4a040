"""Defaults and value formats for ``KUBERNETES_PROVIDER=aws`` (EC2 and S3, through boto3).

Data only, merged by :mod:`cluster.config`. ``AWS_ZONE`` and ``AWS_REGION`` are accepted as
aliases of ``ZONE`` and ``REGION``; ``AMI`` sets both ``MASTER_IMAGE`` and ``NODE_IMAGE``.
"""

DEFAULTS: dict[str, object] = {
    "NUM_NODES": 3,
    "INSTANCE_PREFIX": "kubernetes",
    "ZONE": "us-west-2a",
    # Empty: derived from ZONE (a value that disagrees with ZONE is an error).
    "REGION": "",
    # Not used on AWS (the bucket name hashes the account id instead).
    "PROJECT": "",
    "MASTER_SIZE": "t3.medium",
    "NODE_SIZE": "t3.medium",
    # Empty: the newest official Debian 12 AMI of the region, looked up at run time.
    "MASTER_IMAGE": "",
    "NODE_IMAGE": "",
    "MASTER_DISK_SIZE": "20GB",
    "NODE_DISK_SIZE": "50GB",
    # The Name tag of the VPC kube-up creates for the cluster.
    "NETWORK": "kubernetes-vpc",
    "SUBNET_RANGE": "172.20.0.0/24",
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

_AMI = (r"(ami-[0-9a-f]{8}|ami-[0-9a-f]{17})?", "'' (Debian 12) or an AMI id like 'ami-0abc1234'")
_TYPE = (r"[a-z][a-z0-9-]*\.[a-z0-9]+", "an EC2 instance type like 't3.medium'")

FORMATS: dict[str, tuple[str, str]] = {
    # The named group is the region: us-west-2a is in us-west-2.
    "ZONE": (r"(?P<region>[a-z]{2}(-gov)?-[a-z]+-[0-9])[a-z]", "an AWS zone like 'us-west-2a'"),
    "PROJECT": (r"([a-z][-a-z0-9]{4,28}[a-z0-9])?", "'' (PROJECT is not used on aws)"),
    "MASTER_SIZE": _TYPE,
    "NODE_SIZE": _TYPE,
    "MASTER_IMAGE": _AMI,
    "NODE_IMAGE": _AMI,
}

ALIASES: dict[str, tuple[str, ...]] = {
    "NUM_MINIONS": ("NUM_NODES",),
    "AWS_ZONE": ("ZONE",),
    "AWS_REGION": ("REGION",),
    "AMI": ("MASTER_IMAGE", "NODE_IMAGE"),
}
