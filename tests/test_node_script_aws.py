"""configure-vm.sh's AWS path: IMDSv2, instance tags, and the private staging bucket.

kube-up --no-wait runs against moto first, so the node script reads what the AWS provider
really wrote: the kube-env object and release in the bucket, the instance's tags, its role.
The instance metadata service is a loopback stand-in serving one moto instance (IMDSv2 only:
401 without a session token); moto enforces IAM and SigV4 while the script runs, so a download
the instance role may not make, or one signed wrongly, fails as it would on AWS.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
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
from cluster.provisioner import Provisioner
from cluster.state import ClusterState
from tests.aws_imds_standin import TOKEN_HEADER, TTL_HEADER, Imds, serve_imds
from tests.aws_moto import ACCOUNT, REGION, Moto, fake_release, kube_env, moto_server
from tests.test_node_script import SCRIPT, SERVER_BINARIES, _salt_tar, _tar_gz

ADMIN_POLICY = (
    '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}'
)


@dataclass
class AwsCluster:
    """A cluster kube-up made in moto, and admin credentials for looking at it."""

    moto: Moto
    admin: dict[str, str]
    bucket: str
    tmp: Path
    # Each instance role's temporary credentials, as IMDS hands them out.
    roles: dict[str, dict[str, str]]

    def client(self, service: str) -> Any:
        return self.moto.client(service, **self.admin)

    def instance(self, name: str) -> dict[str, Any]:
        filters = [{"Name": "tag:Name", "Values": [name]}]
        reservations = self.client("ec2").describe_instances(Filters=filters)["Reservations"]
        (instance,) = [i for r in reservations for i in r["Instances"]]
        return instance

    def role_credentials(self, role: str) -> dict[str, str]:
        return self.roles[role]

    def imds_for(self, name: str) -> Imds:
        instance = self.instance(name)
        instance_id = instance["InstanceId"]
        # moto drops the launch template's instance profile on group instances: the role
        # follows the instance's role tag, as the profile would.
        role = f"kubernetes-{'master' if 'master' in name else 'minion'}-{REGION}"
        assert res.tag_value(instance, res.ROLE_TAG) in ("master", "node")

        def describe() -> dict[str, Any]:
            found = self.client("ec2").describe_instances(InstanceIds=[instance_id])
            return found["Reservations"][0]["Instances"][0]

        return Imds(describe, lambda: self.role_credentials(role), role, REGION)


def _release_contents(tmp: Path) -> dict[str, bytes]:
    """The probe artifacts of test_node_script: salt records what it saw in probe.txt."""
    return {
        "server": _tar_gz(
            {
                f"kubernetes/server/bin/{b}": f"#!/bin/sh\necho {b}\n".encode()
                for b in SERVER_BINARIES
            }
        ),
        "salt": _salt_tar(tmp, "v1"),
        "salt_runtime": _tar_gz({"salt-runtime/README": b"salt goes here\n"}),
        "node_images": _tar_gz({"images/pause.oci.tar": b"pause image"}),
    }


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsCluster]:
    tmp = tmp_path_factory.mktemp("aws-node")
    with moto_server() as moto, pytest.MonkeyPatch.context() as patch:
        moto.reset()
        for name, value in kube_env(moto, tmp, AMI=moto.default_image(), NUM_NODES="2").items():
            patch.setenv(name, value)
        release = fake_release(tmp / "release", _release_contents(tmp))
        config = load_config()
        progress = Progress(console=Console(file=io.StringIO()))
        provisioner = Provisioner(
            config, AwsProvider(config, progress), progress, ClusterState(config.cluster_name)
        )
        provisioner.up(wait=False, release_dir=release)
        iam = moto.client("iam")
        iam.create_user(UserName="admin")
        iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=ADMIN_POLICY)
        key = iam.create_access_key(UserName="admin")["AccessKey"]
        admin = {
            "aws_access_key_id": key["AccessKeyId"],
            "aws_secret_access_key": key["SecretAccessKey"],
        }
        # Minted before IAM is enforced: the roles trust only EC2, which moto cannot be.
        sts = moto.client("sts")
        roles = {
            role: sts.assume_role(
                RoleArn=f"arn:aws:iam::{ACCOUNT}:role/{role}", RoleSessionName="instance"
            )["Credentials"]
            for role in (f"kubernetes-master-{REGION}", f"kubernetes-minion-{REGION}")
        }
        yield AwsCluster(moto, admin, config.staging_bucket(ACCOUNT), tmp, roles)


@pytest.fixture
def enforced(cluster: AwsCluster) -> Iterator[AwsCluster]:
    """moto checks signatures and IAM policies while the test runs."""
    cluster.moto.enforce_iam(True)
    try:
        yield cluster
    finally:
        cluster.moto.enforce_iam(False)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def script_env(imds: Imds, root: Path, **extra: str) -> dict[str, str]:
    root.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.environ["PATH"],
        "KUBE_ROOT": str(root),
        "KUBE_IMDS_URL": imds.url,
        # Nothing answers here: the script must find itself on AWS and use IMDS.
        "KUBE_METADATA_URL": f"http://127.0.0.1:{closed_port()}/computeMetadata/v1",
        "KUBE_PYTHON": sys.executable,
        "KUBE_CURL_RETRIES": "1",
        "KUBE_CURL_RETRY_DELAY": "1",
        "KUBE_ENV_TIMEOUT": "5",
        "KUBE_POD_CIDR_TIMEOUT": "10",
        "KUBE_IMDS_POLL": "0.2",
    }
    env.update(extra)
    return env


def run(imds: Imds, root: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        env=script_env(imds, root, **extra),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def call(imds: Imds, root: Path, commands: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f'source "{SCRIPT}"\n{commands}'],
        env=script_env(imds, root, **extra),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_node_boots_from_imds_and_the_private_bucket(enforced: AwsCluster) -> None:
    node = enforced.instance("kubernetes-minion-1")
    root = enforced.tmp / "node-1"
    with serve_imds(enforced.imds_for("kubernetes-minion-1")) as imds:
        proc = run(imds, root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "kube-up: node configuration done" in proc.stdout
    # Salt ran with the pod CIDR kube-up tagged the instance with and its IMDS address.
    probe = (root / "probe.txt").read_text().strip()
    assert probe == f"kubernetes-pool 10.244.1.0/24 {node['PrivateIpAddress']} kubernetes v1"
    assert "cloud: aws" in (root / "etc/kube-salt/grains").read_text()
    bins = sorted(p.name for p in (root / "opt/kubernetes/server/bin").iterdir())
    assert bins == ["kube-proxy", "kubectl", "kubelet"]
    # The kube-env it read is the node's, byte for byte, and stays private.
    saved = root / "var/cache/kubernetes-install/kube-env.yaml"
    s3 = enforced.client("s3")
    staged = s3.get_object(Bucket=enforced.bucket, Key="kube-env/node")["Body"].read()
    assert saved.read_bytes() == staged and saved.stat().st_mode & 0o777 == 0o600
    # IMDSv2 all the way: a token asked for with a TTL, every GET carrying a valid one.
    puts = [s for s in imds.seen if s.method == "PUT"]
    gets = [s for s in imds.seen if s.method == "GET"]
    assert puts and all(s.headers.get(TTL_HEADER) == "21600" for s in puts)
    assert gets and all(s.status in (200, 404) for s in gets)
    assert all(s.headers.get(TOKEN_HEADER) in imds.tokens for s in gets)
    # The role's secret never reaches the console.
    creds = [s for s in gets if s.path.endswith(f"security-credentials/{imds.role}")]
    assert creds
    for token in imds.tokens:
        assert token not in proc.stdout + proc.stderr
    assert "SecretAccessKey" not in proc.stdout + proc.stderr


def test_each_role_reads_its_own_kube_env_only(enforced: AwsCluster) -> None:
    node = enforced.role_credentials("kubernetes-minion-us-west-2")
    master = enforced.role_credentials("kubernetes-master-us-west-2")

    def s3_as(creds: dict[str, str]) -> Any:
        return enforced.moto.client(
            "s3",
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
        )

    as_node, as_master = s3_as(node), s3_as(master)
    assert (
        b"KUBELET_KEY"
        in as_node.get_object(Bucket=enforced.bucket, Key="kube-env/node")["Body"].read()
    )
    with pytest.raises(as_node.exceptions.ClientError, match="AccessDenied"):
        as_node.get_object(Bucket=enforced.bucket, Key="kube-env/master")
    assert (
        b"APISERVER_KEY"
        in as_master.get_object(Bucket=enforced.bucket, Key="kube-env/master")["Body"].read()
    )
    with pytest.raises(as_master.exceptions.ClientError, match="AccessDenied"):
        as_master.get_object(Bucket=enforced.bucket, Key="kube-env/node")
    with pytest.raises(as_node.exceptions.ClientError, match="AccessDenied"):
        as_node.list_objects_v2(Bucket=enforced.bucket)
    # Unsigned, the bucket answers nobody.
    url = f"{enforced.moto.url}/{enforced.bucket}/kube-env/node"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=10)
    assert refused.value.code == 403


def test_master_finds_its_kube_env_and_etcd_volume(enforced: AwsCluster) -> None:
    master = enforced.instance("kubernetes-master")
    volume = res.tag_value(master, res.MASTER_PD_TAG)
    assert volume and volume.startswith("vol-")
    with serve_imds(enforced.imds_for("kubernetes-master")) as imds:
        proc = call(
            imds,
            enforced.tmp / "master",
            'read-kube-env && echo "${KUBE_ENV[KUBERNETES_MASTER]}|${KUBE_ENV[MASTER_PD_DEVICE]}"',
        )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    device = f"/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_{volume.replace('-', '')}"
    assert proc.stdout.splitlines()[-1] == f"true|{device}"


def test_pod_cidr_wait_polls_the_instance_tag(enforced: AwsCluster) -> None:
    ec2 = enforced.client("ec2")
    node_id = enforced.instance("kubernetes-minion-2")["InstanceId"]
    cidr = [{"Key": res.POD_CIDR_TAG, "Value": "10.244.2.0/24"}]
    ec2.delete_tags(Resources=[node_id], Tags=[{"Key": res.POD_CIDR_TAG}])
    timer = threading.Timer(1.0, lambda: ec2.create_tags(Resources=[node_id], Tags=cidr))
    with serve_imds(enforced.imds_for("kubernetes-minion-2")) as imds:
        timer.start()
        try:
            proc = call(imds, enforced.tmp / "node-2", 'wait-pod-cidr && echo "got ${POD_CIDR}"')
        finally:
            timer.cancel()
            ec2.create_tags(Resources=[node_id], Tags=cidr)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "kube-up: waiting for metadata pod-cidr" in proc.stdout
    assert proc.stdout.splitlines()[-1] == "got 10.244.2.0/24"
    polls = [s for s in imds.seen if s.path.endswith(f"tags/instance/{res.POD_CIDR_TAG}")]
    assert len(polls) >= 2 and polls[0].status == 404 and polls[-1].status == 200


def test_imds_without_a_token_is_refused_and_the_script_says_so(cluster: AwsCluster) -> None:
    imds = cluster.imds_for("kubernetes-minion-1")
    imds.refuse_tokens = True
    with serve_imds(imds):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{imds.url}/latest/meta-data/local-ipv4", timeout=10)
        assert refused.value.code == 401
        proc = run(imds, cluster.tmp / "no-token")
    assert proc.returncode != 0
    assert f"kube-up: error: no IMDSv2 session token from {imds.url}" in proc.stderr
    assert proc.stdout.rstrip().endswith("kube-up: FAILED at read-kube-env")


def test_the_gce_metadata_server_wins_when_it_answers(cluster: AwsCluster) -> None:
    from tests.vm_http_standin import serve

    imds = cluster.imds_for("kubernetes-minion-1")
    with serve() as gce, serve_imds(imds):
        proc = call(
            imds,
            cluster.tmp / "gce",
            'metadata-source gce && echo "source ${KUBE_METADATA_SOURCE}"',
            KUBE_METADATA_URL=gce.metadata_url,
        )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "source gce"
    assert imds.seen == []
