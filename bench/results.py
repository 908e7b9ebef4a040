"""Where benchmarks leave their figures: ``bench/results/<name>.json``, beside what they print."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def write_result(name: str, figures: dict[str, object]) -> Path:
    """Record one benchmark's figures with when and where they were measured."""
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    record = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": {"cpus": os.cpu_count(), "machine": platform.machine()},
        "figures": figures,
    }
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path
