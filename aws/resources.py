"""What a cluster is on AWS: names, tags and request bodies, as pure functions of the config.

Every resource carries the tag ``kube-up-cluster=<name>`` from the request that creates it
(``TagSpecifications``), so a resource is never left untagged by an interrupted run and
teardown finds everything by tag, without local state. IAM and S3 names are global, so they
include the region (IAM) or a hash of account and region (the bucket, see
:meth:`ClusterConfig.staging_bucket`), and their tag is checked before they are adopted.

Nodes read their settings through the instance metadata service (IMDSv2): instance tags give
the URL of their role's kube-env object in the staging bucket, their pod CIDR (set by kube-up
once the Auto Scaling group has launched them) and, on the master, the etcd volume's id. The
instance role's credentials (also from IMDS) let the node script read the bucket; each role
may read the release and its own kube-env only, so a node never sees the master's keys.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import ipaddress
import json
from dataclasses import dataclass
from typing import Any

from cluster.config import ClusterConfig

CLUSTER_TAG = "kube-up-cluster"
ROLE_TAG = "kube-up-role"
POD_CIDR_TAG = "kube-up-pod-cidr"
KUBE_ENV_TAG = "kube-up-kube-env"
MASTER_PD_TAG = "kube-up-master-pd"
RELEASE_PREFIX = "release/"
KUBE_ENV_PREFIX = "kube-env/"
# EC2 keeps the first four addresses of a subnet; upstream kube-up put the master on .9.
MASTER_IP_OFFSET = 9
MASTER_PD_DEVICE = "/dev/sdf"
USER_DATA_LIMIT = 16384
SUBNET_PREFIXES = range(16, 29)

Body = dict[str, Any]
Tags = list[dict[str, str]]


@dataclass(frozen=True)
class Names:
    """Every resource name of a cluster, derived once from its config."""

    config: ClusterConfig

    @property
    def prefix(self) -> str:
        return self.config.instance_prefix

    @property
    def vpc(self) -> str:
        return self.config.network

    @property
    def subnet(self) -> str:
        return f"{self.prefix}-subnet"

    @property
    def internet_gateway(self) -> str:
        return f"{self.prefix}-igw"

    @property
    def route_table(self) -> str:
        return f"{self.prefix}-routes"

    @property
    def security_groups(self) -> tuple[str, str, str]:
        """Internal traffic, ssh to every VM, https to the master (as the GCE firewalls)."""
        return (f"{self.prefix}-internal", f"{self.prefix}-ssh", f"{self.prefix}-master-https")

    @property
    def master_volume(self) -> str:
        return f"{self.config.master_name}-pd"

    @property
    def master_address(self) -> str:
        return f"{self.config.master_name}-ip"

    @property
    def launch_template(self) -> str:
        return f"{self.config.node_base_name}-template"

    @property
    def node_group(self) -> str:
        return f"{self.config.node_base_name}-group"

    def iam_role(self, role: str) -> str:
        """IAM is global: the region keeps same-named clusters in two regions apart."""
        kind = "master" if role == "master" else "minion"
        return f"{self.prefix}-{kind}-{self.config.region}"

    def key_pair(self, public_key: str) -> str:
        """Named after the key, so a new cluster key is a new key pair, never a silent swap."""
        digest = hashlib.sha256(public_key.split()[1].encode()).hexdigest()
        return f"{self.prefix}-{digest[:12]}"


def tags(config: ClusterConfig, *, name: str | None = None, role: str | None = None) -> Tags:
    found = [{"Key": CLUSTER_TAG, "Value": config.cluster_name}]
    if name:
        found.append({"Key": "Name", "Value": name})
    if role:
        found.append({"Key": ROLE_TAG, "Value": role})
    return found


def tag_spec(resource_type: str, tag_list: Tags) -> list[Body]:
    return [{"ResourceType": resource_type, "Tags": tag_list}]


def tag_value(resource: Body, key: str) -> str | None:
    for tag in resource.get("Tags") or []:
        if tag.get("Key") == key:
            return tag.get("Value")
    return None


def owned_filter(config: ClusterConfig, **by_tag: str) -> list[Body]:
    """Describe filters for this cluster's resources (``by_tag``: more tags that must match)."""
    found = [{"Name": f"tag:{CLUSTER_TAG}", "Values": [config.cluster_name]}]
    found += [{"Name": f"tag:{k}", "Values": [v]} for k, v in by_tag.items()]
    return found


def partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if "-gov-" in region:
        return "aws-us-gov"
    return "aws"


def master_internal_ip(config: ClusterConfig) -> str:
    return str(config.subnet_range.network_address + MASTER_IP_OFFSET)


def security_group_rules(config: ClusterConfig) -> dict[str, list[Body]]:
    """Ingress per group: everything from VMs and pods; ssh from anywhere; https to the master."""
    internal, ssh, https = Names(config).security_groups
    inside = sorted({str(config.subnet_range), str(config.cluster_ip_range)})
    anywhere = [{"CidrIp": "0.0.0.0/0"}]
    return {
        internal: [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": c} for c in inside]}],
        ssh: [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": anywhere}],
        https: [{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": anywhere}],
    }


def rule_keys(permissions: list[Body]) -> set[tuple[str, int, int, str]]:
    """Flatten IpPermissions to comparable (protocol, from, to, cidr) tuples."""
    found = set()
    for perm in permissions:
        proto = str(perm.get("IpProtocol"))
        low, high = int(perm.get("FromPort", -1)), int(perm.get("ToPort", -1))
        if proto == "-1":
            low = high = -1
        for cidr in perm.get("IpRanges") or []:
            found.add((proto, low, high, cidr["CidrIp"]))
    return found


def role_groups(config: ClusterConfig, role: str) -> tuple[str, ...]:
    internal, ssh, https = Names(config).security_groups
    return (internal, ssh, https) if role == "master" else (internal, ssh)


def trust_policy() -> str:
    statement = {
        "Effect": "Allow",
        "Principal": {"Service": "ec2.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]}, sort_keys=True)


def role_policy(config: ClusterConfig, role: str, bucket: str) -> str:
    """What a VM of ``role`` may do: read the release and its own role's kube-env."""
    arn = f"arn:{partition(config.region)}:s3:::{bucket}"
    statement = {
        "Sid": "ReadReleaseAndKubeEnv",
        "Effect": "Allow",
        "Action": "s3:GetObject",
        "Resource": [f"{arn}/{RELEASE_PREFIX}*", f"{arn}/{kube_env_key(role)}"],
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]}, sort_keys=True)


def kube_env_key(role: str) -> str:
    return f"{KUBE_ENV_PREFIX}{role}"


def release_key(kube_version: str, file: str) -> str:
    return f"{RELEASE_PREFIX}{kube_version}/{file}"


def user_data(script: str) -> bytes:
    """The node script, gzipped (cloud-init unpacks it): the script alone is near EC2's 16 KiB
    user-data limit. mtime 0 keeps the bytes, and so the launch template, stable."""
    packed = gzip.compress(script.encode(), mtime=0)
    if len(packed) > USER_DATA_LIMIT:
        raise ValueError(f"user-data is {len(packed)} bytes gzipped; EC2 allows {USER_DATA_LIMIT}")
    return packed


METADATA_OPTIONS: Body = {
    # IMDSv2 only; a hop limit of 1 keeps containers (one hop further) from the VM's role.
    "HttpTokens": "required",
    "HttpPutResponseHopLimit": 1,
    "HttpEndpoint": "enabled",
    "InstanceMetadataTags": "enabled",
}


def _root_disk(root_device: str, size_gb: int) -> list[Body]:
    return [
        {
            "DeviceName": root_device,
            "Ebs": {"VolumeSize": size_gb, "VolumeType": "gp3", "DeleteOnTermination": True},
        }
    ]


@dataclass(frozen=True)
class LaunchInputs:
    """What a VM is launched from, found or created before the instance."""

    image: str
    root_device: str
    subnet_id: str
    group_ids: tuple[str, ...]
    key_name: str
    instance_profile: str
    kube_env_url: str
    script: str


def master_instance_params(
    config: ClusterConfig, launch: LaunchInputs, volume_id: str, client_token: str
) -> Body:
    instance_tags = tags(config, name=config.master_name, role="master")
    instance_tags += [
        {"Key": KUBE_ENV_TAG, "Value": launch.kube_env_url},
        {"Key": MASTER_PD_TAG, "Value": volume_id},
    ]
    return {
        "ImageId": launch.image,
        "InstanceType": config.master_size,
        "MinCount": 1,
        "MaxCount": 1,
        "ClientToken": client_token,
        "KeyName": launch.key_name,
        "UserData": user_data(launch.script),
        "IamInstanceProfile": {"Name": launch.instance_profile},
        "NetworkInterfaces": [
            {
                "DeviceIndex": 0,
                "SubnetId": launch.subnet_id,
                "PrivateIpAddress": master_internal_ip(config),
                "Groups": list(launch.group_ids),
                "DeleteOnTermination": True,
            }
        ],
        "BlockDeviceMappings": _root_disk(launch.root_device, 20),
        "MetadataOptions": METADATA_OPTIONS,
        "TagSpecifications": [
            *tag_spec("instance", instance_tags),
            *tag_spec("volume", tags(config, name=f"{config.master_name}-boot")),
        ],
    }


def master_volume_params(config: ClusterConfig) -> Body:
    return {
        "AvailabilityZone": config.zone,
        "Size": config.master_disk_size_gb,
        "VolumeType": "gp3",
        "Encrypted": True,
        "TagSpecifications": tag_spec(
            "volume", tags(config, name=Names(config).master_volume, role="master")
        ),
    }


def node_template_data(config: ClusterConfig, launch: LaunchInputs) -> Body:
    instance_tags = tags(config, role="node") + [
        {"Key": KUBE_ENV_TAG, "Value": launch.kube_env_url}
    ]
    return {
        "ImageId": launch.image,
        "InstanceType": config.node_size,
        "KeyName": launch.key_name,
        "UserData": base64.b64encode(user_data(launch.script)).decode(),
        "IamInstanceProfile": {"Name": launch.instance_profile},
        "NetworkInterfaces": [
            {
                "DeviceIndex": 0,
                "AssociatePublicIpAddress": True,
                "Groups": list(launch.group_ids),
                "DeleteOnTermination": True,
            }
        ],
        "BlockDeviceMappings": _root_disk(launch.root_device, config.node_disk_size_gb),
        "MetadataOptions": METADATA_OPTIONS,
        "TagSpecifications": [
            *tag_spec("instance", instance_tags),
            *tag_spec("volume", tags(config, name=f"{config.node_base_name}-boot")),
        ],
    }


def template_digest(data: Body) -> str:
    """Stamped on each launch template version: AWS echoes data back normalised, so comparing
    our own digest is how a re-run knows the latest version is already what it wants."""
    text = json.dumps(data, sort_keys=True).encode()
    return f"kube-up {hashlib.sha256(text).hexdigest()[:16]}"


def node_group_params(config: ClusterConfig, template_id: str, subnet_id: str) -> Body:
    return {
        "AutoScalingGroupName": Names(config).node_group,
        "LaunchTemplate": {"LaunchTemplateId": template_id, "Version": "$Latest"},
        "MinSize": config.num_nodes,
        "MaxSize": config.num_nodes,
        "DesiredCapacity": config.num_nodes,
        "VPCZoneIdentifier": subnet_id,
        "Tags": [
            {
                "Key": CLUSTER_TAG,
                "Value": config.cluster_name,
                "PropagateAtLaunch": True,
                "ResourceId": Names(config).node_group,
                "ResourceType": "auto-scaling-group",
            }
        ],
    }


def in_cluster_range(config: ClusterConfig, cidr: str) -> bool:
    try:
        return ipaddress.ip_network(cidr).subnet_of(config.cluster_ip_range)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return False
