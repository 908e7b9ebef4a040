"""How long ``kube-release`` takes, cold and warm, and how much memory the build needs.

Warm: the release cache is filled (``make release`` ran); three runs, median wall time (target:
under 5 s). Cold (``--cold``): an empty release cache *and* an empty Go build cache, so every
package of Kubernetes and etcd is compiled; the Go module cache is kept, since downloading is
not what is measured. A cold run takes minutes on 2 cores.

    .venv/bin/python -m bench.release_build [--cold]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.results import write_result

KUBE_RELEASE = Path(sys.executable).with_name("kube-release")


def timed_release(env: dict[str, str], out: Path) -> float:
    started = time.monotonic()
    subprocess.run([str(KUBE_RELEASE), "--output", str(out)], env=env, check=True)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="also time a build from nothing")
    args = parser.parse_args()
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="bench-release-") as tmp:
        env = dict(os.environ)
        if args.cold:
            env["KUBE_UP_CACHE_DIR"] = f"{tmp}/cache"
            env["GOCACHE"] = f"{tmp}/gocache"
            figures["cold_wall_s"] = round(timed_release(env, Path(tmp) / "cold"), 1)
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            figures["cold_peak_rss_mb"] = round(peak)
            manifest = json.loads((Path(tmp) / "cold" / "release.json").read_text())
            figures["cold_source"] = manifest["server_source"]
        warm = [timed_release(env, Path(tmp) / f"warm{i}") for i in range(3)]
    figures["warm_wall_s_median"] = round(statistics.median(warm), 2)
    figures["warm_wall_s_runs"] = [round(w, 2) for w in warm]
    print(json.dumps(figures, indent=2))
    write_result("release_build", figures)


if __name__ == "__main__":
    main()
