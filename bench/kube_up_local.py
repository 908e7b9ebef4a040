"""Time to a working cluster on the local default: 1 master + 2 nodes, release cached.

Each run brings a cluster up with the real provisioner, reads when the apiserver first answered
(target: within 45 s of kube-up starting) and when every node was Ready (target: within 90 s),
and tears it down again. Prints the median of the runs and a per-phase breakdown.

    .venv/bin/python -m bench.kube_up_local [--runs 3]

Needs root and no local cluster up (it uses its own state dirs, but the bridge is shared).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.results import write_result
from cluster.config import load_config
from cluster.progress import Progress
from cluster.provisioner import Provisioner, make_provider
from cluster.state import ClusterState
from tests.local_cluster import private_cluster_env

APISERVER_STEP = "Waiting for the apiserver"
VALIDATE_PREFIX = "Validating"


def one_run(root: Path) -> dict[str, object]:
    os.environ.update(private_cluster_env(root, nodes=2))
    config = load_config()
    progress = Progress()
    provisioner = Provisioner(
        config, make_provider(config, progress), progress, ClusterState(config.cluster_name)
    )
    try:
        provisioner.up()
    finally:
        down_started = time.monotonic()
        provisioner.down()
        down_s = time.monotonic() - down_started
    elapsed, apiserver_s, ready_s = 0.0, None, None
    phases = {}
    for timing in progress.timings:
        if timing.depth:
            continue
        elapsed += timing.seconds
        phases[timing.name] = round(timing.seconds, 1)
        if timing.name == APISERVER_STEP:
            apiserver_s = elapsed
        if timing.name.startswith(VALIDATE_PREFIX):
            ready_s = elapsed
    return {"apiserver_s": apiserver_s, "ready_s": ready_s, "down_s": down_s, "phases": phases}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = []
    for index in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="bench-local-") as tmp:
            run = one_run(Path(tmp))
        runs.append(run)
        print(
            f"run {index + 1}: apiserver answering at {run['apiserver_s']:.1f}s, "
            f"nodes Ready at {run['ready_s']:.1f}s, kube-down {run['down_s']:.1f}s",
            flush=True,
        )
    summary = {
        "apiserver_s_median": round(statistics.median(r["apiserver_s"] for r in runs), 1),
        "ready_s_median": round(statistics.median(r["ready_s"] for r in runs), 1),
        "down_s_median": round(statistics.median(r["down_s"] for r in runs), 1),
        "phase_medians": {
            name: round(statistics.median(r["phases"][name] for r in runs), 1)
            for name in runs[0]["phases"]
        },
        "runs": runs,
    }
    print(
        f"median: apiserver {summary['apiserver_s_median']}s (target 45), "
        f"nodes Ready {summary['ready_s_median']}s (target 90)"
    )
    for name, seconds in summary["phase_medians"].items():
        print(f"  {seconds:6.1f}s  {name}")
    write_result("kube_up_local", summary)


if __name__ == "__main__":
    main()
