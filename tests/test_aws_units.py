"""The AWS provider's pure parts: config, error mapping, request bodies, console host keys."""

from __future__ import annotations

import base64
import gzip
import json
import random

import pytest
from botocore.exceptions import ClientError, NoCredentialsError

from aws import calls, console, nodes
from aws import resources as res
from cluster.config import build_config
from cluster.errors import CloudError, ConfigError, PrereqError
from cluster.retry import Backoff

ENV = {"KUBERNETES_PROVIDER": "aws", "NUM_NODES": "3"}


@pytest.fixture
def config():
    return build_config(ENV, {})


# -- config ----------------------------------------------------------------------------------


def test_aws_defaults_and_overrides() -> None:
    config = build_config(ENV, {})
    assert (config.zone, config.region, config.master_size) == (
        "us-west-2a",
        "us-west-2",
        "t3.medium",
    )
    config = build_config({**ENV, "AWS_ZONE": "eu-central-1b", "AMI": "ami-0abc1234"}, {})
    assert (config.zone, config.region) == ("eu-central-1b", "eu-central-1")
    assert config.master_image == config.node_image == "ami-0abc1234"
    assert build_config({"KUBERNETES_PROVIDER": "aws", "NUM_MINIONS": "5"}, {}).num_nodes == 5


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"ZONE": "us-central1-b"}, "ZONE='us-central1-b' (from the environment) is not allowed"),
        ({"AMI": "debian-12"}, "AMI='debian-12' (from the environment) is not allowed"),
        ({"NODE_SIZE": "e2-standard-2"}, "an EC2 instance type like 't3.medium'"),
        ({"AWS_REGION": "eu-west-1"}, "ZONE=us-west-2a is in region us-west-2"),
    ],
)
def test_bad_aws_settings_are_one_line(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_config({**ENV, **env}, {})
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


# -- errors ----------------------------------------------------------------------------------


def client_error(code: str, message: str = "it failed", status: int = 400) -> ClientError:
    response = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "AnOperation")


@pytest.mark.parametrize(
    ("code", "status", "retried"),
    [
        ("RequestLimitExceeded", 503, True),
        ("Throttling", 400, True),
        ("SlowDown", 503, True),
        ("InternalError", 500, True),
        ("Whatever", 502, True),
        ("DependencyViolation", 400, False),
        ("InvalidParameterValue", 400, False),
    ],
)
def test_what_counts_as_throttling(code: str, status: int, retried: bool) -> None:
    assert calls.is_throttling(client_error(code, status=status)) is retried


@pytest.mark.parametrize(
    ("code", "fix"),
    [
        ("InstanceLimitExceeded", "'Running On-Demand instances' quota"),
        ("VcpuLimitExceeded", "'Running On-Demand instances' quota"),
        ("VpcLimitExceeded", "'VPCs per Region' quota"),
        ("AddressLimitExceeded", "'EC2-VPC Elastic IPs' quota"),
        ("RouteLimitExceeded", "'Routes per route table' quota"),
        ("NatGatewayLimitExceeded", "ask AWS for a higher quota"),
        ("UnauthorizedOperation", "grant these credentials"),
        ("AccessDenied", "grant these credentials"),
        ("InvalidAMIID.NotFound", "set AMI"),
    ],
)
def test_cloud_errors_name_the_fix(code: str, fix: str) -> None:
    error = calls.cloud_error(client_error(code, "No.\nReally."), "vpc x")
    assert isinstance(error, CloudError)
    assert str(error).startswith(f"vpc x: {code}: No. Really.; ") and fix in str(error)


def test_credential_problems_are_prereq_errors() -> None:
    assert isinstance(calls.cloud_error(NoCredentialsError(), "x"), PrereqError)
    rejected = calls.cloud_error(client_error("AuthFailure", "bad key", 401), "vpc x")
    assert isinstance(rejected, PrereqError)
    assert str(rejected).startswith("AWS rejected the credentials (AuthFailure: bad key)")


def test_call_retries_then_gives_up_with_one_line() -> None:
    attempts = []

    def throttled() -> None:
        attempts.append(1)
        raise client_error("RequestLimitExceeded", "Request limit exceeded.", 503)

    with pytest.raises(CloudError) as caught:
        calls.call(throttled, "vpc x", backoff=Backoff(initial=0.01, max_attempts=3))
    assert len(attempts) == 3
    assert str(caught.value) == (
        "vpc x: RequestLimitExceeded: Request limit exceeded.; AWS is throttling these requests: "
        "wait a minute and run the command again"
    )


def test_tolerated_codes_answer_none_and_others_raise() -> None:
    def gone() -> None:
        raise client_error("InvalidVpcID.NotFound")

    assert calls.find(gone, "vpc x") is None
    assert calls.attempt(gone, "vpc x", {"InvalidVpcID.NotFound"}) == (
        None,
        "InvalidVpcID.NotFound",
    )
    with pytest.raises(CloudError):
        calls.call(gone, "vpc x")


