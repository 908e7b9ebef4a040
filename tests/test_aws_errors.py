"""AWS failures kube-up expects: each is one clear line (or a retry), never a traceback.

Throttling, quotas and UnauthorizedOperation come from a fault proxy in front of moto (moto has
none of them); AccessDenied comes from moto itself enforcing a real IAM policy.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from aws import teardown
from aws.provider import AwsProvider
from cluster import cli
from cluster.config import load_config
from cluster.errors import CloudError, KubeUpError, PrereqError
from cluster.progress import Progress
from cluster.provisioner import Provisioner
from cluster.release.builder import MANIFEST, default_output_dir
from cluster.retry import Backoff
from cluster.state import ClusterState
from tests.aws_faults import FaultProxy, fault_proxy
from tests.aws_moto import Moto, apply_env, fake_release, kube_env, moto_server

ENCODED = (
    "You are not authorized to perform this operation. Encoded authorization failure message: "
    "AbCdEf0123456789-very-long-opaque-blob"
)


@pytest.fixture(scope="module")
def moto() -> Iterator[Moto]:
    with moto_server() as server:
        yield server


@pytest.fixture
def proxy(moto: Moto) -> Iterator[FaultProxy]:
    moto.reset()
    with fault_proxy(moto.url) as running:
        yield running


@pytest.fixture
def release(moto: Moto, proxy: FaultProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """EC2, IAM, STS and Auto Scaling through the proxy; S3 straight to moto."""
    env = kube_env(moto, tmp_path, AMI=moto.default_image(), NUM_NODES="2")
    env["AWS_ENDPOINT_URL"] = proxy.url
    env["AWS_ENDPOINT_URL_S3"] = moto.url
    apply_env(monkeypatch, env)
    return fake_release(tmp_path / "release")


def provisioner() -> Provisioner:
    config = load_config()
    progress = Progress(console=Console(file=io.StringIO(), width=200))
    return Provisioner(
        config, AwsProvider(config, progress), progress, ClusterState(config.cluster_name)
    )


def up_fails(release: Path) -> KubeUpError:
    with pytest.raises(KubeUpError) as caught:
        provisioner().up(wait=False, release_dir=release)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 400, message
    return caught.value


def test_throttling_is_retried_with_backoff(moto: Moto, proxy: FaultProxy, release: Path) -> None:
    proxy.fail("CreateVpc", "RequestLimitExceeded", "Request limit exceeded.", times=2)
    proxy.fail("CreateRole", "Throttling", "Rate exceeded", times=1)
    proxy.fail("DescribeInstances", "InternalError", "An internal error occurred", status=500)
    provisioner().up(wait=False, release_dir=release)
    assert proxy.count("CreateVpc") == 3
    assert proxy.count("CreateRole") == 3  # master: throttled once, then ok; node: ok
    assert len(load_vpcs(moto)) == 1


def load_vpcs(moto: Moto) -> list[dict[str, object]]:
    owned = [{"Name": "tag:kube-up-cluster", "Values": ["kubernetes"]}]
    return moto.client("ec2").describe_vpcs(Filters=owned)["Vpcs"]


def test_vpc_quota_is_one_line_with_the_fix(proxy: FaultProxy, release: Path) -> None:
    proxy.fail("CreateVpc", "VpcLimitExceeded", "The maximum number of VPCs has been reached.")
    error = up_fails(release)
    assert isinstance(error, CloudError) and error.exit_code == 4
    assert str(error) == (
        "vpc kubernetes-vpc: VpcLimitExceeded: The maximum number of VPCs has been reached.; "
        "delete unused VPCs in this region, or ask AWS for a higher 'VPCs per Region' quota"
    )


def test_instance_quota_fails_then_a_rerun_converges(
    moto: Moto, proxy: FaultProxy, release: Path
) -> None:
    proxy.fail(
        "RunInstances",
        "InstanceLimitExceeded",
        "You have requested more instances (21) than your current instance limit of 20 allows.",
    )
    error = up_fails(release)
    assert str(error).startswith("instance kubernetes-master: InstanceLimitExceeded: You have")
    assert "Running On-Demand instances' quota" in str(error)
    # The network, addresses and bucket made before the failure are adopted, not duplicated.
    provisioner().up(wait=False, release_dir=release)
    assert len(load_vpcs(moto)) == 1
    assert proxy.count("CreateVpc") == 1 and proxy.count("RunInstances") == 2


def test_unauthorized_operation_drops_the_encoded_blob(proxy: FaultProxy, release: Path) -> None:
    proxy.fail("CreateSecurityGroup", "UnauthorizedOperation", ENCODED, status=403)
    error = up_fails(release)
    assert str(error).startswith(
        "security group kubernetes-internal: UnauthorizedOperation: You are not authorized to "
        "perform this operation.; grant these credentials"
    )
    assert "AbCdEf" not in str(error)


def test_access_denied_by_a_real_iam_policy(
    moto: Moto, proxy: FaultProxy, release: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto enforcing IAM: credentials that may do everything but create roles."""
    iam = moto.client("iam")
    iam.create_user(UserName="no-iam")
    statements = [
        {"Effect": "Allow", "Action": "*", "Resource": "*"},
        {"Effect": "Deny", "Action": "iam:CreateRole", "Resource": "*"},
    ]
    policy = json.dumps({"Version": "2012-10-17", "Statement": statements})
    iam.put_user_policy(UserName="no-iam", PolicyName="no-roles", PolicyDocument=policy)
    key = iam.create_access_key(UserName="no-iam")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    moto.enforce_iam(True)
    try:
        error = up_fails(release)
    finally:
        moto.enforce_iam(False)
    assert str(error).startswith("IAM role kubernetes-master-us-west-2: AccessDenied: User: ")
    assert "is not authorized to perform: iam:CreateRole" in str(error)
    assert "grant these credentials" in str(error)


