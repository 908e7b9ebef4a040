"""One machine's processes: its cgroups, the detached launcher, its PID 1, power-off and kill.

The launcher is ``guest/machine-init.sh`` (see there for the boot itself). It runs detached
(``setsid --fork``, its own session, not our child) so machines outlive the daemon, and records
its PID where the backend keeps the instance's state; a :class:`Process` (PID plus kernel start
time) is what gets persisted, so a recycled PID is never mistaken for the machine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from localcloud.hostcmd import MachineError

INIT_SCRIPT = Path(__file__).parent / "guest" / "machine-init.sh"
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Process:
    """A process identified by PID and start time (clock ticks since boot)."""

    pid: int
    start: int

    @classmethod
    def of(cls, pid: int) -> Process | None:
        stat = _stat(pid)
        return None if stat is None else cls(pid, int(stat[19]))

    def alive(self) -> bool:
        stat = _stat(self.pid)
        return stat is not None and int(stat[19]) == self.start and stat[0] != "Z"

    def children(self) -> list[int]:
        try:
            text = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text()
        except OSError:
            return []
        return [int(p) for p in text.split()]

    def comm(self) -> str:
        try:
            return Path(f"/proc/{self.pid}/comm").read_text().strip()
        except OSError:
            return ""


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state first)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


@dataclass(frozen=True)
class Hierarchy:
    """A cgroup hierarchy mounted at /sys/fs/cgroup/<name> and how to mount it again."""

    name: str
    options: str  # "cgroup2", or the v1 options: controllers, or "none,name=..."


def hierarchies() -> list[Hierarchy]:
    """The host's cgroup hierarchies (v1 controllers plus ``unified``) from its mount table."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        mountpoint = Path(left.split()[4])
        fstype, _source, super_opts = right.split()[:3]
        if fstype not in ("cgroup", "cgroup2") or mountpoint.parent != CGROUP_ROOT:
            continue
        if fstype == "cgroup2":
            found.append(Hierarchy(mountpoint.name, "cgroup2"))
            continue
        opts = [o for o in super_opts.split(",") if o not in ("rw", "ro", "xattr")]
        opts = [o for o in opts if "=" not in o or o.startswith("name=")]
        if any(o.startswith("name=") for o in opts):
            opts.insert(0, "none")
        found.append(Hierarchy(mountpoint.name, ",".join(opts)))
    if not found:
        raise MachineError(
            "no cgroup hierarchies under /sys/fs/cgroup/<name>: machines need the cgroup v1 "
            "(or hybrid) layout of these hosts"
        )
    return found


class Cgroups:
    """The machine's cgroup ``group`` (a relative path) in every hierarchy."""

    def __init__(self, group: str) -> None:
        self.group = group
        self.hierarchies = hierarchies()

    def paths(self) -> list[Path]:
        return [CGROUP_ROOT / h.name / self.group for h in self.hierarchies]

    def create(self) -> None:
        """Create the group everywhere; cpuset levels need cpus/mems before they take tasks."""
        for hierarchy in self.hierarchies:
            level = CGROUP_ROOT / hierarchy.name
            for part in Path(self.group).parts:
                level = level / part
                level.mkdir(exist_ok=True)
                if (level / "cpuset.cpus").exists():
                    for knob in ("cpuset.cpus", "cpuset.mems"):
                        if not (level / knob).read_text().strip():
                            (level / knob).write_text((level.parent / knob).read_text())

    def procs_files(self) -> list[str]:
        return [str(p / "cgroup.procs") for p in self.paths()]

    def pids(self) -> set[int]:
        """Every process left anywhere in the machine's groups."""
        pids: set[int] = set()
        for path in self.paths():
            for procs in path.glob("**/cgroup.procs"):
                try:
                    pids.update(int(p) for p in procs.read_text().split())
                except OSError:
                    continue  # a group systemd removed meanwhile
        return pids

    def remove(self) -> None:
        """Remove the groups (deepest first), killing any process still in them."""
        strays = [p for p in map(Process.of, self.pids()) if p is not None]
        kill(strays)
        for path in self.paths():
            if not path.exists():
                continue
            for sub in sorted(
                (p for p in path.glob("**/") if p.is_dir()), key=lambda p: -len(p.parts)
            ):
                _rmdir_cgroup(sub)

    def memory_stat(self) -> dict[str, int]:
        """memory.stat of the machine's memory group (cgroup v1 names, bytes)."""
        path = CGROUP_ROOT / "memory" / self.group / "memory.stat"
        stats = {}
        for line in path.read_text().splitlines():
            key, value = line.split()
            stats[key] = int(value)
        stats["usage_in_bytes"] = int((path.parent / "memory.usage_in_bytes").read_text())
        return stats


