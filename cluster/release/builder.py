"""Assemble ``_output/release/``: the artifacts kube-up stages and their manifest.

Where the server binaries come from, in order: a tarball the user names; the cache; the official
download (only when asked); a Go build from the module proxy. Every output is written to a temp
file and renamed, so an interrupted run leaves no half-written artifact behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cluster.release import gobuild, images
from cluster.release.cache import ReleaseCache, cache_root
from cluster.release.download import download_kube_binaries
from cluster.release.salt_runtime import RUNTIME_NAME, SALT_REQUIREMENT, build_salt_runtime
from cluster.release.server_tarball import SERVER_TARBALL, check_layout, write_server_tarball
from cluster.release.tarball import (
    Entry,
    atomic_output,
    entries_from_tree,
    sha256_file,
    write_tar_gz,
)
from cluster.release.versions import (
    COREDNS_VERSION,
    DNS_IMAGE,
    PAUSE_IMAGE,
    WORKLOAD_IMAGE,
    KubeVersion,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SALT_TARBALL = "kubernetes-salt.tar.gz"
IMAGES_TARBALL = "kubernetes-node-images.tar.gz"
MANIFEST = "release.json"
PAUSE_SOURCE = REPO_ROOT / "scripts" / "images" / "pause"

Reporter = Callable[[str], None]


@dataclass(frozen=True)
class Artifact:
    file: str
    sha256: str


@dataclass
class ReleaseManifest:
    """What ``release.json`` records: versions and every artifact's sha256."""

    kube_version: str
    server_source: str
    artifacts: dict[str, Artifact] = field(default_factory=dict)
    pause_image: str = PAUSE_IMAGE
    workload_image: str = WORKLOAD_IMAGE
    dns_image: str = DNS_IMAGE
    build_peak_rss_mb: float | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def load(cls, path: Path) -> ReleaseManifest:
        data = json.loads(path.read_text())
        data["artifacts"] = {k: Artifact(**v) for k, v in data["artifacts"].items()}
        return cls(**data)


def default_output_dir() -> Path:
    return REPO_ROOT / "_output" / "release"


def _place(source: Path, dest: Path) -> None:
    """Put a cached file into the output dir: a hard link when possible, else a copy."""
    with atomic_output(dest) as tmp:
        tmp.unlink()
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)


def write_salt_tarball(dest: Path, repo: Path = REPO_ROOT) -> str:
    """The salt state tree and the node scripts, deterministic; return its sha256."""
    entries = [Entry("kubernetes"), Entry("kubernetes/saltbase")]
    entries += entries_from_tree(repo / "salt", "kubernetes/saltbase/salt")
    entries += entries_from_tree(repo / "scripts" / "node", "kubernetes/saltbase/scripts")
    return write_tar_gz(entries, dest)


def node_images_cache_key() -> str:
    """The images tarball's cache key: a hash of everything its bytes are made from."""
    images.require_busybox()
    inputs = hashlib.sha256()
    for path in [*sorted(PAUSE_SOURCE.glob("*")), images.BUSYBOX, Path(images.__file__)]:
        inputs.update(path.read_bytes())
    inputs.update(COREDNS_VERSION.encode())
    return f"images/{inputs.hexdigest()[:16]}"


