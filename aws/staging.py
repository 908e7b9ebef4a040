"""The staging bucket: release tarballs (uploaded only when their sha256 is not there yet) and
each role's kube-env, private, read by the VMs with their instance role's credentials.

The sha256 rides on each object as user metadata, so a re-run or a kube-push that changed only
the salt tree re-sends nothing else. kube-env holds the cluster's keys: it is written with
server-side encryption, and only the role it is for may read it (see :mod:`aws.resources`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import BotoCoreError, ClientError

from aws import calls
from aws import resources as res
from cluster.config import ClusterConfig
from cluster.errors import CloudError
from cluster.kube_env import Artifact
from cluster.progress import Progress
from cluster.release.builder import ReleaseManifest

ABSENT = frozenset({"404", "NoSuchBucket", "NotFound"})
FORBIDDEN = frozenset({"403", "AccessDenied", "Forbidden"})


def object_url(s3: Any, bucket: str, key: str) -> str:
    """Path-style URL of an object at the S3 endpoint boto3 uses (AWS's or moto's)."""
    return f"{s3.meta.endpoint_url.rstrip('/')}/{bucket}/{quote(key)}"


def bucket_owner_tag(s3: Any, name: str) -> str | None:
    tagging = calls.tolerating(
        lambda: s3.get_bucket_tagging(Bucket=name), f"bucket {name}", {"NoSuchTagSet", *ABSENT}
    )
    return res.tag_value({"Tags": (tagging or {}).get("TagSet", [])}, res.CLUSTER_TAG)


def ensure_bucket(s3: Any, config: ClusterConfig, name: str, progress: Progress) -> None:
    """Create the bucket (private, tagged) or adopt it when it is ours."""
    resource = f"bucket {name}"
    _, missing = calls.attempt(lambda: s3.head_bucket(Bucket=name), resource, ABSENT | FORBIDDEN)
    if missing in FORBIDDEN:
        raise CloudError(
            "the name is taken by another AWS account",
            resource=resource,
            fix="set STAGING_BUCKET to a bucket name of your own",
        )
    if missing is not None:
        progress.detail(f"creating bucket {name}")
        params: dict[str, Any] = {"Bucket": name}
        if config.region != "us-east-1":
            params["CreateBucketConfiguration"] = {"LocationConstraint": config.region}
        calls.tolerating(lambda: s3.create_bucket(**params), resource, {"BucketAlreadyOwnedByYou"})
    owner = bucket_owner_tag(s3, name)
    if owner == config.cluster_name:
        return
    if owner is not None:
        raise CloudError(
            f"belongs to cluster {owner}",
            resource=resource,
            fix="set STAGING_BUCKET to another bucket, or pick another INSTANCE_PREFIX",
        )
    if config.staging_bucket_setting and missing is None:
        # A bucket the user named and made: use it, never claim it (kube-down keeps it).
        return
    # Ours, created now or by a run interrupted before it could tag it (the derived name
    # hashes this account and region).
    calls.call(
        lambda: s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": res.tags(config, name=name)}),
        resource,
    )
    calls.call(
        lambda: s3.put_public_access_block(
            Bucket=name,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        ),
        resource,
    )


def stage_release(
    s3: Any, bucket: str, release_dir: Path, manifest: ReleaseManifest, progress: Progress
) -> Mapping[str, Artifact]:
    staged: dict[str, Artifact] = {}
    for key, artifact in sorted(manifest.artifacts.items()):
        object_key = res.release_key(manifest.kube_version, artifact.file)
        resource = f"s3://{bucket}/{object_key}"
        head = calls.find(lambda k=object_key: s3.head_object(Bucket=bucket, Key=k), resource)
        if head is not None and head.get("Metadata", {}).get("sha256") == artifact.sha256:
            progress.detail(f"{artifact.file} already staged")
        else:
            progress.detail(f"uploading {artifact.file}")
            _upload(s3, release_dir / artifact.file, bucket, object_key, artifact.sha256)
        staged[key] = Artifact(url=object_url(s3, bucket, object_key), sha256=artifact.sha256)
    return staged


def _upload(s3: Any, path: Path, bucket: str, key: str, sha256: str) -> None:
    try:
        s3.upload_file(str(path), bucket, key, ExtraArgs={"Metadata": {"sha256": sha256}})
    except (S3UploadFailedError, ClientError, BotoCoreError) as exc:
        raise CloudError(f"upload failed: {exc}", resource=f"s3://{bucket}/{key}") from None
    except OSError as exc:
        raise CloudError(f"cannot read {path}: {exc.strerror}", resource="release") from None


def put_kube_env(s3: Any, bucket: str, role: str, kube_env: str) -> str:
    """Write ``role``'s kube-env; return the URL its VMs read it from."""
    key = res.kube_env_key(role)
    calls.call(
        lambda: s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=kube_env.encode(),
            ContentType="text/plain",
            ServerSideEncryption="AES256",
        ),
        f"s3://{bucket}/{key}",
    )
    return object_url(s3, bucket, key)
