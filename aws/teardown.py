"""kube-down on AWS: find everything carrying this cluster's tag, delete it dependents first.

Deletion goes in waves: the Auto Scaling group (so it replaces nothing), the instances (waiting
until they are terminated), then what they held (addresses, volumes, launch template, key pair,
instance profiles) with the IAM roles and the bucket, then the network from the inside out.
AWS answers ``DependencyViolation`` while a dependent is still going away (an instance's network
interface, a released address), so those deletes are retried with backoff until it clears.
Anything already gone counts as deleted, so a half-created or half-deleted cluster is finished
by running kube-down again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from aws import calls, iam
from aws import resources as res
from aws.clients import AwsClients
from aws.instances import LIVE_STATES, cluster_instances
from aws.nodes import describe_group, run_all
from aws.staging import bucket_owner_tag
from cluster.config import ClusterConfig
from cluster.progress import Progress
from cluster.provider import OwnedResource
from cluster.retry import Backoff, wait_for

WAVES: tuple[tuple[str, ...], ...] = (
    # The group first, so that it does not replace the instances terminated next.
    ("auto-scaling-group",),
    ("instance",),
    ("launch-template", "elastic-ip", "key-pair", "instance-profile"),
    ("volume", "iam-role", "bucket"),
    ("route-table", "security-group"),
    ("subnet", "internet-gateway"),
    ("vpc",),
)
KIND_ORDER = [kind for wave in WAVES for kind in wave]
DEPENDENTS_BACKOFF = Backoff(initial=2.0, maximum=15.0, deadline=600.0)
TERMINATE_TIMEOUT_S = 900.0
GOING_STATES = (*LIVE_STATES, "shutting-down")
BATCH = 500


def _by_tag(describe: Callable[..., dict[str, Any]], key: str, filters: list[Any]) -> list[Any]:
    return calls.call(lambda: describe(Filters=filters)[key], key)


def find_owned(clients: AwsClients, config: ClusterConfig, bucket: str) -> list[OwnedResource]:
    """Everything of this cluster, in the order it would be deleted."""
    ec2, names, mine = clients.ec2, res.Names(config), res.owned_filter(config)
    found: list[OwnedResource] = []

    def add(kind: str, items: list[dict[str, Any]], key: str) -> None:
        for item in sorted(items, key=lambda i: i[key]):
            found.append(OwnedResource(kind, item[key], res.tag_value(item, "Name") or ""))

    group = describe_group(clients.autoscaling, names.node_group)
    if group is not None and res.tag_value(group, res.CLUSTER_TAG) == config.cluster_name:
        found.append(OwnedResource("auto-scaling-group", names.node_group))
    add("instance", cluster_instances(ec2, config, states=GOING_STATES), "InstanceId")
    add(
        "launch-template",
        _by_tag(ec2.describe_launch_templates, "LaunchTemplates", mine),
        "LaunchTemplateId",
    )
    add("elastic-ip", _by_tag(ec2.describe_addresses, "Addresses", mine), "AllocationId")
    add("key-pair", _by_tag(ec2.describe_key_pairs, "KeyPairs", mine), "KeyName")
    for role in ("master", "node"):
        name = names.iam_role(role)
        profile = calls.find(
            lambda n=name: clients.iam.get_instance_profile(InstanceProfileName=n)[
                "InstanceProfile"
            ],
            f"IAM instance profile {name}",
        )
        if profile is not None and iam.is_owned(
            profile,
            config,
            lambda n=name: clients.iam.list_instance_profile_tags(InstanceProfileName=n),
        ):
            found.append(OwnedResource("instance-profile", name))
    volumes = [
        v
        for v in _by_tag(ec2.describe_volumes, "Volumes", mine)
        if v.get("State") not in ("deleting", "deleted")
    ]
    add("volume", volumes, "VolumeId")
    for role in ("master", "node"):
        name = names.iam_role(role)
        role_found = calls.find(
            lambda n=name: clients.iam.get_role(RoleName=n)["Role"], f"IAM role {name}"
        )
        if role_found is not None and iam.is_owned(
            role_found, config, lambda n=name: clients.iam.list_role_tags(RoleName=n)
        ):
            found.append(OwnedResource("iam-role", name))
    if bucket_owner_tag(clients.s3, bucket) == config.cluster_name:
        found.append(OwnedResource("bucket", bucket))
    add("route-table", _by_tag(ec2.describe_route_tables, "RouteTables", mine), "RouteTableId")
    add("security-group", _by_tag(ec2.describe_security_groups, "SecurityGroups", mine), "GroupId")
    add("subnet", _by_tag(ec2.describe_subnets, "Subnets", mine), "SubnetId")
    add(
        "internet-gateway",
        _by_tag(ec2.describe_internet_gateways, "InternetGateways", mine),
        "InternetGatewayId",
    )
    add("vpc", _by_tag(ec2.describe_vpcs, "Vpcs", mine), "VpcId")
    return sorted(found, key=lambda r: KIND_ORDER.index(r.kind))


class Deleter:
    """How each kind is deleted; every method is idempotent."""

    def __init__(self, clients: AwsClients, config: ClusterConfig) -> None:
        self.clients = clients
        self.config = config
        self.ec2 = clients.ec2

    def _gone_ok(self, fn: Callable[[], object], resource: str, *retry_codes: str) -> None:
        calls.tolerating(
            fn,
            resource,
            calls.NOT_FOUND,
            retry_also=calls.codes("DependencyViolation", *retry_codes),
            backoff=DEPENDENTS_BACKOFF,
        )

    def auto_scaling_group(self, names: list[str]) -> None:
        for name in names:
            # ValidationError is Auto Scaling's "no such group".
            calls.tolerating(
                lambda n=name: self.clients.autoscaling.delete_auto_scaling_group(
                    AutoScalingGroupName=n, ForceDelete=True
                ),
                f"auto scaling group {name}",
                {"ValidationError"},
                retry_also=calls.codes("ScalingActivityInProgress", "ResourceInUse"),
                backoff=DEPENDENTS_BACKOFF,
            )

    def instance(self, ids: list[str]) -> None:
        for start in range(0, len(ids), BATCH):
            batch = ids[start : start + BATCH]
            calls.tolerating(
                lambda b=batch: self.ec2.terminate_instances(InstanceIds=b),
                "instances",
                calls.NOT_FOUND,
            )

    def wait_terminated(self) -> None:
        """The network cannot go while instances (or the group's replacements) hold it."""

        def done() -> bool | None:
            left = cluster_instances(self.ec2, self.config, states=GOING_STATES)
            return True if not left else None

        wait_for(
            done,
            what="termination of the cluster's instances",
            timeout=TERMINATE_TIMEOUT_S,
            interval=max(self.config.poll_interval, 1.0),
            fix="run kube-down again: it acts only on what is left",
        )

    def launch_template(self, ids: list[str]) -> None:
        for template_id in ids:
            self._gone_ok(
                lambda t=template_id: self.ec2.delete_launch_template(LaunchTemplateId=t),
                f"launch template {template_id}",
            )

    def elastic_ip(self, ids: list[str]) -> None:
        for allocation in ids:
            found = calls.find(
                lambda a=allocation: self.ec2.describe_addresses(AllocationIds=[a])["Addresses"],
                f"address {allocation}",
            )
            for address in found or []:
                if address.get("AssociationId"):
                    self._gone_ok(
                        lambda a=address["AssociationId"]: self.ec2.disassociate_address(
                            AssociationId=a
                        ),
                        f"address {allocation}",
                    )
            self._gone_ok(
                lambda a=allocation: self.ec2.release_address(AllocationId=a),
                f"address {allocation}",
                "InvalidIPAddress.InUse",
            )

    def key_pair(self, names: list[str]) -> None:
        for name in names:
            self._gone_ok(lambda n=name: self.ec2.delete_key_pair(KeyName=n), f"key pair {name}")

    def volume(self, ids: list[str]) -> None:
        for volume_id in ids:
            self._gone_ok(
                lambda v=volume_id: self.ec2.delete_volume(VolumeId=v),
                f"volume {volume_id}",
                "VolumeInUse",
            )

    def route_table(self, ids: list[str]) -> None:
        for table_id in ids:
            table = calls.find(
                lambda t=table_id: self.ec2.describe_route_tables(RouteTableIds=[t])["RouteTables"],
                f"route table {table_id}",
            )
            for association in (table or [{}])[0].get("Associations") or []:
                if not association.get("Main"):
                    self._gone_ok(
                        lambda a=association["RouteTableAssociationId"]: (
                            self.ec2.disassociate_route_table(AssociationId=a)
                        ),
                        f"route table {table_id}",
                    )
            self._gone_ok(
                lambda t=table_id: self.ec2.delete_route_table(RouteTableId=t),
                f"route table {table_id}",
            )

    def security_group(self, ids: list[str]) -> None:
        for group_id in ids:
            self._gone_ok(
                lambda g=group_id: self.ec2.delete_security_group(GroupId=g),
                f"security group {group_id}",
            )

    def subnet(self, ids: list[str]) -> None:
        for subnet_id in ids:
            self._gone_ok(
                lambda s=subnet_id: self.ec2.delete_subnet(SubnetId=s), f"subnet {subnet_id}"
            )

    def internet_gateway(self, ids: list[str]) -> None:
        for gateway_id in ids:
            gateways = calls.find(
                lambda g=gateway_id: self.ec2.describe_internet_gateways(InternetGatewayIds=[g])[
                    "InternetGateways"
                ],
                f"internet gateway {gateway_id}",
            )
            for attachment in (gateways or [{}])[0].get("Attachments") or []:
                self._gone_ok(
                    lambda g=gateway_id, v=attachment["VpcId"]: self.ec2.detach_internet_gateway(
                        InternetGatewayId=g, VpcId=v
                    ),
                    f"internet gateway {gateway_id}",
                )
            self._gone_ok(
                lambda g=gateway_id: self.ec2.delete_internet_gateway(InternetGatewayId=g),
                f"internet gateway {gateway_id}",
            )

    def vpc(self, ids: list[str]) -> None:
        for vpc_id in ids:
            self._gone_ok(lambda v=vpc_id: self.ec2.delete_vpc(VpcId=v), f"vpc {vpc_id}")

    def instance_profile(self, names: list[str]) -> None:
        client = self.clients.iam
        for name in names:
            profile = calls.find(
                lambda n=name: client.get_instance_profile(InstanceProfileName=n)[
                    "InstanceProfile"
                ],
                f"IAM instance profile {name}",
            )
            for role in (profile or {}).get("Roles") or []:
                self._gone_ok(
                    lambda n=name, r=role["RoleName"]: client.remove_role_from_instance_profile(
                        InstanceProfileName=n, RoleName=r
                    ),
                    f"IAM instance profile {name}",
                )
            self._gone_ok(
                lambda n=name: client.delete_instance_profile(InstanceProfileName=n),
                f"IAM instance profile {name}",
                "DeleteConflict",
            )

    def iam_role(self, names: list[str]) -> None:
        client = self.clients.iam
        for name in names:
            policies = calls.find(
                lambda n=name: client.list_role_policies(RoleName=n)["PolicyNames"],
                f"IAM role {name}",
            )
            for policy in policies or []:
                self._gone_ok(
                    lambda n=name, p=policy: client.delete_role_policy(RoleName=n, PolicyName=p),
                    f"IAM role {name}",
                )
            self._gone_ok(
                lambda n=name: client.delete_role(RoleName=n), f"IAM role {name}", "DeleteConflict"
            )

    def bucket(self, names: list[str]) -> None:
        s3 = self.clients.s3
        for name in names:
            pages = calls.tolerating(
                lambda n=name: list(s3.get_paginator("list_objects_v2").paginate(Bucket=n)),
                f"bucket {name}",
                calls.NOT_FOUND,
            )
            keys = [{"Key": o["Key"]} for page in pages or [] for o in page.get("Contents", [])]
            for start in range(0, len(keys), 1000):
                chunk = keys[start : start + 1000]
                calls.tolerating(
                    lambda n=name, c=chunk: s3.delete_objects(
                        Bucket=n, Delete={"Objects": c, "Quiet": True}
                    ),
                    f"bucket {name}",
                    calls.NOT_FOUND,
                )
            self._gone_ok(lambda n=name: s3.delete_bucket(Bucket=n), f"bucket {name}")


def delete_owned(
    clients: AwsClients, config: ClusterConfig, found: list[OwnedResource], progress: Progress
) -> None:
    by_kind: dict[str, list[str]] = defaultdict(list)
    for item in found:
        by_kind[item.kind].append(item.name)
    deleter = Deleter(clients, config)
    for wave in WAVES:
        work: list[Callable[[], object]] = []
        for kind in wave:
            names = by_kind.get(kind, [])
            if names:
                progress.detail(f"deleting {len(names)} {kind}(s)")
                method = getattr(deleter, kind.replace("-", "_"))
                work.append(lambda m=method, n=names: m(n))
        run_all(work)
        if "instance" in wave:
            deleter.wait_terminated()
