"""kube-up --no-wait, kube-down and kube-push on AWS, against moto's real HTTP server.

What kube-up made is checked by describing it with boto3 (and moto's tagging API), not by
reading kube-up's own output. moto cannot boot instances, so these runs end where --no-wait
ends; the VM side of the AWS path is tested in test_node_script_aws.py.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from aws import resources as res
from aws.provider import AwsProvider
from cluster.config import load_config
from cluster.progress import Progress
from cluster.provider import VmMetadata
from cluster.provisioner import Provisioner
from cluster.state import ClusterState
from cluster.vm_config import STARTUP_SCRIPT
from tests.aws_moto import Moto, apply_env, fake_release, kube_env, moto_server

CLUSTER = "kubernetes"


@pytest.fixture(scope="module")
def moto() -> Iterator[Moto]:
    with moto_server() as server:
        yield server


@dataclass
class Aws:
    """One test's view: moto, a fake release, and a way to run the provisioner."""

    moto: Moto
    tmp: Path
    release: Path
    monkeypatch: pytest.MonkeyPatch
    output: io.StringIO

    def provisioner(self, provider_class: type[AwsProvider] = AwsProvider) -> Provisioner:
        config = load_config()
        console = Console(file=self.output, width=200, color_system=None)
        progress = Progress(verbose=True, console=console)
        provider = provider_class(config, progress)
        return Provisioner(config, provider, progress, ClusterState(config.cluster_name))

    def up(self, provider_class: type[AwsProvider] = AwsProvider) -> Provisioner:
        provisioner = self.provisioner(provider_class)
        provisioner.up(wait=False, release_dir=self.release)
        return provisioner

    def set(self, **settings: str) -> None:
        for name, value in settings.items():
            self.monkeypatch.setenv(name, value)

    def client(self, service: str) -> Any:
        return self.moto.client(service)


@pytest.fixture
def aws(moto: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Aws:
    moto.reset()
    apply_env(monkeypatch, kube_env(moto, tmp_path, AMI=moto.default_image()))
    return Aws(moto, tmp_path, fake_release(tmp_path / "release"), monkeypatch, io.StringIO())


# -- describing what exists ------------------------------------------------------------------


def owned(cluster: str = CLUSTER) -> list[dict[str, Any]]:
    return [{"Name": f"tag:{res.CLUSTER_TAG}", "Values": [cluster]}]


def instances(ec2: Any, cluster: str = CLUSTER, role: str | None = None) -> list[dict[str, Any]]:
    filters = owned(cluster) + [{"Name": "instance-state-name", "Values": ["pending", "running"]}]
    if role:
        filters.append({"Name": f"tag:{res.ROLE_TAG}", "Values": [role]})
    pages = ec2.get_paginator("describe_instances").paginate(Filters=filters)
    return [i for page in pages for r in page["Reservations"] for i in r["Instances"]]


def tag(resource: dict[str, Any], key: str) -> str | None:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}.get(key)


def inventory(aws: Aws, cluster: str = CLUSTER) -> dict[str, list[str]]:
    """Every resource of ``cluster``, by kind, as AWS describes it."""
    ec2, iam, s3 = aws.client("ec2"), aws.client("iam"), aws.client("s3")
    found = {
        "vpc": [v["VpcId"] for v in ec2.describe_vpcs(Filters=owned(cluster))["Vpcs"]],
        "subnet": [s["SubnetId"] for s in ec2.describe_subnets(Filters=owned(cluster))["Subnets"]],
        "igw": [
            g["InternetGatewayId"]
            for g in ec2.describe_internet_gateways(Filters=owned(cluster))["InternetGateways"]
        ],
        "route-table": [
            t["RouteTableId"]
            for t in ec2.describe_route_tables(Filters=owned(cluster))["RouteTables"]
        ],
        "security-group": [
            g["GroupId"]
            for g in ec2.describe_security_groups(Filters=owned(cluster))["SecurityGroups"]
        ],
        "key-pair": [
            k["KeyName"] for k in ec2.describe_key_pairs(Filters=owned(cluster))["KeyPairs"]
        ],
        "address": [
            a["AllocationId"] for a in ec2.describe_addresses(Filters=owned(cluster))["Addresses"]
        ],
        "volume": [v["VolumeId"] for v in ec2.describe_volumes(Filters=owned(cluster))["Volumes"]],
        "instance": [i["InstanceId"] for i in instances(ec2, cluster)],
        "launch-template": [
            t["LaunchTemplateId"]
            for t in ec2.describe_launch_templates(Filters=owned(cluster))["LaunchTemplates"]
        ],
        "auto-scaling-group": [
            g["AutoScalingGroupName"]
            for g in aws.client("autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"]
            if tag(g, res.CLUSTER_TAG) == cluster
        ],
        "iam-role": [
            r["RoleName"]
            for r in iam.list_roles()["Roles"]
            if tag({"Tags": iam.list_role_tags(RoleName=r["RoleName"])["Tags"]}, res.CLUSTER_TAG)
            == cluster
        ],
        "instance-profile": [
            p["InstanceProfileName"]
            for p in iam.list_instance_profiles()["InstanceProfiles"]
            if tag(p, res.CLUSTER_TAG) == cluster
        ],
        "bucket": [
            b["Name"] for b in s3.list_buckets()["Buckets"] if _bucket_tag(s3, b["Name"]) == cluster
        ],
    }
    return {kind: sorted(ids) for kind, ids in found.items()}


