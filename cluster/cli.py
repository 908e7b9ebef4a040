"""The console scripts: kube-up, kube-down, kube-push, validate-cluster.

Configuration is loaded and validated before anything touches a cloud. An expected failure
(:class:`KubeUpError`) ends as one red line and its exit code (see :mod:`cluster.errors`); any
other exception is a bug and shows its traceback only with ``-v``.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from cluster.config import load_config
from cluster.errors import KubeUpError
from cluster.progress import Progress
from cluster.provisioner import Provisioner, make_provider
from cluster.state import ClusterState

Action = Callable[[Provisioner, argparse.Namespace], None]


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", type=Path, help="YAML file of settings (after env vars)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show detail lines")
    return parser


def _run(parser: argparse.ArgumentParser, action: Action, argv: list[str] | None) -> int:
    args = parser.parse_args(argv)
    progress = Progress(verbose=args.verbose)
    try:
        config = load_config(config_file=args.config)
        provisioner = Provisioner(
            config, make_provider(config, progress), progress, ClusterState(config.cluster_name)
        )
        action(provisioner, args)
    except KubeUpError as err:
        progress.error(f"{parser.prog}: {err}")
        return err.exit_code
    except KeyboardInterrupt:
        progress.error(f"{parser.prog}: interrupted; run it again to finish")
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug: say so in one line unless -v
        if args.verbose:
            traceback.print_exc()
        progress.error(
            f"{parser.prog}: unexpected error ({type(exc).__name__}: {exc}); -v for details"
        )
        return 1
    return 0


def _release_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--release-dir", type=Path, help="release to stage (default: _output/release)"
    )


def kube_up(argv: list[str] | None = None) -> int:
    parser = _parser("kube-up", "Bring up a Kubernetes cluster (or finish one that failed).")
    parser.add_argument(
        "--no-wait", action="store_true", help="stop once the cloud resources exist"
    )
    _release_dir_option(parser)
    return _run(parser, lambda p, a: p.up(wait=not a.no_wait, release_dir=a.release_dir), argv)


def kube_down(argv: list[str] | None = None) -> int:
    parser = _parser("kube-down", "Delete everything that carries this cluster's label.")
    parser.add_argument("--dry-run", action="store_true", help="list what would be deleted")
    return _run(parser, lambda p, a: p.down(dry_run=a.dry_run), argv)


def kube_push(argv: list[str] | None = None) -> int:
    parser = _parser("kube-push", "Stage the current release and re-apply the salt states.")
    _release_dir_option(parser)
    return _run(parser, lambda p, a: p.push(release_dir=a.release_dir), argv)


def validate_cluster(argv: list[str] | None = None) -> int:
    parser = _parser(
        "validate-cluster", "Check that every node is Ready and the control plane healthy."
    )
    return _run(parser, lambda p, a: p.validate(), argv)


if __name__ == "__main__":
    sys.exit(kube_up())
