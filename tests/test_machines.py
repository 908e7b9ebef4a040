"""End-to-end: the machines backend boots real systemd machines on this host.

Two machines on a test-only bridge and subnet (so a developer's running localcloud is never
touched) are driven through the backend directly with GCE-shaped instance records, which
localcloud's own metadata server serves from where the backend says the daemon binds it. The module
shares the two machines (booting is the slow part); tests run in file order and the last ones
stop, adopt, delete and destroy. The fixture removes everything even when a test fails.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cluster.release.images import busybox_image
from cluster.release.versions import WORKLOAD_IMAGE
from localcloud.backends.machines import KUBELET_SYSCTLS, MachinesBackend
from localcloud.hostcmd import MachineError
from tests.machines_support import Metadata, instance_record

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

BRIDGE = "lctest0"
HOST_ADDRESS = "169.254.123.1"
SUBNET, GATEWAY = "10.251.0.0/24", "10.251.0.1"
POD_RANGE, POD_IP = "10.252.1.0/24", "10.252.1.1"
ZONE = "https://www.googleapis.com/compute/v1/projects/test/zones/test-a"
STARTUP = """#!/bin/sh
echo "hello from $(hostname)"
curl -s -H 'Metadata-Flavor: Google' \
  http://metadata.google.internal/computeMetadata/v1/instance/attributes/role