# -- request bodies --------------------------------------------------------------------------


def test_user_data_is_the_script_gzipped_and_stable() -> None:
    script = "#!/bin/bash\necho hello\n" * 500
    packed = res.user_data(script)
    assert gzip.decompress(packed).decode() == script
    assert res.user_data(script) == packed and len(packed) < len(script) // 10
    with pytest.raises(ValueError, match="EC2 allows 16384"):
        res.user_data(base64.b64encode(random.Random(0).randbytes(20000)).decode())


def test_the_real_node_script_fits_in_user_data() -> None:
    from cluster.vm_config import STARTUP_SCRIPT

    assert len(res.user_data(STARTUP_SCRIPT.read_text())) < res.USER_DATA_LIMIT


def test_role_policy_reads_the_release_and_its_own_kube_env(config) -> None:
    for role in ("master", "node"):
        policy = json.loads(res.role_policy(config, role, "bkt"))
        (statement,) = policy["Statement"]
        assert statement["Action"] == "s3:GetObject"
        assert statement["Resource"] == [
            "arn:aws:s3:::bkt/release/*",
            f"arn:aws:s3:::bkt/kube-env/{role}",
        ]
    gov = build_config({**ENV, "ZONE": "us-gov-west-1a"}, {})
    assert json.loads(res.role_policy(gov, "node", "b"))["Statement"][0]["Resource"][0].startswith(
        "arn:aws-us-gov:s3:::b/"
    )


def test_iam_names_fit_and_differ_per_region(config) -> None:
    names = res.Names(config)
    assert names.iam_role("master") == "kubernetes-master-us-west-2"
    long_prefix = build_config({**ENV, "INSTANCE_PREFIX": "a" * 38, "ZONE": "ap-southeast-2a"}, {})
    assert len(res.Names(long_prefix).iam_role("node")) <= 64


def test_only_ssh_and_https_are_open_to_the_world(config) -> None:
    rules = res.security_group_rules(config)
    world = sorted(
        (name, key[1])
        for name, perms in rules.items()
        for key in res.rule_keys(perms)
        if key[3] == "0.0.0.0/0"
    )
    assert world == [("kubernetes-master-https", 443), ("kubernetes-ssh", 22)]
    assert res.role_groups(config, "node") == ("kubernetes-internal", "kubernetes-ssh")


def test_template_digest_follows_the_data(config) -> None:
    launch = res.LaunchInputs(
        "ami-0abc1234", "/dev/xvda", "subnet-1", ("sg-1",), "k", "p", "u", "s"
    )
    data = res.node_template_data(config, launch)
    assert res.template_digest(data) == res.template_digest(json.loads(json.dumps(data)))
    changed = res.node_template_data(config, launch.__class__(**{**launch.__dict__, "script": "t"}))
    assert res.template_digest(changed) != res.template_digest(data)
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert data["MetadataOptions"]["HttpPutResponseHopLimit"] == 1


def test_master_ip_is_fixed_in_the_subnet(config) -> None:
    assert res.master_internal_ip(config) == "172.20.0.9"


# -- host keys from the console --------------------------------------------------------------

CLOUD_INIT_CONSOLE = """\
[   12.3] cloud-init[612]: Cloud-init v. 22.4.2 finished
-----BEGIN SSH HOST KEY KEYS-----
ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTY= root@ip-172-20-0-9
ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOLD root@ip-172-20-0-9
-----END SSH HOST KEY KEYS-----
reboot
-----BEGIN SSH HOST KEY KEYS-----
[   3.1] ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINEW root@ip-172-20-0-9
-----END SSH HOST KEY KEYS-----
"""


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (CLOUD_INIT_CONSOLE, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINEW"),
        (CLOUD_INIT_CONSOLE.split("reboot")[0], "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOLD"),
        ("booting...\n", None),
        ("-----BEGIN SSH HOST KEY KEYS-----\nssh-ed25519 AAAA", None),
        (
            "-----BEGIN SSH HOST KEY KEYS-----\nssh-rsa AAAA x\n-----END SSH HOST KEY KEYS-----",
            None,
        ),
    ],
)
def test_host_key_from_the_console(text: str, key: str | None) -> None:
    assert console.ed25519_host_key(text) == key
    encoded = base64.b64encode(text.encode()).decode()
    assert console.ed25519_host_key(console.decode_output(encoded)) == key


@pytest.mark.parametrize(
    ("message", "transient"),
    [
        ("Invalid IAM Instance Profile name. Launching EC2 instance failed.", True),
        ("We currently do not have sufficient t3.medium capacity in the Availability Zone", True),
        ("You have requested more vCPU capacity than your current vCPU limit of 32 allows", False),
        ("The image id '[ami-0abc1234]' does not exist. Launching EC2 instance failed.", False),
    ],
)
def test_which_group_launch_failures_are_waited_out(message: str, transient: bool) -> None:
    assert nodes.is_transient(message) is transient