def _bucket_tag(s3: Any, name: str) -> str | None:
    try:
        tag_set = s3.get_bucket_tagging(Bucket=name)["TagSet"]
    except s3.exceptions.ClientError:
        return None
    return tag({"Tags": tag_set}, res.CLUSTER_TAG)


def tagged_anywhere(aws: Aws, cluster: str = CLUSTER) -> list[str]:
    """ARNs moto's tagging API knows with this cluster's tag, across services."""
    tagging = aws.client("resourcegroupstaggingapi")
    pages = tagging.get_paginator("get_resources").paginate(
        TagFilters=[{"Key": res.CLUSTER_TAG, "Values": [cluster]}]
    )
    arns = [m["ResourceARN"] for page in pages for m in page["ResourceTagMappingList"]]
    # Terminated instances stay visible (with their tags) for a while, as on AWS.
    ec2 = aws.client("ec2")
    gone = {
        i["InstanceId"]
        for r in ec2.describe_instances(
            Filters=[{"Name": "instance-state-name", "Values": ["terminated"]}]
        )["Reservations"]
        for i in r["Instances"]
    }
    return sorted(a for a in arns if a.rsplit("/", 1)[-1] not in gone)


EXPECTED_COUNTS = {
    "vpc": 1,
    "subnet": 1,
    "igw": 1,
    "route-table": 1,
    "security-group": 3,
    "key-pair": 1,
    "address": 1,
    "instance": 4,
    "launch-template": 1,
    "auto-scaling-group": 1,
    "iam-role": 2,
    "instance-profile": 2,
    "bucket": 1,
}


def counts(found: dict[str, list[str]]) -> dict[str, int]:
    return {kind: len(ids) for kind, ids in found.items() if kind != "volume"}


# -- kube-up ---------------------------------------------------------------------------------


