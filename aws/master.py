"""The master: its Elastic IP, its etcd volume and the instance itself.

The master's internal IP is fixed (``.9`` of the subnet, as upstream kube-up had it) so that it
is known, and in the apiserver's certificate, before the instance exists; the Elastic IP is
allocated first for the same reason. The volume and the address outlive a replaced master.
"""

from __future__ import annotations

import uuid
from typing import Any

from aws import calls
from aws import resources as res
from aws.instances import cluster_instances
from cluster.config import ClusterConfig
from cluster.progress import Progress
from cluster.retry import Backoff

# A just-created instance profile takes a few seconds to be usable by EC2; an instance takes
# a while to reach 'running', before which volumes and addresses cannot be attached to it.
SETTLE_BACKOFF = Backoff(initial=1.0, maximum=10.0, deadline=600.0)


def profile_not_ready(exc: BaseException) -> bool:
    """EC2 does not see an instance profile IAM has just created (IAM is eventually
    consistent): ``InvalidParameterValue ... iamInstanceProfile``."""
    return calls.error_code(exc) == "InvalidParameterValue" and "nstanceProfile" in str(exc)


def ensure_address(ec2: Any, config: ClusterConfig, progress: Progress) -> dict[str, Any]:
    """The master's Elastic IP (found by tag, else allocated)."""
    name = res.Names(config).master_address
    found = calls.call(
        lambda: ec2.describe_addresses(Filters=res.owned_filter(config, Name=name))["Addresses"],
        f"address {name}",
    )
    if found:
        return min(found, key=lambda a: a["AllocationId"])
    progress.detail(f"allocating Elastic IP {name}")
    allocated = calls.call(
        lambda: ec2.allocate_address(
            Domain="vpc",
            TagSpecifications=res.tag_spec(
                "elastic-ip", res.tags(config, name=name, role="master")
            ),
        ),
        f"address {name}",
    )
    return {"AllocationId": allocated["AllocationId"], "PublicIp": allocated["PublicIp"]}


def ensure_volume(ec2: Any, config: ClusterConfig, progress: Progress) -> dict[str, Any]:
    name = res.Names(config).master_volume
    filters = [
        *res.owned_filter(config, Name=name),
        {"Name": "status", "Values": ["creating", "available", "in-use"]},
    ]
    found = calls.call(lambda: ec2.describe_volumes(Filters=filters)["Volumes"], f"volume {name}")
    if found:
        return min(found, key=lambda v: v["VolumeId"])
    progress.detail(f"creating EBS volume {name} ({config.master_disk_size_gb} GB)")
    return calls.call(
        lambda: ec2.create_volume(**res.master_volume_params(config)), f"volume {name}"
    )


def ensure_master(
    ec2: Any,
    config: ClusterConfig,
    progress: Progress,
    launch: res.LaunchInputs,
    address: dict[str, Any],
) -> str:
    """The master instance, its etcd volume attached and its Elastic IP associated."""
    volume = ensure_volume(ec2, config, progress)
    volume_id = volume["VolumeId"]
    masters = cluster_instances(ec2, config, role="master")
    if masters:
        instance_id = masters[0]["InstanceId"]
    else:
        progress.detail(f"creating instance {config.master_name}")
        params = res.master_instance_params(config, launch, volume_id, str(uuid.uuid4()))
        instance_id = calls.call(
            lambda: ec2.run_instances(**params)["Instances"][0]["InstanceId"],
            f"instance {config.master_name}",
            # The profile may be new; the fixed IP may still be held by a terminating master.
            retry_also=lambda e: profile_not_ready(e) or calls.codes("InvalidIPAddress.InUse")(e),
            backoff=SETTLE_BACKOFF,
        )
    settling = calls.codes("IncorrectState", "IncorrectInstanceState", "InvalidInstanceID.NotFound")
    attached = {a.get("InstanceId") for a in volume.get("Attachments") or []}
    if instance_id not in attached:
        progress.detail(f"attaching {volume_id} to {instance_id}")
        calls.call(
            lambda: ec2.attach_volume(
                Device=res.MASTER_PD_DEVICE, InstanceId=instance_id, VolumeId=volume_id
            ),
            f"volume {volume_id}",
            retry_also=lambda e: settling(e) or calls.codes("VolumeInUse")(e),
            backoff=SETTLE_BACKOFF,
        )
    if address.get("InstanceId") != instance_id:
        progress.detail(f"associating {address['PublicIp']} with {instance_id}")
        calls.call(
            lambda: ec2.associate_address(
                AllocationId=address["AllocationId"],
                InstanceId=instance_id,
                AllowReassociation=True,
            ),
            f"address {address['PublicIp']}",
            retry_also=settling,
            backoff=SETTLE_BACKOFF,
        )
    return instance_id
