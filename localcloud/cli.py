"""``localcloud serve | status | stop``: run the embedded cloud as a detached daemon."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import yaml

from localcloud import daemon
from localcloud.backends.loader import BACKENDS, BackendUnavailable
from localcloud.compute.quotas import validate_limits
from localcloud.faults import FaultSchedule
from localcloud.ratelimit import DEFAULT_BURST, DEFAULT_RATE
from localcloud.service import Options, StateDirMismatch

DEFAULT_STATE_DIR = Path.home() / ".local" / "state" / "localcloud"


def _load(path: Path, what: str) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SystemExit(f"localcloud: {what} file {path} does not exist") from None
    except yaml.YAMLError as err:
        raise SystemExit(f"localcloud: {what} file {path} is not YAML/JSON: {err}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="localcloud", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="start the daemon (detached unless --foreground)")
    status = sub.add_parser("status", help="show the running daemon's endpoints")
    stop = sub.add_parser("stop", help="stop the daemon (machines keep running)")
    for p in (serve, status, stop):
        p.add_argument(
            "--state-dir",
            type=Path,
            default=DEFAULT_STATE_DIR,
            help=f"where the daemon keeps everything (default {DEFAULT_STATE_DIR})",
        )
    serve.add_argument(
        "--port",
        type=int,
        default=0,
        help="Compute API port on 127.0.0.1 (default: last one, else any free)",
    )
    serve.add_argument("--backend", choices=BACKENDS, default="simulated")
    serve.add_argument(
        "--latency-scale",
        type=float,
        default=1.0,
        help="multiplies simulated operation durations (0: as fast as possible)",
    )
    serve.add_argument("--faults", type=Path, help="fault schedule (YAML/JSON), see README")
    serve.add_argument("--quotas", type=Path, help='quota limits (YAML/JSON), e.g. "CPUS: 24"')
    serve.add_argument(
        "--rate-limit",
        type=float,
        default=DEFAULT_RATE,
        help="requests per second per client (0: unlimited)",
    )
    serve.add_argument("--rate-burst", type=int, default=DEFAULT_BURST)
    serve.add_argument("--workers", type=int, default=8, help="operations run in parallel")
    serve.add_argument(
        "--record",
        type=Path,
        help="append every API answer to this JSON-lines file (conformance tests)",
    )
    serve.add_argument("--foreground", action="store_true", help="do not detach")
    return parser


def _options(args: argparse.Namespace) -> Options:
    if args.latency_scale < 0:
        raise SystemExit("localcloud: --latency-scale must be >= 0")
    if not 0 <= args.port <= 65535:
        raise SystemExit("localcloud: --port must be between 0 and 65535")
    faults = _load(args.faults, "faults") if args.faults else None
    quotas = _load(args.quotas, "quotas") if args.quotas else None
    try:
        FaultSchedule(faults)
        quotas = validate_limits(quotas) if quotas is not None else None
    except ValueError as err:
        raise SystemExit(f"localcloud: {err}") from None
    return Options(
        state_dir=args.state_dir.resolve(),
        backend=args.backend,
        port=args.port,
        latency_scale=args.latency_scale,
        faults=faults,
        quotas=quotas,
        rate=args.rate_limit,
        burst=args.rate_burst,
        workers=args.workers,
        record=args.record.resolve() if args.record else None,
    )


def _serve(args: argparse.Namespace) -> int:
    options = _options(args)
    if args.foreground:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        daemon.run_foreground(options)
        return 0
    found = daemon.running(options.state_dir)
    if found is not None:
        print(
            f"localcloud: already serving {options.state_dir} (pid {found.pid}); "
            f"`localcloud stop --state-dir {options.state_dir}` first",
            file=sys.stderr,
        )
        return 1
    faults = args.faults.resolve() if args.faults else None
    quotas = args.quotas.resolve() if args.quotas else None
    ep = daemon.spawn(options.state_dir, daemon.serve_args(options, faults, quotas))
    _print(ep)
    return 0


def _print(ep: daemon.Endpoints) -> None:
    print(
        json.dumps(
            {
                "pid": ep.pid,
                "backend": ep.backend,
                "compute": ep.compute,
                "storage": ep.storage,
                "metadata": ep.metadata,
            },
            indent=2,
        )
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "status":
            ep = daemon.running(args.state_dir)
            if ep is None:
                print(f"localcloud: not running for {args.state_dir}", file=sys.stderr)
                return 3
            _print(ep)
            return 0
        stopped = daemon.stop(args.state_dir)
        print("localcloud: stopped" if stopped else "localcloud: was not running")
        return 0
    except (daemon.DaemonError, BackendUnavailable, StateDirMismatch, OSError) as err:
        print(f"localcloud: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