def test_up_creates_the_wired_resource_set(aws: Aws) -> None:
    provisioner = aws.up()
    config = provisioner.config
    ec2, s3, iam = aws.client("ec2"), aws.client("s3"), aws.client("iam")
    found = inventory(aws)
    assert counts(found) == EXPECTED_COUNTS

    # Network: VPC with DNS, subnet in the zone, gateway attached, the subnet routed through it.
    vpc_id, subnet_id = found["vpc"][0], found["subnet"][0]
    vpc = ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"][0]
    assert vpc["CidrBlock"] == "172.20.0.0/24" and tag(vpc, "Name") == "kubernetes-vpc"
    for attribute, key in (
        ("enableDnsSupport", "EnableDnsSupport"),
        ("enableDnsHostnames", "EnableDnsHostnames"),
    ):
        assert ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute=attribute)[key]["Value"]
    subnet = ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"][0]
    assert (subnet["VpcId"], subnet["AvailabilityZone"]) == (vpc_id, "us-west-2a")
    gateway = ec2.describe_internet_gateways(InternetGatewayIds=found["igw"])["InternetGateways"][0]
    assert [a["VpcId"] for a in gateway["Attachments"]] == [vpc_id]
    table = ec2.describe_route_tables(RouteTableIds=found["route-table"])["RouteTables"][0]
    assert subnet_id in [a.get("SubnetId") for a in table["Associations"]]
    routes = {r["DestinationCidrBlock"]: r for r in table["Routes"]}
    assert routes["0.0.0.0/0"]["GatewayId"] == gateway["InternetGatewayId"]

    # Nodes: one pod CIDR each, routed to that node, which may forward (no source/dest check).
    nodes = instances(ec2, role="node")
    assert len(nodes) == 3
    by_cidr = {tag(n, res.POD_CIDR_TAG): n for n in nodes}
    assert sorted(by_cidr) == ["10.244.1.0/24", "10.244.2.0/24", "10.244.3.0/24"]
    for cidr, node in by_cidr.items():
        assert routes[cidr]["InstanceId"] == node["InstanceId"]
        index = cidr.split(".")[2]
        assert tag(node, "Name") == f"kubernetes-minion-{index}"
        check = ec2.describe_instance_attribute(
            InstanceId=node["InstanceId"], Attribute="sourceDestCheck"
        )
        assert check["SourceDestCheck"]["Value"] is False
    group = aws.client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=found["auto-scaling-group"]
    )["AutoScalingGroups"][0]
    assert (group["MinSize"], group["MaxSize"], group["DesiredCapacity"]) == (3, 3, 3)
    assert group["VPCZoneIdentifier"] == subnet_id
    assert group["LaunchTemplate"]["LaunchTemplateId"] == found["launch-template"][0]
    assert sorted(i["InstanceId"] for i in group["Instances"]) == sorted(
        n["InstanceId"] for n in nodes
    )

    # Security groups: only ssh and https open to the world, https on the master only.
    groups = ec2.describe_security_groups(GroupIds=found["security-group"])["SecurityGroups"]
    by_name = {g["GroupName"]: g for g in groups}
    world = sorted(
        (g["GroupName"], p["FromPort"])
        for g in groups
        for p in g["IpPermissions"]
        if {"CidrIp": "0.0.0.0/0"} in p["IpRanges"]
    )
    assert world == [("kubernetes-master-https", 443), ("kubernetes-ssh", 22)]
    internal = by_name["kubernetes-internal"]["IpPermissions"][0]
    assert internal["IpProtocol"] == "-1"
    assert sorted(r["CidrIp"] for r in internal["IpRanges"]) == ["10.244.0.0/16", "172.20.0.0/24"]

    # Master: fixed internal IP, Elastic IP, etcd volume, its groups, IMDSv2 with tags.
    (master,) = instances(ec2, role="master")
    assert master["PrivateIpAddress"] == "172.20.0.9"
    master_groups = master["NetworkInterfaces"][0]["Groups"]
    assert sorted(g["GroupName"] for g in master_groups) == sorted(by_name)
    address = ec2.describe_addresses(AllocationIds=found["address"])["Addresses"][0]
    assert address["InstanceId"] == master["InstanceId"]
    volume_id = tag(master, res.MASTER_PD_TAG)
    volume = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]
    assert volume["Size"] == config.master_disk_size_gb and tag(volume, res.CLUSTER_TAG) == CLUSTER
    assert [(a["InstanceId"], a["Device"]) for a in volume["Attachments"]] == [
        (master["InstanceId"], "/dev/sdf")
    ]
    assert master["MetadataOptions"]["HttpTokens"] == "required"
    assert master["MetadataOptions"]["InstanceMetadataTags"] == "enabled"
    user_data = ec2.describe_instance_attribute(
        InstanceId=master["InstanceId"], Attribute="userData"
    )
    script = gzip.decompress(base64.b64decode(user_data["UserData"]["Value"])).decode()
    assert script == STARTUP_SCRIPT.read_text()
    assert master["IamInstanceProfile"]["Arn"].endswith("/kubernetes-master-us-west-2")

    # Node template: same script, IMDSv2 with tags, the node profile and groups, no public port.
    data = ec2.describe_launch_template_versions(
        LaunchTemplateId=found["launch-template"][0], Versions=["$Latest"]
    )["LaunchTemplateVersions"][0]["LaunchTemplateData"]
    assert gzip.decompress(base64.b64decode(data["UserData"])).decode() == script
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert data["MetadataOptions"]["InstanceMetadataTags"] == "enabled"
    assert data["IamInstanceProfile"]["Name"] == "kubernetes-minion-us-west-2"
    node_groups = set(data["NetworkInterfaces"][0]["Groups"])
    assert node_groups == {
        by_name["kubernetes-internal"]["GroupId"],
        by_name["kubernetes-ssh"]["GroupId"],
    }
    assert data["KeyName"] == master["KeyName"] == found["key-pair"][0]

    # Staging: the release with its sha256, each role's kube-env, private.
    (bucket,) = found["bucket"]
    assert bucket == config.staging_bucket("123456789012")
    manifest = json.loads((aws.release / "release.json").read_text())
    for artifact in manifest["artifacts"].values():
        head = s3.head_object(Bucket=bucket, Key=f"release/v1.34.4/{artifact['file']}")
        assert head["Metadata"]["sha256"] == artifact["sha256"]
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values())
    master_env = s3.get_object(Bucket=bucket, Key="kube-env/master")["Body"].read().decode()
    node_env = s3.get_object(Bucket=bucket, Key="kube-env/node")["Body"].read().decode()
    assert "APISERVER_KEY:" in master_env and "KUBERNETES_MASTER_IP: '172.20.0.9'" in master_env
    assert "APISERVER_KEY:" not in node_env and "KUBELET_KEY:" in node_env
    assert tag(master, res.KUBE_ENV_TAG) == f"{aws.moto.url}/{bucket}/kube-env/master"
    assert all(tag(n, res.KUBE_ENV_TAG) == f"{aws.moto.url}/{bucket}/kube-env/node" for n in nodes)

    # IAM: each role may read the release and its own kube-env, nothing else.
    for role, profile in (
        ("master", "kubernetes-master-us-west-2"),
        ("node", "kubernetes-minion-us-west-2"),
    ):
        trust = iam.get_role(RoleName=profile)["Role"]["AssumeRolePolicyDocument"]
        assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
        policy = iam.get_role_policy(RoleName=profile, PolicyName="kube-up-node-access")
        statement = policy["PolicyDocument"]["Statement"][0]
        assert statement["Action"] == "s3:GetObject"
        assert statement["Resource"] == [
            f"arn:aws:s3:::{bucket}/release/*",
            f"arn:aws:s3:::{bucket}/kube-env/{role}",
        ]
        roles = iam.get_instance_profile(InstanceProfileName=profile)["InstanceProfile"]["Roles"]
        assert [r["RoleName"] for r in roles] == [profile]

    # The key kube-up logs in with is the one imported; no secret reached the output.
    public_key = (Path(aws.tmp) / "state" / CLUSTER / "ssh" / "id_ed25519.pub").read_text()
    assert found["key-pair"] == [res.Names(config).key_pair(public_key)]
    secrets = provisioner.state.ensure_secrets()
    assert secrets.admin_password not in aws.output.getvalue()
    assert secrets.admin.key_pem.decode().splitlines()[1] not in aws.output.getvalue()


