"""Build the Kubernetes server binaries and etcd with Go, from the Go module proxy.

``k8s.io/kubernetes`` is built the ordinary Go way: a small build module that requires it at the
pinned version and replaces each of its staging modules (``k8s.io/api`` ...) with the published
module of the matching ``v0.x`` version, since the upstream ``go.mod`` points them at local
directories. etcd gets its own build module so its dependency versions are not bent by
Kubernetes'. Go's own build cache makes a rebuild after a cache miss take seconds, not minutes.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from cluster.errors import PrereqError
from cluster.release.versions import KubeVersion

KUBE_COMMANDS = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kubectl",
)
COREDNS = "github.com/coredns/coredns"
ETCD_PACKAGES = {"etcd": "go.etcd.io/etcd/server/v3", "etcdctl": "go.etcd.io/etcd/etcdctl/v3"}

_STAGING_REPLACE = re.compile(r"^\s*(k8s\.io/[\w.-]+)\s*=>\s*\./staging/", re.MULTILINE)
_ETCD_REQUIRE = re.compile(r"^\s*go\.etcd\.io/etcd/server/v3\s+(v3\.\d+\.\d+)", re.MULTILINE)


class BuildFailed(PrereqError):
    """Building part of the release failed; the message carries the tool's last output line."""


Reporter = Callable[[str], None]


def go_binary() -> str:
    """The ``go`` tool, or a one-line error naming how to get one."""
    found = shutil.which("go")
    if not found:
        raise PrereqError(
            "Go is not installed: building Kubernetes needs the go tool "
            "(install Go 1.24+ from https://go.dev/dl, or pass --server-tarball PATH)"
        )
    return found


