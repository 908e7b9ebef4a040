"""How fast a localcloud machine boots and how much memory it holds when idle.

Boot: from ``MachinesBackend.start()`` to the startup script's first line on the serial port
(systemd, the network, the metadata server and the runner all on the path); median of the runs
(target: at most 3 s). Memory: each machine idle (systemd, journald, dbus, logind, sshd, the
guest agent) once the boots settle; median over the machines of its memory cgroup's usage
(target: at most 60 MB), with the proportional share of RSS (PSS) of its processes beside it.
Needs root; uses its own bridge and subnet, and removes everything at the end.

    .venv/bin/python -m bench.machine_boot [--machines N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench.results import write_result
from localcloud.backends.machines import MachinesBackend
from tests.machines_support import Metadata, instance_record

BRIDGE, HOST_ADDRESS = "lcbench0", "169.254.124.1"
SUBNET, GATEWAY = "10.249.0.0/24", "10.249.0.1"
MARKER = "startup-script: bench-script-running"
MB = 1024 * 1024


def instance(i: int) -> dict:
    script = "#!/bin/sh\necho bench-script-running\n"
    return instance_record(
        "bench", "bench-a", f"bench-{i}", f"10.249.0.{10 + i}", {"startup-script": script}
    )


def boot_seconds(backend: MachinesBackend, inst: dict) -> float:
    started = time.monotonic()
    backend.start(inst)
    while MARKER not in backend.serial_output(inst, 0):
        if time.monotonic() - started > 60:
            raise SystemExit(f"{inst['name']}: startup script did not run within 60 s")
        time.sleep(0.01)
    return time.monotonic() - started


def pss_bytes(backend: MachinesBackend, inst: dict) -> int:
    """Sum of PSS over the machine's processes (shared pages split among their users)."""
    total = 0
    for pid in backend.machine_pids(inst):
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in rollup.splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1]) * 1024
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, default=5, help="machines to boot (default 5)")
    args = parser.parse_args([] if __name__ != "__main__" else None)
    with tempfile.TemporaryDirectory(prefix="bench-machines-") as tmp:
        backend = MachinesBackend(Path(tmp), bridge=BRIDGE, host_address=HOST_ADDRESS)
        try:
            with Metadata(Path(tmp), backend.metadata_bind_address()) as md:
                backend.ensure_subnet(SUBNET, GATEWAY)
                machines = [instance(i) for i in range(args.machines)]
                boots = []
                for inst in machines:
                    md.put(inst)
                    boots.append(boot_seconds(backend, inst))
                time.sleep(5)  # let every machine settle to idle
                usage = [backend.memory_stat(m)["usage_in_bytes"] for m in machines]
                pss = [pss_bytes(backend, m) for m in machines]
        finally:
            backend.destroy()
    figures = {
        "boot_to_startup_script_s_median": round(statistics.median(boots), 2),
        "boot_to_startup_script_s_runs": [round(b, 2) for b in boots],
        "idle_memory_cgroup_mb_median": round(statistics.median(usage) / MB, 1),
        "idle_memory_cgroup_mb_each": [round(u / MB, 1) for u in usage],
        "idle_pss_mb_median": round(statistics.median(pss) / MB, 1),
    }
    path = write_result("machine_boot", figures)
    print(
        f"boot to startup script: median {figures['boot_to_startup_script_s_median']} s "
        f"(runs {figures['boot_to_startup_script_s_runs']}; target <= 3 s)"
    )
    print(
        f"idle memory per machine: median {figures['idle_memory_cgroup_mb_median']} MB "
        f"memory cgroup, {figures['idle_pss_mb_median']} MB PSS (target <= 60 MB)"
    )
    print(f"written to {path}")


if __name__ == "__main__":
    main()
