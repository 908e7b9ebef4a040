"""The nodes: a launch template, an Auto Scaling group, and a pod CIDR routed to each node.

The group launches instances with ids nobody chose, so pod CIDRs are handed out afterwards:
each node gets a free index (``config.pod_cidr_for(i)``), a ``Name`` and a
``kube-up-pod-cidr`` tag — which the node script reads through the instance metadata service
(instance tags in IMDS are enabled in the template) — a route for the CIDR with the node as
next hop, and its source/destination check turned off so it may forward pod traffic. A node
the group replaced gives its index (and route) to its successor.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from aws import calls
from aws import resources as res
from aws.instances import cluster_instances
from aws.master import SETTLE_BACKOFF
from cluster.config import ClusterConfig
from cluster.errors import CloudError
from cluster.progress import Progress
from cluster.retry import wait_for

THREADS = 8
GROUP_STATES = ("Pending", "Pending:Wait", "Pending:Proceed", "InService")
TRANSIENT_LAUNCH_FAILURES = ("instance profile", "sufficient")


def run_all(work: list[Callable[[], object]]) -> None:
    """Run independent requests a few at a time; re-raise the first failure once all ended."""
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        futures = [pool.submit(w) for w in work]
    for future in futures:
        future.result()


def ensure_template(
    ec2: Any, config: ClusterConfig, launch: res.LaunchInputs, progress: Progress
) -> str:
    """The node launch template, with a new version when what nodes boot with changed."""
    name = res.Names(config).launch_template
    data = res.node_template_data(config, launch)
    digest = res.template_digest(data)
    found = calls.tolerating(
        lambda: ec2.describe_launch_templates(LaunchTemplateNames=[name])["LaunchTemplates"],
        f"launch template {name}",
        {"InvalidLaunchTemplateName.NotFoundException", "InvalidLaunchTemplateId.NotFound"},
    )
    if not found:
        progress.detail(f"creating launch template {name}")
        created = calls.call(
            lambda: ec2.create_launch_template(
                LaunchTemplateName=name,
                VersionDescription=digest,
                LaunchTemplateData=data,
                TagSpecifications=res.tag_spec("launch-template", res.tags(config, name=name)),
            )["LaunchTemplate"],
            f"launch template {name}",
        )
        return created["LaunchTemplateId"]
    template = found[0]
    template_id = template["LaunchTemplateId"]
    if res.tag_value(template, res.CLUSTER_TAG) != config.cluster_name:
        raise CloudError(
            "exists but is not tagged as this cluster's",
            resource=f"launch template {name}",
            fix="delete it, or pick another INSTANCE_PREFIX",
        )
    latest = calls.call(
        lambda: ec2.describe_launch_template_versions(
            LaunchTemplateId=template_id, Versions=["$Latest"]
        )["LaunchTemplateVersions"],
        f"launch template {name}",
    )
    if latest and latest[0].get("VersionDescription") == digest:
        return template_id
    progress.detail(f"adding a version to launch template {name}")
    version = calls.call(
        lambda: ec2.create_launch_template_version(
            LaunchTemplateId=template_id, VersionDescription=digest, LaunchTemplateData=data
        )["LaunchTemplateVersion"]["VersionNumber"],
        f"launch template {name}",
    )
    calls.call(
        lambda: ec2.modify_launch_template(
            LaunchTemplateId=template_id, DefaultVersion=str(version)
        ),
        f"launch template {name}",
    )
    return template_id


def describe_group(autoscaling: Any, name: str) -> dict[str, Any] | None:
    found = calls.call(
        lambda: autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])[
            "AutoScalingGroups"
        ],
        f"auto scaling group {name}",
    )
    return found[0] if found else None


def ensure_group(
    autoscaling: Any, config: ClusterConfig, template_id: str, subnet_id: str, progress: Progress
) -> None:
    name = res.Names(config).node_group
    params = res.node_group_params(config, template_id, subnet_id)
    group = describe_group(autoscaling, name)
    if group is None:
        progress.detail(f"creating auto scaling group {name} ({config.num_nodes} nodes)")
        calls.tolerating(
            lambda: autoscaling.create_auto_scaling_group(**params),
            f"auto scaling group {name}",
            {"AlreadyExists"},
        )
        return
    if res.tag_value(group, res.CLUSTER_TAG) != config.cluster_name:
        raise CloudError(
            "exists but is not tagged as this cluster's",
            resource=f"auto scaling group {name}",
            fix="delete it, or pick another INSTANCE_PREFIX",
        )
    sizes = {k: params[k] for k in ("MinSize", "MaxSize", "DesiredCapacity")}
    if any(group.get(k) != v for k, v in sizes.items()):
        progress.detail(f"resizing {name} to {config.num_nodes} nodes")
        calls.call(
            lambda: autoscaling.update_auto_scaling_group(AutoScalingGroupName=name, **sizes),
            f"auto scaling group {name}",
        )


def is_transient(message: str) -> bool:
    """Launch failures the group gets over by retrying on its own: a just-created instance
    profile IAM has not propagated yet, or a zone briefly short of capacity."""
    lowered = message.lower()
    return any(marker in lowered for marker in TRANSIENT_LAUNCH_FAILURES)


def _launch_failure(autoscaling: Any, name: str, since: datetime) -> str | None:
    """Why the group cannot launch instances (quota, image...), if it said so."""
    activities = calls.call(
        lambda: autoscaling.describe_scaling_activities(AutoScalingGroupName=name, MaxRecords=5)[
            "Activities"
        ],
        f"auto scaling group {name}",
    )
    for activity in activities:
        started = activity.get("StartTime")
        message = str(activity.get("StatusMessage") or activity.get("Description") or "failed")
        recent = started is None or started >= since
        if activity.get("StatusCode") == "Failed" and recent and not is_transient(message):
            return message
    return None


def wait_for_instances(autoscaling: Any, config: ClusterConfig) -> list[str]:
    """The ids of the group's NUM_NODES instances, once it has launched them all."""
    name = res.Names(config).node_group
    since = datetime.now(UTC)

    def launched() -> list[str] | None:
        group = describe_group(autoscaling, name)
        members = [
            i["InstanceId"]
            for i in (group or {}).get("Instances") or []
            if i.get("LifecycleState") in GROUP_STATES
        ]
        if len(members) >= config.num_nodes:
            return sorted(members)
        failure = _launch_failure(autoscaling, name, since)
        if failure:
            raise CloudError(
                f"could not launch nodes: {failure}",
                resource=f"auto scaling group {name}",
                fix="fix the cause and run kube-up again",
            )
        return None

    return wait_for(
        launched,
        what=f"{config.num_nodes} node instances in {name}",
        timeout=config.timeout,
        interval=config.poll_interval,
        fix=f"see `aws autoscaling describe-scaling-activities --auto-scaling-group-name {name}`",
    )