def _run_go(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod -buildvcs=false"}
    return subprocess.run(
        [go_binary(), *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def _go(args: list[str], cwd: Path, what: str) -> str:
    """Run a go command; on failure raise one line: what failed and Go's last word on it."""
    proc = _run_go(args, cwd)
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        last = lines[-1] if lines else f"exit status {proc.returncode}"
        raise BuildFailed(f"{what} failed: {last}")
    return proc.stdout


def upstream_go_mod(version: KubeVersion, workdir: Path) -> str:
    """The go.mod of ``k8s.io/kubernetes`` at ``version``, downloaded through the module proxy."""
    proc = _run_go(["mod", "download", "-json", f"k8s.io/kubernetes@{version.text}"], workdir)
    try:
        info = json.loads(proc.stdout)
    except json.JSONDecodeError:
        info = {"Error": (proc.stderr.strip().splitlines() or ["no answer"])[-1]}
    if info.get("Error") or proc.returncode != 0:
        reason = str(info.get("Error", "")).splitlines()[-1:] or [f"exit {proc.returncode}"]
        raise BuildFailed(
            f"KUBE_VERSION={version.text} is not served by the Go module proxy ({reason[0]}); "
            "list the choices with: go list -m -versions k8s.io/kubernetes"
        )
    return Path(info["GoMod"]).read_text()


def kubernetes_build_module(version: KubeVersion, upstream_mod: str) -> str:
    """go.mod text of a module whose only job is to build the Kubernetes commands."""
    staging = sorted(set(_STAGING_REPLACE.findall(upstream_mod)))
    if not staging:
        raise BuildFailed(f"k8s.io/kubernetes@{version.text} has no staging modules in its go.mod")
    replaces = "\n".join(f"\t{mod} => {mod} {version.staging_version}" for mod in staging)
    return (
        "module kubeup.local/kubernetes-build\n\ngo 1.24.0\n\n"
        f"require k8s.io/kubernetes {version.text}\n\nreplace (\n{replaces}\n)\n"
    )


def etcd_version_of(upstream_mod: str) -> str:
    """The etcd server version this Kubernetes release is tested with (from its go.mod)."""
    match = _ETCD_REQUIRE.search(upstream_mod)
    if not match:
        raise BuildFailed("cannot tell which etcd this Kubernetes version uses (no etcd in go.mod)")
    return match[1]


def _tools_file(packages: list[str]) -> str:
    imports = "\n".join(f'\t_ "{pkg}"' for pkg in packages)
    return f"//go:build tools\n\npackage build\n\nimport (\n{imports}\n)\n"


def _ldflags(version: KubeVersion) -> str:
    stamp = {
        "k8s.io/component-base/version.gitVersion": version.text,
        "k8s.io/component-base/version.gitMajor": "1",
        "k8s.io/component-base/version.gitMinor": str(version.minor),
        "k8s.io/component-base/version.gitTreeState": "clean",
        "k8s.io/client-go/pkg/version.gitVersion": version.text,
        "k8s.io/client-go/pkg/version.gitMajor": "1",
        "k8s.io/client-go/pkg/version.gitMinor": str(version.minor),
    }
    return " ".join(["-s", "-w", "-buildid="] + [f"-X {k}={v}" for k, v in stamp.items()])


def _prepare_module(moddir: Path, go_mod: str, packages: list[str], report: Reporter) -> None:
    moddir.mkdir(parents=True, exist_ok=True)
    if not (moddir / "go.mod").exists() or not (moddir / "go.sum").exists():
        (moddir / "go.mod").write_text(go_mod)
        (moddir / "tools.go").write_text(_tools_file(packages))
        report(f"resolving modules in {moddir.name}")
        _go(["mod", "tidy"], moddir, f"resolving the modules of {moddir.name}")


def build_kubernetes(version: KubeVersion, workdir: Path, report: Reporter) -> tuple[Path, str]:
    """Build the six Kubernetes commands into ``workdir/bin``; return it and the etcd version
    this release is tested with."""
    workdir.mkdir(parents=True, exist_ok=True)
    report(f"fetching k8s.io/kubernetes@{version.text} from the Go module proxy")
    upstream = upstream_go_mod(version, workdir)
    bin_dir = workdir / "bin"
    shutil.rmtree(bin_dir, ignore_errors=True)
    bin_dir.mkdir()
    kube_dir = workdir / "kubernetes-module"
    kube_pkgs = [f"k8s.io/kubernetes/cmd/{cmd}" for cmd in KUBE_COMMANDS]
    _prepare_module(kube_dir, kubernetes_build_module(version, upstream), kube_pkgs, report)
    report(f"compiling {', '.join(KUBE_COMMANDS)} (the first build takes a while)")
    _go(
        ["build", "-trimpath", "-ldflags", _ldflags(version), "-o", str(bin_dir), *kube_pkgs],
        kube_dir,
        "go build of the Kubernetes commands",
    )
    return bin_dir, etcd_version_of(upstream)


def build_etcd(etcd_version: str, workdir: Path, bin_dir: Path, report: Reporter) -> None:
    """Build etcd and etcdctl at ``etcd_version`` into ``bin_dir``."""
    etcd_dir = workdir / f"etcd-module-{etcd_version}"
    etcd_mod = (
        "module kubeup.local/etcd-build\n\ngo 1.24.0\n\nrequire (\n"
        + "".join(f"\t{pkg} {etcd_version}\n" for pkg in ETCD_PACKAGES.values())
        + ")\n"
    )
    _prepare_module(etcd_dir, etcd_mod, list(ETCD_PACKAGES.values()), report)
    report(f"compiling etcd and etcdctl {etcd_version}")
    for name, pkg in ETCD_PACKAGES.items():
        _go(
            ["build", "-trimpath", "-ldflags", "-s -w -buildid=", "-o", str(bin_dir / name), pkg],
            etcd_dir,
            f"go build of {name}",
        )


def build_coredns(version: str, workdir: Path, dest: Path, report: Reporter) -> None:
    """Build CoreDNS ``version`` (the cluster DNS server) as a static binary at ``dest``."""
    moddir = workdir / f"coredns-module-{version}"
    go_mod = f"module kubeup.local/coredns-build\n\ngo 1.24.0\n\nrequire {COREDNS} {version}\n"
    _prepare_module(moddir, go_mod, [COREDNS], report)
    report(f"compiling coredns {version}")
    _go(
        ["build", "-trimpath", "-ldflags", "-s -w -buildid=", "-o", str(dest), COREDNS],
        moddir,
        "go build of coredns",
    )


def etcd_version_for(version: KubeVersion, workdir: Path) -> str:
    """The etcd version of a Kubernetes release, read from its go.mod."""
    workdir.mkdir(parents=True, exist_ok=True)
    return etcd_version_of(upstream_go_mod(version, workdir))


def peak_child_rss_mb() -> float:
    """Peak resident memory of the largest finished child process (the Go compiler or linker)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def build_pause(source_dir: Path, dest: Path) -> None:
    """Build our pause command (scripts/images/pause) as a static binary."""
    _go(
        ["build", "-trimpath", "-ldflags", "-s -w -buildid=", "-o", str(dest), "."],
        source_dir,
        "go build of the pause command",
    )
