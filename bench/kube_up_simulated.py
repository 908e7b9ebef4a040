"""kube-up and kube-down at scale, on localcloud's simulated backend.

For N = 2, 100 and 1000 nodes: ``kube-up --no-wait`` through the real provisioner and GCE
provider against a fresh simulated cloud (same simulated latencies every time), printing the
wall time, the API calls per method (target: at most 3·N + 50) and, for 1000 nodes, the ratio of
its wall time to the 2-node one (target: at most 2) and the kube-down time (target: 60 s).

    .venv/bin/python -m bench.kube_up_simulated [--sizes 2,100,1000]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.results import write_result
from cluster.config import load_config
from cluster.progress import Progress
from cluster.provisioner import Provisioner, make_provider
from cluster.state import ClusterState
from localcloud.daemon import ensure_running, stop
from tests.local_cluster import private_cluster_env

# Wide enough pod range for 1000 nodes (one /24 each), clear of the 10.240.0.0/16 subnet.
CLUSTER_IP_RANGE = "10.128.0.0/14"


def _stats(admin: str, method: str = "GET") -> dict:
    request = urllib.request.Request(f"{admin}/stats", method=method)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def run_size(nodes: int, root: Path, teardown: bool) -> dict[str, object]:
    env = {
        **private_cluster_env(root / f"nodes-{nodes}", nodes=nodes),
        "LOCALCLOUD_BACKEND": "simulated",
        "CLUSTER_IP_RANGE": CLUSTER_IP_RANGE,
    }
    os.environ.update(env)
    endpoints = ensure_running(Path(env["LOCALCLOUD_STATE_DIR"]), backend="simulated")
    try:
        config = load_config()
        progress = Progress()
        provisioner = Provisioner(
            config, make_provider(config, progress), progress, ClusterState(config.cluster_name)
        )
        _stats(endpoints.admin, "DELETE")
        started = time.monotonic()
        provisioner.up(wait=False)
        up_s = time.monotonic() - started
        calls = _stats(endpoints.admin)
        figures: dict[str, object] = {
            "nodes": nodes,
            "up_wall_s": round(up_s, 1),
            "api_calls": calls["total"],
            "api_call_budget": 3 * nodes + 50,
            "calls_per_method": calls["calls"],
            "phases": {t.name: round(t.seconds, 1) for t in progress.timings},
        }
        if teardown:
            started = time.monotonic()
            provisioner.down()
            figures["down_wall_s"] = round(time.monotonic() - started, 1)
        return figures
    finally:
        stop(Path(env["LOCALCLOUD_STATE_DIR"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2,100,1000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-kube-up-") as tmp:
        for nodes in sizes:
            figures = run_size(nodes, Path(tmp), teardown=nodes == max(sizes))
            results.append(figures)
            within = "within" if figures["api_calls"] <= figures["api_call_budget"] else "OVER"
            print(
                f"N={nodes:5d}: kube-up {figures['up_wall_s']:6.1f}s, "
                f"{figures['api_calls']} API calls ({within} 3N+50={figures['api_call_budget']})"
                + (f", kube-down {figures['down_wall_s']}s" if "down_wall_s" in figures else ""),
                flush=True,
            )
    for figures in results:
        print(f"calls per method, N={figures['nodes']}:")
        for method, count in figures["calls_per_method"].items():
            print(f"  {count:6d}  {method}")
    by_size = {f["nodes"]: f for f in results}
    summary: dict[str, object] = {"runs": results}
    if 2 in by_size and 1000 in by_size:
        ratio = by_size[1000]["up_wall_s"] / by_size[2]["up_wall_s"]
        summary["ratio_1000_to_2"] = round(ratio, 2)
        print(f"wall time 1000 nodes / 2 nodes: {ratio:.2f} (target <= 2)")
    write_result("kube_up_simulated", summary)


if __name__ == "__main__":
    main()