def test_missing_credentials_is_a_prereq_error(
    release: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    error = up_fails(release)
    assert isinstance(error, PrereqError) and error.exit_code == 3
    assert str(error) == (
        "no usable AWS credentials found (Unable to locate credentials); set AWS_ACCESS_KEY_ID "
        "and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), or run `aws configure`"
    )


def test_rejected_credentials_are_a_prereq_error(proxy: FaultProxy, release: Path) -> None:
    proxy.fail(
        "GetCallerIdentity",
        "InvalidClientTokenId",
        "The security token included in the request is invalid.",
        status=403,
    )
    error = up_fails(release)
    assert isinstance(error, PrereqError)
    assert str(error).startswith("AWS rejected the credentials (InvalidClientTokenId: The")


def test_unknown_zone_names_the_zones(release: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZONE", "us-west-2z")
    error = up_fails(release)
    assert str(error) == (
        "ZONE=us-west-2z: no zone us-west-2z in region us-west-2; "
        "use one of us-west-2a, us-west-2b, us-west-2c, us-west-2d"
    )


def test_unreachable_endpoint_is_a_prereq_error(
    release: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    error = up_fails(release)
    assert isinstance(error, PrereqError)
    assert str(error).startswith("cannot reach the AWS endpoint http://127.0.0.1:9/; check ZONE")


def test_a_subnet_aws_cannot_make_is_refused_before_any_call(
    proxy: FaultProxy, release: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUBNET_RANGE", "172.16.0.0/12")
    error = up_fails(release)
    assert str(error) == (
        "SUBNET_RANGE='172.16.0.0/12' is not allowed: an AWS subnet must be between /16 and /28"
    )
    assert proxy.actions == []


def test_a_changed_subnet_range_is_refused(release: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    provisioner().up(wait=False, release_dir=release)
    monkeypatch.setenv("SUBNET_RANGE", "172.20.0.0/23")
    error = up_fails(release)
    assert "exists with CIDR 172.20.0.0/24, but SUBNET_RANGE is 172.20.0.0/23" in str(error)
    assert "set SUBNET_RANGE=172.20.0.0/24, or kube-down first" in str(error)


def test_kube_down_retries_dependency_violations(
    moto: Moto, proxy: FaultProxy, release: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    provisioner().up(wait=False, release_dir=release)
    monkeypatch.setattr(teardown, "DEPENDENTS_BACKOFF", Backoff(initial=0.05, deadline=30.0))
    proxy.fail("DeleteVpc", "DependencyViolation", "The vpc has dependencies.", times=2)
    proxy.fail("DeleteSubnet", "DependencyViolation", "The subnet has dependencies.", times=1)
    provisioner().down()
    assert proxy.count("DeleteVpc") == 3 and proxy.count("DeleteSubnet") == 2
    assert load_vpcs(moto) == []


REAL_RELEASE = default_output_dir() / MANIFEST


@pytest.mark.release
@pytest.mark.skipif(not REAL_RELEASE.is_file(), reason="needs `make release`")
def test_cli_up_and_down_with_the_built_release(
    moto: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    moto.reset()
    apply_env(monkeypatch, kube_env(moto, tmp_path, AMI=moto.default_image(), NUM_NODES="2"))
    assert cli.kube_up(["--no-wait"]) == 0
    manifest = json.loads(REAL_RELEASE.read_text())
    s3 = moto.client("s3")
    (bucket,) = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    for artifact in manifest["artifacts"].values():
        key = f"release/{manifest['kube_version']}/{artifact['file']}"
        assert s3.head_object(Bucket=bucket, Key=key)["Metadata"]["sha256"] == artifact["sha256"]
    assert cli.kube_down(["--dry-run"]) == 0
    assert "would delete vpc" in capsys.readouterr().err
    assert cli.kube_down([]) == 0
    assert s3.list_buckets()["Buckets"] == []
    assert (
        moto.client("ec2").describe_vpcs(
            Filters=[{"Name": "tag:kube-up-cluster", "Values": ["kubernetes"]}]
        )["Vpcs"]
        == []
    )


@pytest.mark.release
@pytest.mark.skipif(not REAL_RELEASE.is_file(), reason="needs `make release`")
def test_cli_prints_one_red_line_and_exits_with_the_code(
    proxy: FaultProxy, release: Path, capsys: pytest.CaptureFixture
) -> None:
    proxy.fail("CreateVpc", "VpcLimitExceeded", "The maximum number of VPCs has been reached.")
    assert cli.kube_up(["--no-wait"]) == 4
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("kube-up:")]
    assert lines == [
        "kube-up: vpc kubernetes-vpc: VpcLimitExceeded: The maximum number of VPCs has been "
        "reached.; delete unused VPCs in this region, or ask AWS for a higher 'VPCs per Region' "
        "quota"
    ]
    assert "Traceback" not in err