def _rmdir_cgroup(path: Path) -> None:
    # A group is briefly busy right after its last task exits.
    for _ in range(50):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.05)
    raise MachineError(f"cgroup {path} stays busy; processes left: {path / 'cgroup.procs'}")


@dataclass(frozen=True)
class LaunchSpec:
    """Everything machine-init.sh needs, as paths on the host."""

    hostname: str
    netns: str
    root: Path  # empty directory: the overlay's mount point
    upper: Path
    work: Path
    console: Path
    pidfile: Path
    binds_file: Path
    binds: tuple[tuple[Path, str, str], ...]  # (host source, path inside, "ro"|"rw")


def launch(spec: LaunchSpec, cgroups: Cgroups) -> Process:
    """Start the machine detached and return the launcher (the ``unshare`` process)."""
    spec.binds_file.write_text("".join(f"{src}\t{dst}\t{mode}\n" for src, dst, mode in spec.binds))
    spec.pidfile.unlink(missing_ok=True)
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "LC_HOSTNAME": spec.hostname,
        "LC_NETNS": f"/run/netns/{spec.netns}",
        "LC_ROOT": str(spec.root),
        "LC_UPPER": str(spec.upper),
        "LC_WORK": str(spec.work),
        "LC_CONSOLE": str(spec.console),
        "LC_PIDFILE": str(spec.pidfile),
        "LC_BINDS": str(spec.binds_file),
        "LC_CGROUP_PROCS": " ".join(cgroups.procs_files()),
        "LC_CGROUP_MOUNTS": " ".join(f"{h.name}={h.options}" for h in cgroups.hierarchies),
    }
    for path in (spec.root, spec.upper, spec.work):
        path.mkdir(parents=True, exist_ok=True)
    spec.console.touch(mode=0o600)
    with open(spec.console, "ab") as console:
        started = subprocess.run(
            ["setsid", "--fork", "/bin/sh", str(INIT_SCRIPT), "enter"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=console,
        )
    if started.returncode != 0:
        raise MachineError(f"{spec.hostname}: setsid failed; {_tail(spec.console)}")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = spec.pidfile.read_text() if spec.pidfile.exists() else ""
        if text.endswith("\n"):
            launcher = Process.of(int(text))
            if launcher is not None:
                return launcher
            break
        time.sleep(0.005)
    raise MachineError(f"{spec.hostname}: the launcher did not start; {_tail(spec.console)}")


def wait_for_init(launcher: Process, console: Path, timeout: float = 30) -> Process:
    """Wait until the machine's PID 1 is systemd; fail with the console's last words."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in launcher.children():
            init = Process.of(pid)
            if init is not None and init.comm() == "systemd":
                return init
        if not launcher.alive():
            raise MachineError(f"machine failed to boot: {_tail(console)}")
        time.sleep(0.005)
    raise MachineError(f"machine did not reach systemd in {timeout:.0f}s: {_tail(console)}")


def poweroff(init: Process, launcher: Process, timeout: float) -> None:
    """Shut the machine down cleanly (systemd's SIGRTMIN+4 = poweroff), killing it at timeout.

    (SIGTERM would only make systemd re-execute itself.)
    """
    if init.alive():
        os.kill(init.pid, signal.SIGRTMIN + 4)
        if _wait_gone([init, launcher], timeout):
            return
    kill([init, launcher])


def kill(procs: list[Process]) -> None:
    """End the machine at once: killing PID 1 of its namespace takes every process along."""
    for proc in procs:
        if proc.alive():
            os.kill(proc.pid, signal.SIGKILL)
    if not _wait_gone(procs, 10):
        raise MachineError(f"machine processes {[p.pid for p in procs]} survived SIGKILL")


def _wait_gone(procs: list[Process], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while any(p.alive() for p in procs):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _tail(console: Path, lines: int = 3) -> str:
    try:
        text = console.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no console output"
    return " | ".join(text[-lines:]) or "no console output"


# Every machine's systemd, journald, dbus, containerd and kubelet take inotify instances, and
# all of them count against root's one host-wide limit (128 on Debian): a third or fourth
# machine then boots with a dbus that cannot watch its config and never settles. The limit is a
# per-user allowance, not a tunable of the host's behaviour, so the backend raises it for the
# machines it runs, as kind's documentation asks its users to.
INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")
INOTIFY_INSTANCES_NEEDED = 8192


def ensure_inotify_instances(path: Path = INOTIFY_INSTANCES) -> bool:
    """Raise the per-user inotify instance limit to what many machines need; say if it did."""
    if int(path.read_text()) >= INOTIFY_INSTANCES_NEEDED:
        return False
    path.write_text(f"{INOTIFY_INSTANCES_NEEDED}\n")
    return True
