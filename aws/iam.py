"""The IAM role and instance profile of each VM role (master, node).

IAM names are global to the account, so a role or profile of that name that does not carry this
cluster's tag belongs to someone else and is never adopted. The inline policy is written on
every run: it names the staging bucket, which is how kube-push keeps it right.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws import calls
from aws import resources as res
from cluster.config import ClusterConfig
from cluster.errors import CloudError
from cluster.progress import Progress

POLICY_NAME = "kube-up-node-access"


def is_owned(
    entity: dict[str, Any], config: ClusterConfig, list_tags: Callable[[], dict[str, Any]]
) -> bool:
    """Whether an IAM entity carries this cluster's tag (asking for its tags when the get
    answer left them out)."""
    if res.tag_value(entity, res.CLUSTER_TAG) == config.cluster_name:
        return True
    listed = calls.call(list_tags, "IAM tags")
    return res.tag_value({"Tags": listed.get("Tags", [])}, res.CLUSTER_TAG) == config.cluster_name


def _check_owned(
    entity: dict[str, Any],
    config: ClusterConfig,
    kind: str,
    name: str,
    list_tags: Callable[[], dict[str, Any]],
) -> None:
    if not is_owned(entity, config, list_tags):
        raise CloudError(
            "exists but is not tagged as this cluster's",
            resource=f"IAM {kind} {name}",
            fix="delete it, or pick another INSTANCE_PREFIX",
        )


def ensure_instance_profile(
    iam: Any, config: ClusterConfig, role: str, bucket: str, progress: Progress
) -> str:
    """The instance profile VMs of ``role`` run with; returns its name (= the role's name)."""
    name = res.Names(config).iam_role(role)
    tag_list = res.tags(config, role=role)
    found = calls.find(lambda: iam.get_role(RoleName=name)["Role"], f"IAM role {name}")
    if found is None:
        progress.detail(f"creating IAM role {name}")
        calls.tolerating(
            lambda: iam.create_role(
                RoleName=name,
                AssumeRolePolicyDocument=res.trust_policy(),
                Description=f"kube-up cluster {config.cluster_name}: {role} VMs",
                Tags=tag_list,
            ),
            f"IAM role {name}",
            {"EntityAlreadyExists"},
        )
    else:
        _check_owned(found, config, "role", name, lambda: iam.list_role_tags(RoleName=name))
    calls.call(
        lambda: iam.put_role_policy(
            RoleName=name,
            PolicyName=POLICY_NAME,
            PolicyDocument=res.role_policy(config, role, bucket),
        ),
        f"IAM role {name}",
    )
    profile = calls.find(
        lambda: iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"],
        f"IAM instance profile {name}",
    )
    if profile is None:
        progress.detail(f"creating IAM instance profile {name}")
        profile = calls.call(
            lambda: iam.create_instance_profile(InstanceProfileName=name, Tags=tag_list)[
                "InstanceProfile"
            ],
            f"IAM instance profile {name}",
        )
    else:
        _check_owned(
            profile,
            config,
            "instance profile",
            name,
            lambda: iam.list_instance_profile_tags(InstanceProfileName=name),
        )
    if name not in {r["RoleName"] for r in profile.get("Roles") or []}:
        calls.call(
            lambda: iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name),
            f"IAM instance profile {name}",
        )
    return name