echo
"""
DAEMON_START = f"""
import json, sys
from pathlib import Path
from localcloud.backends.machines import MachinesBackend
backend = MachinesBackend(Path(sys.argv[1]), bridge={BRIDGE!r}, host_address={HOST_ADDRESS!r})
backend.start(json.loads(sys.argv[2]))
"""
FIREWALLS = [
    {
        "name": "test-allow-internal",
        "allowed": [{"IPProtocol": "icmp"}, {"IPProtocol": "tcp"}, {"IPProtocol": "udp"}],
        "sourceRanges": [SUBNET, "10.252.0.0/16"],
    },
    {
        "name": "test-ssh",
        "allowed": [{"IPProtocol": "tcp", "ports": ["22"]}],
        "sourceRanges": ["0.0.0.0/0"],
        "targetTags": ["ssh"],
    },
]


def make_instance(name: str, ip: str, role: str, tags: list[str], **kw: Any) -> dict[str, Any]:
    metadata = {"startup-script": STARTUP, "role": role, "enable-guest-attributes": "TRUE"}
    return instance_record("test", "test-a", name, ip, metadata, tags, **kw)


class Cloud:
    """The backend, the metadata server and the two instances the tests share."""

    def __init__(self, state: Path, md: Metadata, backend: MachinesBackend) -> None:
        self.state = state
        self.md = md
        self.backend = backend
        # machine-a has a data disk attached from its creation on (as kube-up's master-pd).
        self.a = make_instance(
            "machine-a", "10.251.0.2", "master", ["ssh"], data_disks={"data": "data-disk"}
        )
        self.b = make_instance("machine-b", "10.251.0.3", "node", [])
        self.host_sysctls = read_host_sysctls()

    def sh(
        self, instance: dict[str, Any], script: str, timeout: float = 30, stdin: bytes = b""
    ) -> str:
        """Run ``script`` inside the machine (all its namespaces); return stdout or fail."""
        pid = self.backend.machine_pid(instance)
        assert pid is not None, f"{instance['name']} is not running"
        proc = subprocess.run(
            ["nsenter", "-t", str(pid), "-a", "/bin/sh", "-c", script],
            capture_output=True,
            input=stdin,
            timeout=timeout,
        )
        stderr = proc.stderr.decode(errors="replace")
        assert proc.returncode == 0, f"{script!r} in {instance['name']}: {stderr}"
        return proc.stdout.decode(errors="replace")

    def wait_serial(self, instance: dict[str, Any], text: str, count: int = 1) -> str:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            serial = self.backend.serial_output(instance, 0)
            if serial.count(text) >= count:
                return serial
            time.sleep(0.1)
        raise AssertionError(f"{text!r} x{count} not on {instance['name']}'s serial port")


def read_host_sysctls() -> dict[str, str]:
    return {key: Path("/proc/sys", key).read_text() for key in KUBELET_SYSCTLS}


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    if os.geteuid() != 0:
        pytest.skip("booting machines needs root (namespaces, mounts, cgroups, nftables)")
    state = tmp_path_factory.mktemp("machines-state")
    backend = MachinesBackend(state, bridge=BRIDGE, host_address=HOST_ADDRESS)
    try:
        with Metadata(state, backend.metadata_bind_address()) as md:
            c = Cloud(state, md, backend)
            backend.ensure_subnet(SUBNET, GATEWAY)
            backend.sync_firewalls(FIREWALLS)
            data_dir = state / "disks" / "test-a" / "data-disk"
            data_dir.mkdir(parents=True)
            (data_dir / "written-by-host").write_text("persistent\n")
            for instance in (c.a, c.b):
                md.put(instance)
                backend.start(instance)
            yield c
    finally:
        MachinesBackend(state, bridge=BRIDGE, host_address=HOST_ADDRESS).destroy()
        shutil.rmtree(state, ignore_errors=True)


def test_startup_scripts_run_and_read_metadata(cloud: Cloud) -> None:
    serial_a = cloud.wait_serial(cloud.a, "startup-script: hello from machine-a")
    serial_b = cloud.wait_serial(cloud.b, "startup-script: hello from machine-b")
    # The script reached the metadata server by name, and was told apart by its own IP.
    assert "startup-script: master" in cloud.wait_serial(cloud.a, "startup-script: master")
    assert "startup-script: node" in cloud.wait_serial(cloud.b, "startup-script: node")
    assert "machine-b" not in serial_a and "machine-a" not in serial_b
    # Offsets are bytes into serial port 1; the port only grows.
    assert cloud.backend.serial_output(cloud.a, 10).startswith(serial_a.encode()[10:].decode())
    assert cloud.backend.serial_output(cloud.a, 10**9) == ""


def test_machines_reach_each_other_and_a_routed_pod_range(cloud: Cloud) -> None:
    cloud.sh(cloud.b, f"ip addr add {POD_IP}/32 dev lo")
    cloud.backend.sync_routes([(POD_RANGE, "10.251.0.3")])
    assert cloud.sh(cloud.a, "hostname").strip() == "machine-a"
    cloud.sh(cloud.a, "busybox ping -c 1 -W 5 10.251.0.3")
    cloud.sh(cloud.a, f"busybox ping -c 1 -W 5 {POD_IP}")
    # The host routes the pod range too (GCE routes are kernel routes).
    routes = subprocess.run(["ip", "route", "show", POD_RANGE], capture_output=True, text=True)
    assert "via 10.251.0.3" in routes.stdout


def test_ssh_with_the_published_host_key(cloud: Cloud) -> None:
    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    client_key = paramiko.Ed25519Key(file_obj=io.StringIO(pem.decode()))
    cloud.md.set_attribute(cloud.a, "ssh-keys", f"tester:{public.decode()} tester@test\n")

    published = wait_for(lambda: cloud.md.guest_attribute(cloud.a, "hostkeys/ssh-ed25519"))
    assert published == cloud.backend.host_key(cloud.a)
    assert published in cloud.backend.serial_output(cloud.a, 0)
    kind, b64 = published.split()
    host_key = paramiko.Ed25519Key(data=base64.b64decode(b64))
    assert (
        host_key.get_fingerprint()
        != paramiko.Ed25519Key(
            data=base64.b64decode(Path("/etc/ssh/ssh_host_ed25519_key.pub").read_text().split()[1])
        ).get_fingerprint()
    ), "machines must not share the host's host key"

    def login() -> str | None:
        client = paramiko.SSHClient()
        client.get_host_keys().add("10.251.0.2", kind, host_key)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect(
                "10.251.0.2",
                username="tester",
                pkey=client_key,
                timeout=5,
                allow_agent=False,
                look_for_keys=False,
            )
        except paramiko.AuthenticationException:
            return None  # the agent has not applied the new key yet
        try:
            _, out, _ = client.exec_command("id -un; hostname")
            return out.read().decode()
        finally:
            client.close()

    assert wait_for(login) == "tester\nmachine-a\n"


def test_firewall_admits_only_what_rules_allow(cloud: Cloud) -> None:
    with socket.create_connection(("10.251.0.2", 22), timeout=5) as conn:
        assert conn.recv(4).startswith(b"SSH")
    # machine-b has no "ssh" tag: the host's SYN is dropped, not refused.
    with pytest.raises(socket.timeout):
        socket.create_connection(("10.251.0.3", 22), timeout=2)
    # Between machines the internal rule allows it.
    assert "SSH" in cloud.sh(cloud.a, "echo | busybox nc -w 2 10.251.0.3 22 | head -c 3")
    # setTags: the API tells the backend, the rule follows the tag.
    tagged = {**cloud.b, "tags": {"items": ["ssh"]}}
    cloud.backend.update_instance(tagged)
    with socket.create_connection(("10.251.0.3", 22), timeout=5) as conn:
        assert conn.recv(4).startswith(b"SSH")
    cloud.backend.update_instance(cloud.b)
    with pytest.raises(socket.timeout):
        socket.create_connection(("10.251.0.3", 22), timeout=2)


def test_cloud_network_is_closed(cloud: Cloud) -> None:
    ruleset = json.loads(
        subprocess.run(
            ["nft", "-j", "list", "ruleset"], capture_output=True, text=True, check=True
        ).stdout
    )["nftables"]
    rules = [
        r["rule"] for r in ruleset if "rule" in r and r["rule"]["table"] == f"localcloud_{BRIDGE}"
    ]
    leaving = [
        r
        for r in rules
        if r["chain"] == "forward"
        and {"drop": None} in r["expr"]
        and _matches(r, "iifname", "==", BRIDGE)
        and _matches(r, "oifname", "!=", BRIDGE)
    ]
    assert leaving, "no rule drops forwarding from the cloud bridge to other interfaces"
    assert not any("masquerade" in json.dumps(r) or "snat" in json.dumps(r) for r in rules)
    # Of the host, machines reach only its cloud address: not a service on its other addresses.
    with socket.create_server(("0.0.0.0", 0)) as listener:
        port = listener.getsockname()[1]
        probe = "timeout 3 bash -c 'exec 3<>/dev/tcp/{}/{}' && echo open || echo closed"
        assert cloud.sh(cloud.a, probe.format(HOST_ADDRESS, port)).strip() == "open"
        assert cloud.sh(cloud.a, probe.format(GATEWAY, port)).strip() == "closed"
    for instance in (cloud.a, cloud.b):
        assert "nameserver" not in cloud.sh(instance, "cat /etc/resolv.conf")


def _matches(rule: dict[str, Any], key: str, op: str, value: str) -> bool:
    return any(
        e.get("match", {}).get("left", {}).get("meta", {}).get("key") == key
        and e["match"]["op"] == op
        and e["match"]["right"] == value
        for e in rule["expr"]
    )


def test_kernel_settings_stay_the_hosts(cloud: Cloud) -> None:
    for key, value in KUBELET_SYSCTLS.items():
        assert cloud.sh(cloud.b, f"cat /proc/sys/{key}").strip() == value
    for attempt in (
        "echo 2 > /proc/sys/vm/overcommit_memory",
        "echo 3 > /proc/sys/kernel/panic",
        "echo 4096 > /proc/sys/kernel/pid_max",
        "sysctl -w vm.swappiness=7",
    ):
        pid = cloud.backend.machine_pid(cloud.b)
        proc = subprocess.run(
            ["nsenter", "-t", str(pid), "-a", "/bin/sh", "-c", attempt],
            capture_output=True,
            text=True,
        )
        assert proc.returncode != 0, f"{attempt!r} succeeded inside a machine"
    # Network settings are the machine's own (per namespace) and stay writable.
    cloud.sh(cloud.b, "echo 1 > /proc/sys/net/ipv4/ip_forward")
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == "0\n"
    assert read_host_sysctls() == cloud.host_sysctls


def test_host_data_is_hidden(cloud: Cloud) -> None:
    assert (cloud.state / "machines").exists() and Path("/work/main").exists()
    for path in ("/root", "/home", "/tmp", "/work", str(cloud.state)):
        on_host = set(os.listdir(path))
        inside = set(cloud.sh(cloud.a, f"ls -A {path} 2>/dev/null || true").split())
        # What the machine made itself (sshd's ~/.ssh) may share a name; nothing else may.
        assert not (on_host & inside) - {".ssh"}, f"{path} shows host data inside a machine"
    # Installed software is the host's.
    assert cloud.sh(cloud.a, "test -x /usr/bin/containerd && echo yes").strip() == "yes"


def test_host_services_are_masked_or_disabled(cloud: Cloud) -> None:
    state = cloud.sh(cloud.a, "systemctl is-enabled containerd nginx ssh || true").split()
    assert state == ["disabled", "disabled", "enabled"]
    assert cloud.sh(cloud.a, "systemctl is-active ssh google-guest-agent").split() == [
        "active",
        "active",
    ]
    if Path("/lib/systemd/system/postgresql.service").exists():
        assert cloud.sh(cloud.a, "systemctl is-enabled postgresql || true").strip() == "masked"
    failed = cloud.sh(cloud.a, "systemctl list-units --failed --plain --no-legend")
    assert failed.strip() == ""


def test_containerd_runs_containers_in_a_machine(cloud: Cloud) -> None:
    cloud.sh(cloud.b, "systemctl start containerd", timeout=60)
    cloud.sh(cloud.b, "cat > /root/busybox.tar", stdin=busybox_image())
    cloud.sh(cloud.b, "ctr -n k8s.io images import /root/busybox.tar", timeout=60)
    run = f"ctr -n k8s.io run --rm {WORKLOAD_IMAGE} probe sh -c 'echo in-container; hostname'"
    assert cloud.sh(cloud.b, run, timeout=60).split() == ["in-container", "machine-b"]
    mounts = cloud.sh(cloud.b, "findmnt -no FSTYPE /var/lib/containerd; findmnt -no PROPAGATION /")
    assert mounts.split() == ["ext4", "shared"]
    assert cloud.sh(cloud.b, "readlink /opt/cni/bin").strip() == "/usr/lib/cni"


def test_attached_disks(cloud: Cloud) -> None:
    by_id = "/dev/disk/by-id"
    assert cloud.sh(cloud.a, f"cat {by_id}/google-data/written-by-host") == "persistent\n"
    cloud.sh(cloud.a, f"echo from-machine > {by_id}/google-data/written-by-machine")
    disk = cloud.state / "disks" / "test-a" / "data-disk"
    assert (disk / "written-by-machine").read_text() == "from-machine\n"
    # Attaching to a running machine shows up at once.
    cloud.backend.attach_disk(cloud.a, {"name": "late", "zone": ZONE}, "late")
    (cloud.state / "disks" / "test-a" / "late" / "f").write_text("late\n")
    assert cloud.sh(cloud.a, f"cat {by_id}/google-late/f") == "late\n"


def test_bad_input_is_refused(cloud: Cloud) -> None:
    with pytest.raises(MachineError, match="instance name '../escape' is not a GCE name"):
        cloud.backend.start(make_instance("../escape", "10.251.0.9", "x", []))
    with pytest.raises(MachineError, match="no IPv4 networkInterfaces"):
        cloud.backend.start({"name": "no-ip", "zone": ZONE, "networkInterfaces": []})
    with pytest.raises(MachineError, match="overlaps 192.0.2.0/24"):
        cloud.backend.ensure_subnet("192.0.2.0/25", "192.0.2.1")
    with pytest.raises(MachineError, match="not a CIDR"):
        cloud.backend.ensure_subnet("10.9.0.0/33", "10.9.0.1")
    with pytest.raises(MachineError, match="no subnet"):
        cloud.backend.sync_routes([("10.253.0.0/24", "10.99.0.5")])


def test_machines_outlive_their_daemon_and_are_adopted(cloud: Cloud) -> None:
    cloud.backend.stop(cloud.b)
    assert not cloud.backend.running(cloud.b)
    assert f"{BRIDGE}.test-a.machine-b" not in _netns()
    # A short-lived "daemon" process starts machine-b and exits; the machine stays up.
    subprocess.run(
        [sys.executable, "-c", DAEMON_START, str(cloud.state), json.dumps(cloud.b)],
        check=True,
        timeout=120,
    )
    pids = {i["name"]: cloud.backend.machine_pid(i) for i in (cloud.a, cloud.b)}
    assert None not in pids.values()
    restarted = MachinesBackend(cloud.state, bridge=BRIDGE, host_address=HOST_ADDRESS)
    assert restarted.adopt([cloud.a, cloud.b]) == {"machine-a", "machine-b"}
    assert {i["name"]: restarted.machine_pid(i) for i in (cloud.a, cloud.b)} == pids
    cloud.backend = restarted
    cloud.wait_serial(cloud.b, "startup-script: hello from machine-b", count=2)
    cloud.sh(cloud.a, "busybox ping -c 1 -W 5 10.251.0.3")


def test_reset_reboots_hard(cloud: Cloud) -> None:
    before = cloud.backend.machine_pid(cloud.b)
    cloud.backend.reset(cloud.b)
    assert cloud.backend.machine_pid(cloud.b) not in (None, before)
    cloud.wait_serial(cloud.b, "startup-script: hello from machine-b", count=3)
    # The boot disk is persistent: what the machine wrote survives; the hostname is its own.
    assert cloud.sh(cloud.b, "test -f /root/busybox.tar && hostname").strip() == "machine-b"


def test_delete_leaves_no_trace(cloud: Cloud) -> None:
    pids = [cloud.backend.machine_pid(i) for i in (cloud.a, cloud.b)]
    for instance in (cloud.a, cloud.b):
        cloud.backend.delete(instance)
        cloud.backend.delete(instance)  # idempotent
        assert not cloud.backend.running(instance)
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)
    assert not [n for n in _netns() if n.startswith(f"{BRIDGE}.")]
    links = subprocess.run(["ip", "-j", "link"], capture_output=True, text=True).stdout
    assert not [link for link in json.loads(links) if link.get("master") == BRIDGE]
    assert str(cloud.state) not in Path("/proc/self/mountinfo").read_text()
    assert not [p for p in Path("/sys/fs/cgroup").glob(f"*/localcloud.{BRIDGE}/*") if p.is_dir()]
    assert not (cloud.state / "machines" / "test-a" / "machine-a").exists()
    assert (cloud.state / "disks" / "test-a" / "data-disk" / "written-by-machine").exists()


def test_destroy_removes_the_network(cloud: Cloud) -> None:
    cloud.backend.destroy()
    assert subprocess.run(["ip", "link", "show", BRIDGE], capture_output=True).returncode != 0
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert f"localcloud_{BRIDGE}" not in tables
    assert POD_RANGE not in subprocess.run(["ip", "route"], capture_output=True, text=True).stdout
    assert not list(Path("/sys/fs/cgroup").glob(f"*/localcloud.{BRIDGE}"))


def _netns() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def wait_for(probe: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{probe} never succeeded")