def staged_objects(aws: Aws, bucket: str) -> dict[str, tuple[str, object]]:
    listing = aws.client("s3").list_objects_v2(Bucket=bucket, Prefix="release/")["Contents"]
    return {o["Key"]: (o["ETag"], o["LastModified"]) for o in listing}


def test_second_run_creates_nothing(aws: Aws) -> None:
    aws.up()
    before = inventory(aws)
    objects_before = staged_objects(aws, before["bucket"][0])
    routes_before = aws.client("ec2").describe_route_tables(RouteTableIds=before["route-table"])
    versions_before = aws.client("ec2").describe_launch_template_versions(
        LaunchTemplateId=before["launch-template"][0]
    )["LaunchTemplateVersions"]
    aws.up()
    assert inventory(aws) == before
    # Nothing re-uploaded: the staged objects are the same writes as before.
    assert staged_objects(aws, before["bucket"][0]) == objects_before
    assert len(objects_before) == 4
    routes_after = aws.client("ec2").describe_route_tables(RouteTableIds=before["route-table"])
    assert routes_after["RouteTables"][0]["Routes"] == routes_before["RouteTables"][0]["Routes"]
    versions_after = aws.client("ec2").describe_launch_template_versions(
        LaunchTemplateId=before["launch-template"][0]
    )["LaunchTemplateVersions"]
    assert len(versions_after) == len(versions_before) == 1
    second_run = aws.output.getvalue().split("not waiting for the cluster")[1]
    assert "creating" not in second_run and "uploading" not in second_run