class ReleaseBuilder:
    """Produces the release into ``out_dir``, reusing the cache wherever the inputs match."""

    def __init__(self, out_dir: Path, report: Reporter, cache: ReleaseCache | None = None) -> None:
        self.out_dir = out_dir
        self.report = report
        self.cache = cache or ReleaseCache()
        self.workdir = cache_root() / "build"

    def build(
        self, version: KubeVersion, server_tarball: Path | None = None, download: bool = False
    ) -> ReleaseManifest:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if server_tarball is not None:
            manifest = self._user_server(server_tarball)
        else:
            manifest = self._cached_or_built_server(version, download)
        self.report("packing the salt tree and node scripts")
        digest = write_salt_tarball(self.out_dir / SALT_TARBALL)
        manifest.artifacts["salt"] = Artifact(SALT_TARBALL, digest)
        manifest.artifacts["salt_runtime"] = self._salt_runtime()
        manifest.artifacts["node_images"] = self._node_images()
        with atomic_output(self.out_dir / MANIFEST) as tmp:
            tmp.write_text(manifest.to_json())
        return manifest

    def _user_server(self, path: Path) -> ReleaseManifest:
        self.report(f"checking the layout of {path}")
        version = check_layout(path)
        _place(path, self.out_dir / SERVER_TARBALL)
        server = Artifact(SERVER_TARBALL, sha256_file(self.out_dir / SERVER_TARBALL))
        return ReleaseManifest(version, f"file:{path}", {"server": server})

    def _cached_or_built_server(self, version: KubeVersion, download: bool) -> ReleaseManifest:
        key = f"server/{version.text}"
        hit = self.cache.lookup(key, SERVER_TARBALL)
        source = "cache"
        peak = None
        if hit is None:
            with tempfile.TemporaryDirectory(prefix="server-", dir=self._mkworkdir()) as tmp:
                staged = Path(tmp) / SERVER_TARBALL
                source, peak = self._produce_server(version, download, staged)
                hit = self.cache.store(key, SERVER_TARBALL, staged)
        else:
            self.report(f"server binaries {version.text} found in the cache")
        _place(hit[0], self.out_dir / SERVER_TARBALL)
        manifest = ReleaseManifest(
            version.text, source, {"server": Artifact(SERVER_TARBALL, hit[1])}
        )
        manifest.build_peak_rss_mb = peak
        return manifest

    def _produce_server(
        self, version: KubeVersion, download: bool, dest: Path
    ) -> tuple[str, float | None]:
        workdir = self.workdir / version.text
        if download:
            self.report(f"downloading the official {version.text} server tarball")
            bin_dir = download_kube_binaries(version.text, workdir)
            etcd_version = gobuild.etcd_version_for(version, workdir)
            source = "download"
        else:
            bin_dir, etcd_version = gobuild.build_kubernetes(version, workdir, self.report)
            source = "go-build"
        gobuild.build_etcd(etcd_version, workdir, bin_dir, self.report)
        self.report("packing the server tarball")
        write_server_tarball(bin_dir, version.text, dest)
        shutil.rmtree(bin_dir, ignore_errors=True)
        return source, gobuild.peak_child_rss_mb()

    def _mkworkdir(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        return self.workdir

    def _salt_runtime(self) -> Artifact:
        key = f"salt-runtime/{SALT_REQUIREMENT}"
        hit = self.cache.lookup(key, RUNTIME_NAME)
        if hit is None:
            self.report(f"installing {SALT_REQUIREMENT} for the VMs (once per machine)")
            with tempfile.TemporaryDirectory(prefix="runtime-", dir=self._mkworkdir()) as tmp:
                staged = Path(tmp) / RUNTIME_NAME
                build_salt_runtime(staged)
                hit = self.cache.store(key, RUNTIME_NAME, staged)
        _place(hit[0], self.out_dir / RUNTIME_NAME)
        return Artifact(RUNTIME_NAME, hit[1])

    def _node_images(self) -> Artifact:
        key = node_images_cache_key()
        hit = self.cache.lookup(key, IMAGES_TARBALL)
        if hit is None:
            self.report("building the pause, busybox and coredns images")
            with tempfile.TemporaryDirectory(prefix="images-", dir=self._mkworkdir()) as tmp:
                pause_bin = Path(tmp) / "pause"
                gobuild.build_pause(PAUSE_SOURCE, pause_bin)
                coredns_bin = Path(tmp) / "coredns"
                gobuild.build_coredns(COREDNS_VERSION, self.workdir, coredns_bin, self.report)
                staged = Path(tmp) / IMAGES_TARBALL
                write_tar_gz(
                    [
                        Entry("images"),
                        Entry("images/pause.oci.tar", data=images.pause_image(pause_bin)),
                        Entry("images/busybox.oci.tar", data=images.busybox_image()),
                        Entry("images/coredns.oci.tar", data=images.coredns_image(coredns_bin)),
                    ],
                    staged,
                )
                hit = self.cache.store(key, IMAGES_TARBALL, staged)
        _place(hit[0], self.out_dir / IMAGES_TARBALL)
        return Artifact(IMAGES_TARBALL, hit[1])
