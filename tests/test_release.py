"""The release: real binaries, upstream layout, deterministic salt tarball, cache behaviour, errors.

The server binaries are the ones ``make release`` built (``make test`` runs it first); the fixture
builds them itself when run alone, which on a cold machine takes a long while.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest

from cluster.errors import ConfigError, KubeUpError
from cluster.release import gobuild
from cluster.release.builder import (
    IMAGES_TARBALL,
    MANIFEST,
    ReleaseBuilder,
    ReleaseManifest,
    default_output_dir,
    node_images_cache_key,
    write_salt_tarball,
)
from cluster.release.cache import ReleaseCache
from cluster.release.download import download_kube_binaries
from cluster.release.salt_runtime import RUNTIME_NAME, SALT_REQUIREMENT
from cluster.release.server_tarball import REQUIRED_BINARIES, SERVER_TARBALL, check_layout
from cluster.release.tarball import sha256_file
from cluster.release.versions import COREDNS_VERSION, DEFAULT_KUBE_VERSION, parse_kube_version

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def release() -> tuple[Path, ReleaseManifest]:
    out = default_output_dir()
    if not (out / MANIFEST).exists():
        ReleaseBuilder(out, report=lambda _: None).build(parse_kube_version(DEFAULT_KUBE_VERSION))
    return out, ReleaseManifest.load(out / MANIFEST)


@pytest.fixture(scope="session")
def server_bin(release, tmp_path_factory) -> Path:
    out, _ = release
    dest = tmp_path_factory.mktemp("server")
    with tarfile.open(out / SERVER_TARBALL) as tar:
        tar.extractall(dest, filter="data")
    return dest / "kubernetes" / "server" / "bin"


def _run(*cmd: str | Path) -> str:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "command",
    ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy"],
)
def test_server_binaries_print_the_pinned_version(server_bin, release, command):
    _, manifest = release
    assert f"Kubernetes {manifest.kube_version}" in _run(server_bin / command, "--version")


def test_kubectl_and_etcd_run(server_bin, release):
    _, manifest = release
    client = json.loads(_run(server_bin / "kubectl", "version", "--client", "-o", "json"))
    assert client["clientVersion"]["gitVersion"] == manifest.kube_version
    assert "etcd Version: 3." in _run(server_bin / "etcd", "--version")
    assert "etcdctl version: 3." in _run(server_bin / "etcdctl", "version")


def test_server_tarball_has_the_upstream_layout(release):
    out, manifest = release
    assert check_layout(out / SERVER_TARBALL) == manifest.kube_version
    with tarfile.open(out / SERVER_TARBALL) as tar:
        names = set(tar.getnames())
    assert {f"kubernetes/server/bin/{b}" for b in REQUIRED_BINARIES} <= names
    assert manifest.artifacts["server"].sha256 == sha256_file(out / SERVER_TARBALL)


def test_salt_tarball_is_byte_identical_across_builds(tmp_path):
    first = write_salt_tarball(tmp_path / "a.tar.gz")
    # A later checkout has other mtimes: they must not reach the bytes.
    touched = next((REPO / "scripts").rglob("*.go"))
    os.utime(touched, (1_000_000_000, 1_000_000_000))
    second = write_salt_tarball(tmp_path / "b.tar.gz")
    assert first == second
    assert (tmp_path / "a.tar.gz").read_bytes() == (tmp_path / "b.tar.gz").read_bytes()
    with tarfile.open(tmp_path / "a.tar.gz") as tar:
        members = tar.getmembers()
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 for m in members)
    assert [m.name for m in members] == sorted(m.name for m in members)


def test_node_images_are_oci_layouts_naming_their_refs(release):
    out, manifest = release
    with tarfile.open(out / IMAGES_TARBALL) as outer:
        for member, ref in [
            ("images/pause.oci.tar", manifest.pause_image),
            ("images/busybox.oci.tar", manifest.workload_image),
            ("images/coredns.oci.tar", manifest.dns_image),
        ]:
            handle = outer.extractfile(member)
            assert handle is not None
            with tarfile.open(fileobj=io.BytesIO(handle.read())) as image:
                index = json.load(image.extractfile("index.json"))
                annotations = index["manifests"][0]["annotations"]
                assert annotations["io.containerd.image.name"] == ref
                digest = index["manifests"][0]["digest"].removeprefix("sha256:")
                assert f"blobs/sha256/{digest}" in image.getnames()


def test_the_dns_image_runs_the_pinned_coredns(release, tmp_path):
    out, manifest = release
    with tarfile.open(out / IMAGES_TARBALL) as outer:
        handle = outer.extractfile("images/coredns.oci.tar")
        assert handle is not None
        archive = handle.read()
    with tarfile.open(fileobj=io.BytesIO(archive)) as image:
        index = json.load(image.extractfile("index.json"))
        manifest_blob = index["manifests"][0]["digest"].removeprefix("sha256:")
        oci_manifest = json.load(image.extractfile(f"blobs/sha256/{manifest_blob}"))
        layer = oci_manifest["layers"][0]["digest"].removeprefix("sha256:")
        layer_file = image.extractfile(f"blobs/sha256/{layer}")
        with tarfile.open(fileobj=layer_file, mode="r:gz") as rootfs:
            rootfs.extractall(tmp_path, filter="data")
    assert f"CoreDNS-{COREDNS_VERSION.removeprefix('v')}" in _run(tmp_path / "coredns", "-version")
    assert manifest.dns_image.endswith(f":{COREDNS_VERSION}")


def _copy_cache(release, tmp_path: Path) -> ReleaseCache:
    """A private cache holding the real, already built artifacts."""
    out, manifest = release
    cache = ReleaseCache(tmp_path / "cache")
    cache.store(f"server/{manifest.kube_version}", SERVER_TARBALL, out / SERVER_TARBALL)
    cache.store(f"salt-runtime/{SALT_REQUIREMENT}", RUNTIME_NAME, out / RUNTIME_NAME)
    cache.store(node_images_cache_key(), IMAGES_TARBALL, out / IMAGES_TARBALL)
    return cache


def test_a_cache_hit_does_no_build(release, tmp_path, monkeypatch):
    _, manifest = release
    cache = _copy_cache(release, tmp_path)

    def no_build(*_args, **_kwargs):
        raise AssertionError("a cache hit must not build")

    for builder in ("build_kubernetes", "build_etcd", "build_coredns", "build_pause"):
        monkeypatch.setattr(gobuild, builder, no_build)
    phases: list[str] = []
    version = parse_kube_version(manifest.kube_version)
    result = ReleaseBuilder(tmp_path / "out", phases.append, cache).build(version)
    assert result.server_source == "cache"
    assert result.artifacts == manifest.artifacts
    assert not any("compiling" in p or "building" in p for p in phases)
    # Placing the same cached files again leaves no temporary name behind.
    ReleaseBuilder(tmp_path / "out", phases.append, cache).build(version)
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")) == []


def test_a_corrupt_cached_artifact_is_detected_and_rebuilt(release, tmp_path, monkeypatch):
    monkeypatch.setenv("KUBE_UP_CACHE_DIR", str(tmp_path / "cache"))
    cache = _copy_cache(release, tmp_path)
    version = parse_kube_version(release[1].kube_version)
    first = ReleaseBuilder(tmp_path / "out1", lambda _: None, cache).build(version)
    images = first.artifacts["node_images"]
    cached = next(cache.root.glob(f"images/*/{IMAGES_TARBALL}"))
    data = bytearray(cached.read_bytes())
    data[len(data) // 2] ^= 0xFF
    cached.write_bytes(bytes(data))

    phases: list[str] = []
    second = ReleaseBuilder(tmp_path / "out2", phases.append, cache).build(version)
    assert any("building the pause, busybox and coredns images" in p for p in phases)
    assert second.artifacts["node_images"].sha256 == images.sha256
    assert sha256_file(cached) == images.sha256


def _tarball(path: Path, members: dict[str, bytes], mode: int = 0o755) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        ({"kubernetes/version": b"v1.34.4\n"}, "missing executable"),
        (
            {f"kubernetes/server/bin/{b}": b"x" for b in REQUIRED_BINARIES},
            "missing kubernetes/version",
        ),
        ({"../evil": b"x"}, "outside the extraction dir"),
    ],
)
def test_a_bad_server_tarball_is_refused_in_one_line(tmp_path, members, expected):
    bad = _tarball(tmp_path / "bad.tar.gz", members)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "cluster.release.cli", "--server-tarball", str(bad),
         "--output", str(out)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == ConfigError.exit_code
    assert expected in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr
    assert not out.exists() or not list(out.iterdir())


def test_a_file_that_is_not_a_tarball_is_refused(tmp_path):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tarball at all")
    with pytest.raises(ConfigError, match="not a readable tar.gz"):
        check_layout(junk)


@pytest.mark.parametrize("text", ["1.34.4", "v1.34", "v2.0.0", "v1.34.4-rc.1", "latest", ""])
def test_malformed_versions_are_refused(text):
    with pytest.raises(ConfigError, match="KUBE_VERSION"):
        parse_kube_version(text)


def test_a_version_the_module_proxy_lacks_is_named(tmp_path, monkeypatch):
    # A real go tool against a (local, empty) module proxy that does not serve the version.
    proxy = tmp_path / "proxy"
    proxy.mkdir()
    monkeypatch.setenv("GOPROXY", proxy.as_uri())
    monkeypatch.setenv("GOFLAGS", "-mod=mod")
    monkeypatch.setenv("GONOSUMDB", "*")
    monkeypatch.setenv("GOMODCACHE", str(tmp_path / "modcache"))
    with pytest.raises(KubeUpError, match=r"v1\.99\.0 .*go list -m -versions"):
        gobuild.upstream_go_mod(parse_kube_version("v1.99.0"), tmp_path)


def test_missing_go_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(KubeUpError, match="Go is not installed"):
        gobuild.go_binary()


def test_a_failed_build_is_one_line_and_leaves_no_output(tmp_path):
    source = tmp_path / "broken"
    source.mkdir()
    (source / "go.mod").write_text("module example.local/broken\n\ngo 1.22\n")
    (source / "main.go").write_text("package main\n\nfunc main() { undefinedCall() }\n")
    dest = tmp_path / "pause"
    with pytest.raises(gobuild.BuildFailed) as err:
        gobuild.build_pause(source, dest)
    assert "undefined: undefinedCall" in str(err.value)
    assert "\n" not in str(err.value)
    assert not dest.exists()


@pytest.fixture
def release_site(tmp_path):
    """A local stand-in of the release download site, serving ``<version>/<file>``."""

    root = tmp_path / "site"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _official_like_tarball(path: Path, version: str) -> bytes:
    """An official-shaped server tarball (no etcd), its binaries tiny scripts."""
    members = {
        f"kubernetes/server/bin/{c}": b"#!/bin/sh\necho fake\n" for c in gobuild.KUBE_COMMANDS
    }
    members["kubernetes/version"] = f"{version}\n".encode()
    _tarball(path, members)
    return path.read_bytes()


def test_a_download_that_does_not_match_its_sha512_is_refused(release_site, tmp_path, monkeypatch):
    site, url = release_site
    (site / "v1.34.4").mkdir()
    tarball = site / "v1.34.4" / SERVER_TARBALL
    data = _official_like_tarball(tarball, "v1.34.4")
    (site / "v1.34.4" / f"{SERVER_TARBALL}.sha512").write_text(
        hashlib.sha512(data + b"tampered").hexdigest()
    )
    monkeypatch.setenv("KUBE_RELEASE_BASE_URL", url)
    with pytest.raises(KubeUpError, match="does not match its published sha512"):
        download_kube_binaries("v1.34.4", tmp_path / "work")
    assert not (tmp_path / "work" / SERVER_TARBALL).exists()


def test_a_verified_download_yields_its_binaries(release_site, tmp_path, monkeypatch):
    site, url = release_site
    (site / "v1.34.4").mkdir()
    data = _official_like_tarball(site / "v1.34.4" / SERVER_TARBALL, "v1.34.4")
    (site / "v1.34.4" / f"{SERVER_TARBALL}.sha512").write_text(hashlib.sha512(data).hexdigest())
    monkeypatch.setenv("KUBE_RELEASE_BASE_URL", url)
    bin_dir = download_kube_binaries("v1.34.4", tmp_path / "work")
    assert sorted(p.name for p in bin_dir.iterdir()) == sorted(gobuild.KUBE_COMMANDS)
    assert all(os.access(p, os.X_OK) for p in bin_dir.iterdir())
    assert not (tmp_path / "work" / SERVER_TARBALL).exists()


def test_an_unreachable_site_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBE_RELEASE_BASE_URL", "http://127.0.0.1:9")
    with pytest.raises(KubeUpError, match="leave --download out") as err:
        download_kube_binaries("v1.34.4", tmp_path / "work")
    assert "\n" not in str(err.value)
