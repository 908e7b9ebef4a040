"""Stage the release to a bucket, uploading only files whose sha256 is not already there.

The sha256 rides on each object as custom metadata, so a re-run (or a kube-push that changed only
the salt tree) re-sends nothing that is already in place.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from google.api_core import exceptions as gexc
from google.cloud import storage

from cluster.errors import CloudError
from cluster.kube_env import Artifact
from cluster.progress import Progress
from cluster.release.builder import ReleaseManifest
from gce.resources import CLUSTER_LABEL

PUBLIC_BASE = "https://storage.googleapis.com"
# An object naming the cluster that created the bucket: teardown deletes only a bucket whose
# marker names its cluster (labels say the same on GCS, but not every emulator keeps them).
OWNER_OBJECT = "kube-up-owner"


def bucket_owner(bucket: storage.Bucket) -> str | None:
    """The cluster that created ``bucket``, from its owner marker."""
    marker = bucket.get_blob(OWNER_OBJECT)
    return marker.download_as_text().strip() if marker is not None else None


def owns(bucket: storage.Bucket, cluster: str, *, derived_name: bool) -> bool:
    """Whether ``bucket`` is ``cluster``'s. Its owner marker says so; without one (kube-up was
    killed between creating the bucket and writing the marker, or kube-down between deleting
    the marker and the bucket) its label does where the store keeps labels (GCS does, emulators
    may not), and so does its name when it is the one kube-up derives for this cluster (not a
    STAGING_BUCKET the user chose, which may hold anything)."""
    owner = bucket_owner(bucket)
    if owner is not None:
        return owner == cluster
    return derived_name or (bucket.labels or {}).get(CLUSTER_LABEL) == cluster


def download_base() -> str:
    """Where VMs fetch objects: the emulator's address when one is in use, else GCS."""
    return os.environ.get("STORAGE_EMULATOR_HOST", "").rstrip("/") or PUBLIC_BASE


def _bucket(client: storage.Client, name: str, cluster: str, derived_name: bool) -> storage.Bucket:
    try:
        bucket = client.lookup_bucket(name)
        if bucket is None:
            bucket = client.bucket(name)
            bucket.labels = {CLUSTER_LABEL: cluster}
            bucket = client.create_bucket(bucket)
            bucket.blob(OWNER_OBJECT).upload_from_string(cluster)
        elif bucket_owner(bucket) is None and owns(bucket, cluster, derived_name=derived_name):
            bucket.blob(OWNER_OBJECT).upload_from_string(cluster)  # a creation cut short
    except gexc.Conflict:
        raise CloudError(
            "bucket name is taken by another project",
            resource=f"bucket {name}",
            fix="set STAGING_BUCKET to a name of your own",
        ) from None
    except gexc.GoogleAPICallError as exc:
        raise CloudError(str(exc.message), resource=f"bucket {name}") from None
    return bucket


def stage_release(
    client: storage.Client,
    bucket_name: str,
    release_dir: Path,
    manifest: ReleaseManifest,
    cluster: str,
    progress: Progress,
    *,
    derived_name: bool = False,
) -> Mapping[str, Artifact]:
    """Upload what is missing; ``derived_name``: the bucket name is kube-up's own (see owns)."""
    bucket = _bucket(client, bucket_name, cluster, derived_name)
    staged: dict[str, Artifact] = {}
    for key, artifact in sorted(manifest.artifacts.items()):
        object_name = f"{manifest.kube_version}/{artifact.file}"
        try:
            blob = bucket.get_blob(object_name)
            if blob is None or (blob.metadata or {}).get("sha256") != artifact.sha256:
                progress.detail(f"uploading {artifact.file}")
                blob = bucket.blob(object_name)
                blob.metadata = {"sha256": artifact.sha256}
                blob.upload_from_filename(str(release_dir / artifact.file), timeout=600)
            else:
                progress.detail(f"{artifact.file} already staged")
        except gexc.GoogleAPICallError as exc:
            raise CloudError(
                str(exc.message), resource=f"gs://{bucket_name}/{object_name}"
            ) from None
        url = f"{download_base()}/{bucket_name}/{object_name}"
        staged[key] = Artifact(url=url, sha256=artifact.sha256)
    return staged