def test_more_nodes_get_the_next_pod_cidrs(aws: Aws) -> None:
    aws.set(NUM_NODES="2")
    aws.up()
    ec2 = aws.client("ec2")
    first = {tag(n, res.POD_CIDR_TAG): n["InstanceId"] for n in instances(ec2, role="node")}
    assert sorted(first) == ["10.244.1.0/24", "10.244.2.0/24"]
    aws.set(NUM_NODES="4")
    aws.up()
    now = {tag(n, res.POD_CIDR_TAG): n["InstanceId"] for n in instances(ec2, role="node")}
    assert sorted(now) == [f"10.244.{i}.0/24" for i in range(1, 5)]
    # Nodes keep their CIDRs; only the new ones got new ones.
    assert {c: now[c] for c in first} == first
    table = ec2.describe_route_tables(Filters=owned())["RouteTables"][0]
    pod_routes = {
        r["DestinationCidrBlock"]: r["InstanceId"] for r in table["Routes"] if "InstanceId" in r
    }
    assert pod_routes == now


# -- kube-down -------------------------------------------------------------------------------


def test_down_deletes_exactly_this_clusters_resources(aws: Aws) -> None:
    aws.set(
        INSTANCE_PREFIX="other", NETWORK="other-vpc", SUBNET_RANGE="172.21.0.0/24", NUM_NODES="1"
    )
    aws.up()
    other = inventory(aws, "other")
    aws.set(
        INSTANCE_PREFIX=CLUSTER,
        NETWORK="kubernetes-vpc",
        SUBNET_RANGE="172.20.0.0/24",
        NUM_NODES="3",
    )
    aws.up()
    assert tagged_anywhere(aws)

    listed = aws.provisioner().down(dry_run=True)
    assert counts(inventory(aws)) == EXPECTED_COUNTS  # --dry-run deletes nothing
    kinds = [r.kind for r in listed]
    assert kinds.index("instance") < kinds.index("security-group") < kinds.index("vpc")
    assert len([r for r in listed if r.kind == "instance"]) == 4

    aws.provisioner().down()
    assert all(not ids for ids in inventory(aws).values())
    assert tagged_anywhere(aws) == []
    assert not (aws.tmp / "state" / CLUSTER).exists()
    assert inventory(aws, "other") == other
    # Idempotent: nothing left to find, nothing fails.
    assert aws.provisioner().down() == []


def test_interrupted_run_converges_and_half_a_cluster_comes_down(aws: Aws) -> None:
    class Interrupted(AwsProvider):
        """Stops after the launch template exists, before the group launches nodes."""

        def ensure_nodes(self, metadata: VmMetadata) -> None:
            from aws import nodes

            nodes.ensure_template(
                self.ec2, self.config, self._launch_inputs(metadata, "node"), self.progress
            )
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        aws.up(Interrupted)
    half = inventory(aws)
    assert half["launch-template"] and not half["auto-scaling-group"]
    assert len(half["instance"]) == 1  # the master

    aws.up()
    assert counts(inventory(aws)) == EXPECTED_COUNTS
    assert inventory(aws)["launch-template"] == half["launch-template"]
    assert inventory(aws)["vpc"] == half["vpc"]

    # And a cluster interrupted before its nodes is torn down just as well.
    aws.provisioner().down()
    with pytest.raises(KeyboardInterrupt):
        aws.up(Interrupted)
    aws.provisioner().down()
    assert all(not ids for ids in inventory(aws).values())
    assert tagged_anywhere(aws) == []


# -- kube-push -------------------------------------------------------------------------------


