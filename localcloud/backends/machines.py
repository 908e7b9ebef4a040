"""The ``machines`` backend: every instance is a real systemd machine on this host.

How the parts fit (each module has one job):
- :mod:`localcloud.cloudnet` — the bridge, subnets' gateways, each machine's netns + veth, routes.
- :mod:`localcloud.firewall` — the closed network and GCE firewall rules as one nft table.
- :mod:`localcloud.boot_disk` — the overlay upper dir that turns the host's root into the machine.
- :mod:`localcloud.machine_runtime` — cgroups, the detached launcher, power-off, kill.

State on disk, under ``state_dir``::

    machines/<zone>/<name>/upper, work, root   overlay (upper = the boot disk; root: mount point)
                          /containerd, kubelet     bound at /var/lib/containerd, /var/lib/kubelet
                          /sysctl/                 kubelet's kernel settings, bound read-only
                          /devices/                attached disks, bound at /dev/disk/by-id
                          /console.log             serial port 1 (bound over /dev/console)
                          /runtime.json            launcher + PID 1 (PID, start time), IP
                          /disks.json              device name -> disk directory
    disks/<zone>/<name>/                           persistent disks (directories)
    firewalls.json                                 last firewalls, for re-rendering after restart

Attached disks are directories: ``/dev/disk/by-id/google-<deviceName>`` inside the machine is a
bind mount of ``disks/<zone>/<disk>`` (mount --bind it where a VM would mount the block device).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import os
import re
import shutil
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localcloud import firewall
from localcloud.backends.base import MachineBackend, Resource
from localcloud.boot_disk import BootDisk
from localcloud.cloudnet import CloudNetwork
from localcloud.hostcmd import MachineError, require_root_and_tools, run
from localcloud.machine_runtime import (
    INOTIFY_INSTANCES_NEEDED,
    Cgroups,
    LaunchSpec,
    Process,
    ensure_inotify_instances,
    kill,
    launch,
    poweroff,
    wait_for_init,
)

# kubelet writes these when they differ (and fails when it cannot); the machine finds them set.
KUBELET_SYSCTLS = {
    "vm/overcommit_memory": "1",
    "vm/panic_on_oom": "0",
    "kernel/panic": "10",
    "kernel/panic_on_oops": "1",
    "kernel/keys/root_maxkeys": "1000000",
    "kernel/keys/root_maxbytes": "25000000",
}
# What booting machines takes on the host (make deps installs them); python3 runs the guest.
log = logging.getLogger(__name__)
HOST_TOOLS = ("ip", "nft", "unshare", "nsenter", "setsid", "mount", "ssh-keygen", "sshd", "python3")
# GCE's resource names (instances, zones, disks), so no name can escape the state dir.
NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
DEVICE_NAME = re.compile(r"^[a-zA-Z0-9]([-_a-zA-Z0-9]{0,62})$")
DISK_LINK = re.compile(r"zones/([^/]+)/disks/([^/]+)$")
# Host data a machine must not see (besides the state dir); each becomes an empty dir inside.
HIDDEN_PATHS = ("/root", "/home", "/tmp", "/var/tmp", "/work")
# kube-up's and localcloud's state dirs when moved out of ~ (cluster.state, localcloud.provider).
STATE_DIR_VARIABLES = ("KUBE_UP_STATE_DIR", "LOCALCLOUD_STATE_DIR")


@dataclass(frozen=True)
class _Machine:
    """Where one instance lives on this host, derived from its name and zone."""

    zone: str
    name: str
    dir: Path
    netns: str
    veth: str
    cgroup: str

    @property
    def key(self) -> str:
        return f"{self.zone}/{self.name}"

    @property
    def console(self) -> Path:
        return self.dir / "console.log"


class MachinesBackend(MachineBackend):
    """GCE instances as systemd machines in namespaces, on one closed bridge network."""

    name = "machines"

    def __init__(
        self,
        state_dir: Path,
        bridge: str = "lcbr0",
        host_address: str = firewall.METADATA_IP,
        metadata_port: int = firewall.METADATA_PORT,
        hidden_paths: Iterable[Path] = (),
        stop_timeout: float = 60,
    ) -> None:
        """``host_address`` is the host's address on the bridge: the metadata server binds there
        (machines' connections to 169.254.169.254:80 are redirected to it) and so does storage.
        A second backend on the same host (tests) needs its own bridge and address."""
        require_root_and_tools(HOST_TOOLS, "the machines backend")
        self.state_dir = Path(state_dir).resolve()
        if re.search(r"[\s,:]", str(self.state_dir)):
            raise MachineError(
                f"state dir {self.state_dir} has a space, ',' or ':' (overlayfs options cannot "
                "hold them); choose another path"
            )
        for private in (self.state_dir / "machines", self.state_dir / "disks"):
            private.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.metadata_port = metadata_port
        self.stop_timeout = stop_timeout
        self.hidden = [Path(p) for p in HIDDEN_PATHS] + [self.state_dir, *map(Path, hidden_paths)]
        self.hidden += [Path(os.environ[v]) for v in STATE_DIR_VARIABLES if os.environ.get(v)]
        self.net = CloudNetwork(bridge, host_address)
        self._lock = threading.RLock()  # the network, the nft table, the registry below
        self._instance_locks: dict[str, threading.Lock] = {}
        self._running: dict[str, firewall.MachineAddress] = {}
        self._firewalls: list[Resource] = self._load("firewalls.json", [])
        self.net.ensure_bridge()
        if ensure_inotify_instances():
            log.info(
                "raised fs.inotify.max_user_instances to %d for the machines",
                INOTIFY_INSTANCES_NEEDED,
            )

    # -- addresses the daemon binds ---------------------------------------------------------

    def metadata_bind_address(self) -> tuple[str, int]:
        """Where the daemon serves the metadata server (machines reach it as 169.254.169.254)."""
        return self.net.host_address, self.metadata_port

    def storage_bind_host(self) -> str:
        """The host address on the bridge where the daemon serves object storage."""
        return self.net.host_address

    # -- network ----------------------------------------------------------------------------

    def ensure_subnet(self, cidr: str, gateway: str) -> None:
        with self._lock:
            self.net.add_subnet(cidr, gateway)
            self._render_rules()

    def remove_subnet(self, cidr: str, gateway: str) -> None:
        with self._lock:
            self.net.remove_subnet(cidr, gateway)
            self._render_rules()

    def sync_routes(self, routes: list[tuple[str, str]]) -> None:
        with self._lock:
            self.net.sync_routes(routes)
            self._render_rules()

    def sync_firewalls(self, firewalls: list[Resource]) -> None:
        with self._lock:
            self._firewalls = list(firewalls)
            self._render_rules()
            self._save("firewalls.json", self._firewalls)

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, instance: Resource) -> None:
        m = self._machine(instance)
        with self._instance_lock(m):
            if self._alive(m) is not None:
                return
            ip = _network_ip(instance)
            self._teardown(m)  # whatever a crash left behind
            try:
                self._boot(m, instance, ip)
            except BaseException:
                self._teardown(m)
                raise
            with self._lock:
                self._running[m.key] = _address(instance, ip)
                self._render_rules()

    def update_instance(self, instance: Resource) -> None:
        """The instance's record changed (``setTags``): re-apply the firewall for its tags."""
        m = self._machine(instance)
        with self._lock:
            if m.key in self._running:
                address = self._running[m.key]
                self._running[m.key] = _address(instance, address.ip)
                self._render_rules()

    def stop(self, instance: Resource) -> None:
        m = self._machine(instance)
        with self._instance_lock(m):
            procs = self._alive(m)
            if procs is not None:
                poweroff(procs[1], procs[0], self.stop_timeout)
            self._teardown(m)

    def reset(self, instance: Resource) -> None:
        """GCE's reset: a hard power cycle, no clean shutdown."""
        m = self._machine(instance)
        with self._instance_lock(m):
            self._teardown(m)  # kills what runs: no clean shutdown
        self.start(instance)

    def delete(self, instance: Resource) -> None:
        m = self._machine(instance)
        self.stop(instance)
        with self._instance_lock(m):
            left = _mounts_under(m.dir)
            if left:
                raise MachineError(f"{m.key}: still mounted under its directory: {left[0]}")
            if m.dir.exists():
                shutil.rmtree(m.dir)

    def running(self, instance: Resource) -> bool:
        return self._alive(self._machine(instance)) is not None

    def serial_output(self, instance: Resource, start: int) -> str:
        console = self._machine(instance).console
        try:
            with open(console, "rb") as port:
                port.seek(max(start, 0))
                return port.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def host_key(self, instance: Resource) -> str:
        """The machine's SSH host key (``ssh-ed25519 AAAA...``), as its boot disk holds it."""
        return BootDisk(self._machine(instance).dir / "upper").host_public_key()

    def machine_pid(self, instance: Resource) -> int | None:
        """PID of the machine's systemd (for nsenter), or None when it is not running."""
        procs = self._alive(self._machine(instance))
        return None if procs is None else procs[1].pid

    def machine_pids(self, instance: Resource) -> set[int]:
        """Host PIDs of every process in the machine (from its cgroups)."""
        return Cgroups(self._machine(instance).cgroup).pids()

    def memory_stat(self, instance: Resource) -> dict[str, int]:
        """The machine's memory cgroup statistics (bytes)."""
        return Cgroups(self._machine(instance).cgroup).memory_stat()

    # -- disks ------------------------------------------------------------------------------

    def attach_disk(self, instance: Resource, disk: Resource, device_name: str) -> None:
        m = self._machine(instance)
        if not DEVICE_NAME.match(device_name):
            raise MachineError(f"deviceName {device_name!r} must be letters, digits, '-' or '_'")
        source = self._disk_dir(disk, m.zone)
        with self._instance_lock(m):
            m.dir.mkdir(parents=True, exist_ok=True)
            disks = self._load_instance(m, "disks.json", {})
            disks[device_name] = str(source)
            _write_json(m.dir / "disks.json", disks)
            if self._alive(m) is not None:
                self._bind_disk(m, device_name, source)

    def delete_disk(self, disk: Resource) -> None:
        """Remove a persistent disk's directory (refused while an instance has it attached)."""
        source = str(self._disk_dir(disk, ""))
        for record in self.state_dir.glob("machines/*/*/disks.json"):
            if source in json.loads(record.read_text()).values():
                raise MachineError(
                    f"disk {disk['name']} is attached to instance {record.parent.name}; "
                    "delete or detach the instance's disk first"
                )
        shutil.rmtree(source, ignore_errors=True)

    # -- daemon restarts --------------------------------------------------------------------

    def adopt(self, instances: list[Resource]) -> set[str]:
        adopted = set()
        for instance in instances:
            m = self._machine(instance)
            with self._instance_lock(m):
                if self._alive(m) is None:
                    self._teardown(m)
                    continue
                runtime = self._load_instance(m, "runtime.json", {})
                with self._lock:
                    self._running[m.key] = _address(instance, runtime["ip"])
                adopted.add(instance["name"])
        with self._lock:
            self._render_rules()
        return adopted

    def close(self) -> None:
        """Machines, mounts and the network stay for the next daemon; but a network with no
        machine and no subnet left serves no one, so it goes (kube-down leaves nothing)."""
        with self._lock:
            if not self._running and not self.net.subnets() and not self.net.routes():
                self.net.destroy()

    def destroy(self) -> None:
        """Remove every machine, disk mount and the network of this backend (``down``, tests)."""
        for runtime in sorted(self.state_dir.glob("machines/*/*")):
            m = self._machine({"name": runtime.name, "zone": runtime.parent.name})
            with self._instance_lock(m):
                self._teardown(m)
        with self._lock:
            self.net.sync_routes([])
            for subnet in self.net.subnets():
                self.net.remove_subnet(str(subnet.network), str(subnet.ip))
            self.net.destroy()
        Cgroups(self._cgroup_parent()).remove()

    # -- internals --------------------------------------------------------------------------

    def _boot(self, m: _Machine, instance: Resource, ip: str) -> None:
        disk = BootDisk(m.dir / "upper")
        disk.prepare(instance["name"], ip, self.hidden)
        binds = [
            (m.dir / "containerd", "/var/lib/containerd", "rw"),
            (m.dir / "kubelet", "/var/lib/kubelet", "rw"),
            (m.dir / "devices", "/dev/disk/by-id", "rw"),
        ]
        for key, value in KUBELET_SYSCTLS.items():
            path = m.dir / "sysctl" / key.replace("/", ".")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(value + "\n")
            binds.append((path, f"/proc/sys/{key}", "ro"))
        for subdir in ("containerd", "kubelet", "devices"):
            (m.dir / subdir).mkdir(exist_ok=True)
        if "disks" in instance:  # the record is the truth at boot (it lists attachDisk's too)
            _write_json(m.dir / "disks.json", self._record_disks(instance, m.zone))
        self._mount_devices(m)
        with self._lock:
            self.net.connect(m.netns, m.veth, ip, _mac(ip), _nat_ips(instance, ip))
        cgroups = Cgroups(m.cgroup)
        cgroups.create()
        spec = LaunchSpec(
            hostname=instance["name"],
            netns=m.netns,
            root=m.dir / "root",
            upper=m.dir / "upper",
            work=m.dir / "work",
            console=m.console,
            pidfile=m.dir / "launcher.pid",
            binds_file=m.dir / "binds",
            binds=tuple(binds),
        )
        launcher = launch(spec, cgroups)
        runtime = {"launcher": [launcher.pid, launcher.start], "ip": ip}
        _write_json(m.dir / "runtime.json", runtime)  # before waiting: a failed boot is cleaned
        init = wait_for_init(launcher, m.console)
        runtime["init"] = [init.pid, init.start]
        _write_json(m.dir / "runtime.json", runtime)

    def _teardown(self, m: _Machine) -> None:
        """Remove everything a (stopped) machine holds on the host; keep its disks and files."""
        runtime = self._load_instance(m, "runtime.json", {})
        kill([Process(*runtime[f]) for f in ("init", "launcher") if f in runtime])
        with self._lock:
            self.net.disconnect(m.netns, m.veth)
            was_running = self._running.pop(m.key, None) is not None
            if was_running:
                self._render_rules()
        Cgroups(m.cgroup).remove()
        devices = m.dir / "devices"
        if _mounts_under(devices):
            run(["umount", "--recursive", str(devices)])
        (m.dir / "runtime.json").unlink(missing_ok=True)

    def _mount_devices(self, m: _Machine) -> None:
        """The host side of /dev/disk/by-id: a shared mount, so later attaches reach the
        running machine (its copy is a slave of this one)."""
        devices = m.dir / "devices"
        disks = self._load_instance(m, "disks.json", {})
        for stale in devices.iterdir():  # mount points of disks no longer attached
            if stale.name.removeprefix("google-") not in disks:
                stale.rmdir()
        run(["mount", "--bind", str(devices), str(devices)])
        run(["mount", "--make-shared", str(devices)])
        for device_name, source in disks.items():
            self._bind_disk(m, device_name, Path(source))

    def _bind_disk(self, m: _Machine, device_name: str, source: Path) -> None:
        target = m.dir / "devices" / f"google-{device_name}"
        if _mounts_of(target):
            return
        source.mkdir(parents=True, exist_ok=True)
        target.mkdir(exist_ok=True)
        run(["mount", "--bind", str(source), str(target)])

    def _alive(self, m: _Machine) -> tuple[Process, Process] | None:
        """(launcher, init) when the machine is up."""
        runtime = self._load_instance(m, "runtime.json", {})
        if "init" not in runtime:
            return None
        launcher, init = Process(*runtime["launcher"]), Process(*runtime["init"])
        return (launcher, init) if init.alive() else None

    def _render_rules(self) -> None:
        if not self.net.subnets():
            self.net.remove_rules()
            return
        routes = self.net.routes()
        machines = [
            firewall.MachineAddress(
                a.ip, a.tags, tuple(dest for dest, hop in sorted(routes) if hop == a.ip), a.nat_ips
            )
            for a in self._running.values()
        ]
        script = firewall.render(
            self.net.bridge, self.net.host_address, self.metadata_port, machines, self._firewalls
        )
        self.net.apply_rules(script)

    def _machine(self, instance: Resource) -> _Machine:
        zone = _checked("zone", str(instance.get("zone", "")).rsplit("/", 1)[-1] or "zone")
        name = _checked("instance name", str(instance.get("name", "")))
        tag = f"{self.net.bridge}.{zone}.{name}"
        digest = _short_hash(tag)
        return _Machine(
            zone=zone,
            name=name,
            dir=self.state_dir / "machines" / zone / name,
            netns=tag,
            veth=f"lcv{digest}",
            cgroup=f"{self._cgroup_parent()}/{zone}.{name}",
        )

    def _cgroup_parent(self) -> str:
        return f"localcloud.{self.net.bridge}"

    def _record_disks(self, instance: Resource, zone: str) -> dict[str, str]:
        """device name -> directory of each non-boot disk in the instance record."""
        attached = {}
        for entry in instance["disks"]:
            found = DISK_LINK.search(str(entry.get("source", "")))
            if entry.get("boot") or not found:
                continue
            disk = {"zone": found.group(1), "name": found.group(2)}
            device = entry.get("deviceName") or found.group(2)
            if not DEVICE_NAME.match(device):
                raise MachineError(f"deviceName {device!r} must be letters, digits, '-' or '_'")
            attached[device] = str(self._disk_dir(disk, zone))
        return attached

    def _disk_dir(self, disk: Resource, zone: str) -> Path:
        disk_zone = str(disk.get("zone", "")).rsplit("/", 1)[-1] or zone or "zone"
        name = _checked("disk name", str(disk.get("name", "")))
        return self.state_dir / "disks" / _checked("zone", disk_zone) / name

    def _instance_lock(self, m: _Machine) -> threading.Lock:
        with self._lock:
            return self._instance_locks.setdefault(m.key, threading.Lock())

    def _load(self, name: str, default: Any) -> Any:
        path = self.state_dir / name
        return json.loads(path.read_text()) if path.exists() else default

    def _save(self, name: str, value: Any) -> None:
        _write_json(self.state_dir / name, value)

    @staticmethod
    def _load_instance(m: _Machine, name: str, default: Any) -> Any:
        path = m.dir / name
        return json.loads(path.read_text()) if path.exists() else default


def _checked(what: str, value: str) -> str:
    if not NAME.match(value):
        raise MachineError(
            f"{what} {value!r} is not a GCE name (lowercase letters, digits, '-'; 1-63 chars)"
        )
    return value


def _network_ip(instance: Resource) -> str:
    try:
        ip = instance["networkInterfaces"][0]["networkIP"]
        ipaddress.IPv4Address(ip)
    except (KeyError, IndexError, ValueError):
        raise MachineError(
            f"instance {instance.get('name')} has no IPv4 networkInterfaces[0].networkIP"
        ) from None
    return ip


def _tags(instance: Resource) -> frozenset[str]:
    return frozenset(instance.get("tags", {}).get("items", []))


def _mac(ip: str) -> str:
    """GCE-style locally administered MAC from the IP (stable across restarts)."""
    return "42:01:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(ip).packed)


def _nat_ips(instance: Resource, ip: str) -> list[str]:
    """External addresses of the instance other than its internal one.

    This host sits on the cloud network, so one-to-one NAT is emulated by giving the machine its
    external address too: traffic to it arrives as GCE would deliver it, at the instance.
    """
    nic = instance["networkInterfaces"][0]
    found = [str(ac.get("natIP", "")) for ac in nic.get("accessConfigs", [])]
    return sorted({nat for nat in found if nat and nat != ip})


def _address(instance: Resource, ip: str) -> firewall.MachineAddress:
    return firewall.MachineAddress(ip, _tags(instance), nat_ips=tuple(_nat_ips(instance, ip)))


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, indent=1))
    tmp.replace(path)


def _mountpoints() -> list[Path]:
    """Mount points of this mount namespace (mountinfo escapes space, tab... as \\ooo)."""
    unescape = re.compile(r"\\([0-7]{3})")
    return [
        Path(unescape.sub(lambda o: chr(int(o.group(1), 8)), line.split()[4]))
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
    ]


def _mounts_under(path: Path) -> list[Path]:
    return [p for p in _mountpoints() if p == path or path in p.parents]


def _mounts_of(path: Path) -> list[Path]:
    return [p for p in _mountpoints() if p == path]
