"""Container images for clusters that reach no image registry.

Each image is written as an OCI image layout in a tar (``oci-layout``, ``index.json``, blobs), the
form ``ctr -n k8s.io images import`` takes. The pause image runs our own pause command; the
workload image is Debian's busybox-static with its applet links, enough for a shell, ``sleep`` and
``httpd``; the DNS image runs CoreDNS, built from the Go module proxy. All are deterministic, so
the images tarball is named by its content too.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from cluster.errors import PrereqError
from cluster.release.tarball import Entry, gzip_bytes, tar_bytes
from cluster.release.versions import DNS_IMAGE, PAUSE_IMAGE, WORKLOAD_IMAGE

BUSYBOX = Path("/bin/busybox")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def _canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def oci_archive(ref: str, layer_entries: list[Entry], config: dict[str, object]) -> bytes:
    """An OCI image layout tar holding one single-layer image named ``ref``."""
    layer_tar = tar_bytes(layer_entries)
    layer = gzip_bytes(layer_tar)
    image_config = _canonical(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [_digest(layer_tar)]},
        }
    )
    manifest = _canonical(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG,
                "digest": _digest(image_config),
                "size": len(image_config),
            },
            "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": _digest(layer), "size": len(layer)}],
        }
    )
    index = _canonical(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": _digest(manifest),
                    "size": len(manifest),
                    "annotations": {
                        "io.containerd.image.name": ref,
                        "org.opencontainers.image.ref.name": ref.rsplit(":", 1)[-1],
                    },
                }
            ],
        }
    )
    blobs = [image_config, manifest, layer]
    entries = [
        Entry("oci-layout", data=_canonical({"imageLayoutVersion": "1.0.0"})),
        Entry("index.json", data=index),
        Entry("blobs"),
        Entry("blobs/sha256"),
    ] + [Entry(f"blobs/sha256/{_digest(blob)[7:]}", data=blob) for blob in blobs]
    return tar_bytes(entries)


def pause_image(pause_binary: Path) -> bytes:
    """The pod sandbox image: just ``/pause``."""
    return oci_archive(
        PAUSE_IMAGE,
        [Entry("pause", data=pause_binary.read_bytes(), mode=0o755)],
        {"Entrypoint": ["/pause"], "User": "65535:65535"},
    )


def coredns_image(coredns_binary: Path) -> bytes:
    """The cluster DNS image: just ``/coredns``; its Corefile comes from a ConfigMap."""
    return oci_archive(
        DNS_IMAGE,
        [Entry("coredns", data=coredns_binary.read_bytes(), mode=0o755)],
        {"Entrypoint": ["/coredns"]},
    )


def require_busybox() -> None:
    """Fail in one line when the busybox the workload image is made from is absent."""
    if not BUSYBOX.exists():
        raise PrereqError(
            f"{BUSYBOX} is missing: the workload image is made from Debian's busybox-static "
            "(apt-get install busybox-static, or run make deps)"
        )


def _busybox_applets() -> list[str]:
    require_busybox()
    out = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True)
    return sorted(name for name in out.stdout.split() if name and name != "busybox")


def busybox_image() -> bytes:
    """A small workload image: static busybox and a link per applet under ``/bin``."""
    entries = [
        Entry("bin"),
        Entry("bin/busybox", data=BUSYBOX.read_bytes(), mode=0o755),
        Entry("tmp"),
        Entry("www"),
        Entry("www/index.html", data=b"hello from kube-up\n"),
    ]
    entries += [Entry(f"bin/{name}", link_target="busybox") for name in _busybox_applets()]
    config = {"Cmd": ["sh"], "Env": ["PATH=/bin"], "WorkingDir": "/"}
    return oci_archive(WORKLOAD_IMAGE, entries, config)