def test_push_stages_the_new_release_and_updates_the_template(aws: Aws) -> None:
    aws.up()
    s3, ec2 = aws.client("s3"), aws.client("ec2")
    (bucket,) = inventory(aws)["bucket"]
    fake_release(aws.release, {"salt": b"a new salt tree\n"})
    provisioner = aws.provisioner()
    uploads_before = aws.output.getvalue().count("uploading")
    # The push reaches its SSH step: moto's instances publish no host key, so it stops there.
    with pytest.raises(Exception, match="published no SSH host key"):
        provisioner.push(release_dir=aws.release)
    assert aws.output.getvalue().count("uploading") == uploads_before + 1
    salt = json.loads((aws.release / "release.json").read_text())["artifacts"]["salt"]
    head = s3.head_object(Bucket=bucket, Key=f"release/v1.34.4/{salt['file']}")
    assert head["Metadata"]["sha256"] == salt["sha256"]
    for role in ("master", "node"):
        env = s3.get_object(Bucket=bucket, Key=f"kube-env/{role}")["Body"].read().decode()
        assert f"SALT_TAR_HASH: '{salt['sha256']}'" in env

    # A changed node script makes a new template version, the default for new nodes.
    provider = provisioner.provider
    assert isinstance(provider, AwsProvider)
    node_env = s3.get_object(Bucket=bucket, Key="kube-env/node")["Body"].read().decode()
    master_env = s3.get_object(Bucket=bucket, Key="kube-env/master")["Body"].read().decode()
    key = provisioner.state.ensure_secrets().ssh_public_key
    script = STARTUP_SCRIPT.read_text() + "# changed\n"
    provider.update_metadata(VmMetadata(script, master_env, key), VmMetadata(script, node_env, key))
    (template_id,) = inventory(aws)["launch-template"]
    versions = ec2.describe_launch_template_versions(LaunchTemplateId=template_id)[
        "LaunchTemplateVersions"
    ]
    assert len(versions) == 2
    default = [v for v in versions if v["DefaultVersion"]]
    assert [v["VersionNumber"] for v in default] == [2]
    user_data = default[0]["LaunchTemplateData"]["UserData"]
    assert gzip.decompress(base64.b64decode(user_data)).decode().endswith("# changed\n")


def test_region_follows_zone(aws: Aws) -> None:
    aws.set(ZONE="eu-west-1b", AMI=aws.moto.default_image("eu-west-1"), NUM_NODES="1")
    aws.up()
    ec2_eu = aws.moto.client("ec2", "eu-west-1")
    (subnet,) = ec2_eu.describe_subnets(Filters=owned())["Subnets"]
    assert subnet["AvailabilityZone"] == "eu-west-1b"
    assert len(instances(ec2_eu)) == 2
    assert aws.client("ec2").describe_vpcs(Filters=owned())["Vpcs"] == []
    assert aws.client("iam").get_role(RoleName="kubernetes-master-eu-west-1")


def test_more_nodes_than_a_describe_page(aws: Aws) -> None:
    """moto answers describe_instances 100 at a time; every node still gets its CIDR and route."""
    aws.set(NUM_NODES="120")
    aws.up()
    ec2 = aws.client("ec2")
    nodes = instances(ec2, role="node")
    assert len(nodes) == 120
    cidrs = sorted(tag(n, res.POD_CIDR_TAG) or "" for n in nodes)
    assert cidrs == sorted(f"10.244.{i}.0/24" for i in range(1, 121))
    table = ec2.describe_route_tables(Filters=owned())["RouteTables"][0]
    assert len([r for r in table["Routes"] if "InstanceId" in r]) == 120


def test_addresses_and_host_keys_as_kube_push_reads_them(aws: Aws) -> None:
    provider = aws.up().provider
    assert isinstance(provider, AwsProvider)
    ec2 = aws.client("ec2")
    nodes = {tag(n, "Name"): n for n in instances(ec2, role="node")}
    found = provider.node_addresses()
    assert sorted(found) == ["kubernetes-minion-1", "kubernetes-minion-2", "kubernetes-minion-3"]
    for name, address in found.items():
        node = nodes[name]
        assert address == node.get("PublicIpAddress", node["PrivateIpAddress"])
    # moto's console is a canned kernel log: no cloud-init host key block, so no key yet.
    (master,) = instances(ec2, role="master")
    assert provider.host_key("kubernetes-master") is None
    assert provider.host_key("no-such-vm") is None
    hint = provider.serial_log_hint("kubernetes-master")
    assert f"--instance-id {master['InstanceId']} --region us-west-2" in hint