def assign_pod_cidrs(
    ec2: Any, config: ClusterConfig, instance_ids: list[str], progress: Progress
) -> dict[str, str]:
    """Instance id -> pod CIDR for the group's instances, tagging those that had none."""
    members = set(instance_ids)
    instances = [
        i for i in cluster_instances(ec2, config, role="node") if i["InstanceId"] in members
    ]
    by_cidr = {str(config.pod_cidr_for(i)): i for i in range(1, config.num_nodes + 1)}
    taken: dict[int, str] = {}
    unassigned = []
    for instance in sorted(instances, key=lambda i: (str(i.get("LaunchTime")), i["InstanceId"])):
        index = by_cidr.get(res.tag_value(instance, res.POD_CIDR_TAG) or "")
        if index is not None and index not in taken:
            taken[index] = instance["InstanceId"]
        else:
            unassigned.append(instance)
    free = [i for i in range(1, config.num_nodes + 1) if i not in taken]
    work: list[Callable[[], object]] = []
    for instance, index in zip(unassigned, free, strict=False):
        taken[index] = instance["InstanceId"]
        node_tags = [
            {"Key": "Name", "Value": config.node_name(index)},
            {"Key": res.POD_CIDR_TAG, "Value": str(config.pod_cidr_for(index))},
        ]
        work.append(
            lambda i=instance["InstanceId"], t=node_tags: calls.call(
                lambda: ec2.create_tags(Resources=[i], Tags=t), f"instance {i}"
            )
        )
    if work:
        progress.detail(f"assigning pod CIDRs to {len(work)} node(s)")
    # Nodes forward their pods' traffic: EC2 must not drop packets not addressed to them.
    for instance in instances:
        if instance.get("SourceDestCheck", True):
            work.append(
                lambda i=instance["InstanceId"]: calls.call(
                    lambda: ec2.modify_instance_attribute(
                        InstanceId=i, SourceDestCheck={"Value": False}
                    ),
                    f"instance {i}",
                )
            )
    run_all(work)
    return {instance_id: str(config.pod_cidr_for(index)) for index, instance_id in taken.items()}


def ensure_routes(
    ec2: Any, config: ClusterConfig, route_table_id: str, cidrs: dict[str, str], progress: Progress
) -> None:
    """One route per node's pod CIDR to that node; routes for CIDRs no node has go."""
    table = calls.call(
        lambda: ec2.describe_route_tables(RouteTableIds=[route_table_id])["RouteTables"][0],
        f"route table {route_table_id}",
    )
    current = {
        r["DestinationCidrBlock"]: r
        for r in table.get("Routes") or []
        if res.in_cluster_range(config, r.get("DestinationCidrBlock", ""))
    }
    settling = calls.codes("IncorrectInstanceState", "InvalidInstanceID.NotFound")
    work: list[Callable[[], object]] = []
    for instance_id, cidr in sorted(cidrs.items(), key=lambda kv: kv[1]):
        route = current.pop(cidr, None)
        if route is not None and route.get("InstanceId") == instance_id:
            continue
        send = ec2.create_route if route is None else ec2.replace_route
        work.append(
            lambda s=send, i=instance_id, c=cidr: calls.call(
                lambda: s(RouteTableId=route_table_id, DestinationCidrBlock=c, InstanceId=i),
                f"route {c}",
                retry_also=settling,
                backoff=SETTLE_BACKOFF,
            )
        )
    for cidr in current:
        work.append(
            lambda c=cidr: calls.tolerating(
                lambda: ec2.delete_route(RouteTableId=route_table_id, DestinationCidrBlock=c),
                f"route {c}",
                calls.NOT_FOUND,
            )
        )
    if work:
        progress.detail(f"updating {len(work)} pod route(s)")
    run_all(work)


def node_names_and_addresses(ec2: Any, config: ClusterConfig) -> dict[str, str]:
    found = {}
    for instance in cluster_instances(ec2, config, role="node", states=("running",)):
        name = res.tag_value(instance, "Name") or instance["InstanceId"]
        found[name] = instance.get("PublicIpAddress") or instance.get("PrivateIpAddress", "")
    return found
