"""Finding the cluster's instances and the image they boot from.

``describe_instances`` answers in pages (moto's and AWS's pages hold at most 100 reservations
here), so every listing goes through the paginator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws import calls
from aws import resources as res
from cluster.config import ClusterConfig
from cluster.errors import CloudError

LIVE_STATES = ("pending", "running", "stopping", "stopped")
PAGE_SIZE = 100
# Debian's official AWS account and the name its bookworm amd64 images carry.
DEBIAN_OWNER = "136693071363"
DEBIAN_12_NAME = "debian-12-amd64-*"


def cluster_instances(
    ec2: Any,
    config: ClusterConfig,
    *,
    role: str | None = None,
    states: tuple[str, ...] = LIVE_STATES,
) -> list[dict[str, Any]]:
    """This cluster's instances (of ``role``), in ``states``, sorted by id."""
    filters = res.owned_filter(config, **({res.ROLE_TAG: role} if role else {}))
    filters.append({"Name": "instance-state-name", "Values": list(states)})

    def listing() -> list[dict[str, Any]]:
        pages = ec2.get_paginator("describe_instances").paginate(
            Filters=filters, PaginationConfig={"PageSize": PAGE_SIZE}
        )
        return [i for page in pages for r in page["Reservations"] for i in r["Instances"]]

    return sorted(calls.call(listing, "instances"), key=lambda i: i["InstanceId"])


def instance_named(ec2: Any, config: ClusterConfig, name: str) -> dict[str, Any] | None:
    """The live instance whose Name tag is ``name`` (the master, or a node once numbered)."""
    found = [i for i in cluster_instances(ec2, config) if res.tag_value(i, "Name") == name]
    return found[0] if found else None


@dataclass(frozen=True)
class Image:
    image_id: str
    root_device: str


def resolve_image(ec2: Any, config: ClusterConfig, image_id: str) -> Image:
    """The AMI to boot: ``image_id``, or Debian 12's newest official amd64 image."""
    if image_id:
        found = calls.tolerating(
            lambda: ec2.describe_images(ImageIds=[image_id])["Images"],
            f"image {image_id}",
            {"InvalidAMIID.NotFound", "InvalidAMIID.Unavailable"},
        )
        if not found:
            raise CloudError(
                f"not found in region {config.region}",
                resource=f"image {image_id}",
                fix="set AMI (or MASTER_IMAGE/NODE_IMAGE) to an image of this region",
            )
    else:
        found = calls.call(
            lambda: ec2.describe_images(
                Owners=[DEBIAN_OWNER],
                Filters=[
                    {"Name": "name", "Values": [DEBIAN_12_NAME]},
                    {"Name": "architecture", "Values": ["x86_64"]},
                    {"Name": "state", "Values": ["available"]},
                ],
            )["Images"],
            "Debian 12 images",
        )
        if not found:
            raise CloudError(
                f"no official Debian 12 image in region {config.region}",
                resource="image lookup",
                fix="set AMI to the id of a Debian 12 (amd64) image of this region",
            )
        found = [max(found, key=lambda i: i.get("CreationDate", ""))]
    image = found[0]
    return Image(image["ImageId"], image.get("RootDeviceName") or "/dev/xvda")
