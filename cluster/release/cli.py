"""``kube-release``: produce the release kube-up stages, into ``_output/release/``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from cluster.errors import KubeUpError
from cluster.release.builder import ReleaseBuilder, default_output_dir
from cluster.release.versions import requested_kube_version


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kube-release",
        description="Build or fetch the Kubernetes server tarball, pack the salt tarball, the "
        "salt runtime and the node images into _output/release/.",
    )
    parser.add_argument(
        "--kube-version", help="Kubernetes version (default: $KUBE_VERSION or pinned)"
    )
    parser.add_argument("--server-tarball", type=Path, help="use this server tarball as is")
    parser.add_argument(
        "--download",
        action="store_true",
        default=os.environ.get("KUBE_RELEASE_DOWNLOAD") == "1",
        help="on a cache miss, download the official tarball instead of building with Go",
    )
    parser.add_argument("--output", type=Path, default=default_output_dir(), help="output dir")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    started = time.monotonic()

    def report(phase: str) -> None:
        print(f"[{time.monotonic() - started:7.1f}s] {phase}", flush=True)

    try:
        version = requested_kube_version(args.kube_version)
        manifest = ReleaseBuilder(args.output, report).build(
            version, server_tarball=args.server_tarball, download=args.download
        )
    except KubeUpError as err:
        print(f"kube-release: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("kube-release: interrupted; nothing half-written was left in place", file=sys.stderr)
        return 130
    report(f"release {manifest.kube_version} ready in {args.output}")
    for artifact in manifest.artifacts.values():
        print(f"  {artifact.sha256[:12]}  {artifact.file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
