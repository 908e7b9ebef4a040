"""moto's real HTTP server for the AWS tests, and the environment kube-up needs to use it.

moto keeps its backends in process-wide state, so every test starts from a reset server; IAM
enforcement (``/moto-api/reset-auth``) is process-wide too and is always switched back off.
"""

from __future__ import annotations

import hashlib
import json
import logging
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from cluster.release.builder import MANIFEST

REGION = "us-west-2"
ACCOUNT = "123456789012"
FAKE_KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
ARTIFACT_FILES = {
    "server": "kubernetes-server-linux-amd64.tar.gz",
    "salt": "kubernetes-salt.tar.gz",
    "salt_runtime": "salt-runtime-py3.11-linux-amd64.tar.gz",
    "node_images": "kubernetes-node-images.tar.gz",
}


@dataclass
class Moto:
    """A running moto server on 127.0.0.1."""

    url: str
    images: dict[str, str] = field(default_factory=dict)

    def _post(self, path: str, body: bytes) -> None:
        request = urllib.request.Request(
            self.url + path, data=body, method="POST", headers={"Content-Type": "text/plain"}
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            answer.read()

    def reset(self) -> None:
        self._post("/moto-api/reset", b"")

    def enforce_iam(self, enabled: bool) -> None:
        """Make moto check signatures and IAM policies (from the next request on), or stop."""
        self._post("/moto-api/reset-auth", b"0" if enabled else b"inf")

    def client(self, service: str, region: str = REGION, **credentials: str) -> Any:
        keys = credentials or {
            "aws_access_key_id": FAKE_KEYS["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": FAKE_KEYS["AWS_SECRET_ACCESS_KEY"],
        }
        return boto3.client(service, region_name=region, endpoint_url=self.url, **keys)

    def default_image(self, region: str = REGION) -> str:
        """An AMI moto ships (it has no Debian images), with an id our AMI setting accepts.
        moto's images survive a reset, and listing them is slow: asked once per region."""
        if region not in self.images:
            images = self.client("ec2", region).describe_images(Owners=["amazon"])["Images"]
            ids = sorted(i["ImageId"] for i in images if len(i["ImageId"]) in (12, 21))
            self.images[region] = ids[0]
        return self.images[region]


@contextmanager
def moto_server() -> Iterator[Moto]:
    # werkzeug logs every request at INFO; captured by pytest, that is most of a test's time.
    access_log = logging.getLogger("werkzeug")
    level = access_log.level
    access_log.setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield Moto(f"http://{host}:{port}")
    finally:
        server.stop()
        access_log.setLevel(level)


def kube_env(moto: Moto, tmp: Path, **settings: str) -> dict[str, str]:
    """What a user of the aws provider would export, pointed at moto and temp dirs."""
    env = {
        **FAKE_KEYS,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": moto.url,
        # No shared config or instance metadata lookups from this host.
        "AWS_CONFIG_FILE": str(tmp / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "KUBERNETES_PROVIDER": "aws",
        "KUBE_UP_STATE_DIR": str(tmp / "state"),
        "KUBECONFIG": str(tmp / "kubeconfig"),
        "KUBERNETES_AUTH_FILE": str(tmp / "kubernetes_auth"),
        "KUBE_UP_POLL_INTERVAL": "0.2",
        "NUM_NODES": "3",
    }
    env.update(settings)
    return env


def apply_env(monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str]) -> None:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION", "AMI", "ZONE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def fake_release(dest: Path, contents: Mapping[str, bytes] | None = None) -> Path:
    """A release dir of the real shape (release.json + four artifacts); moto stores only bytes."""
    dest.mkdir(parents=True, exist_ok=True)
    artifacts = {}
    for key, name in ARTIFACT_FILES.items():
        data = (contents or {}).get(key, f"{key} artifact\n".encode())
        (dest / name).write_bytes(data)
        artifacts[key] = {"file": name, "sha256": hashlib.sha256(data).hexdigest()}
    manifest = {"kube_version": "v1.34.4", "server_source": "test", "artifacts": artifacts}
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return dest
