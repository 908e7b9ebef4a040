"""SSH against a real OpenSSH server on loopback, started and stopped by these tests."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from cluster import pki, ssh
from cluster.errors import CloudError, ClusterTimeout, PrereqError

SSHD = Path("/usr/sbin/sshd")
pytestmark = pytest.mark.skipif(not SSHD.exists(), reason="openssh-server is not installed")


class FakeClock:
    """Monotonic time that only moves when slept, so retries run instantly."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_key(path: Path) -> str:
    private, public = pki.new_ssh_keypair("test")
    path.write_bytes(private)
    path.chmod(0o600)
    return public


@contextlib.contextmanager
def run_sshd(workdir: Path, port: int, host_key: Path, authorized: Path) -> Iterator[None]:
    """sshd -D on 127.0.0.1:port until the block ends; stopped by its PID."""
    config = workdir / f"sshd_config_{port}"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
        f"PidFile {workdir}/sshd_{port}.pid\nAuthorizedKeysFile {authorized}\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nLogLevel ERROR\n"
    )
    server = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE)
    try:
        for _ in range(200):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert server.poll() is None, server.stderr.read().decode()
            time.sleep(0.02)
        yield
    finally:
        server.terminate()
        server.wait(timeout=10)
        server.stderr.close()


@pytest.fixture(scope="module", autouse=True)
def privsep_dir() -> Iterator[None]:
    """sshd refuses to start without its privilege-separation directory; make it if missing
    and remove it afterwards if these tests made it."""
    path = Path("/run/sshd")
    made = not path.exists()
    path.mkdir(mode=0o755, exist_ok=True)
    yield
    if made:
        with contextlib.suppress(OSError):
            path.rmdir()


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, object]:
    work = tmp_path_factory.mktemp("ssh")
    host_public = write_key(work / "host_key")
    other_host_public = write_key(work / "other_host_key")
    client_public = write_key(work / "id_ed25519")
    (work / "authorized_keys").write_text(client_public + "\n")
    write_key(work / "stranger_key")
    return {"work": work, "host": host_public, "other_host": other_host_public}


@pytest.fixture(scope="module")
def server(keys) -> Iterator[ssh.SSHTarget]:
    work: Path = keys["work"]  # type: ignore[assignment]
    port = free_port()
    with run_sshd(work, port, work / "host_key", work / "authorized_keys"):
        yield ssh.SSHTarget(
            host="127.0.0.1",
            port=port,
            user="root",
            private_key_path=work / "id_ed25519",
            host_key=str(keys["host"]),
            name="demo-master",
        )


def test_run_returns_exit_status_stdout_and_stderr(server):
    with ssh.connect(server, deadline=30) as session:
        status, out, err = session.run("echo hello; echo oops >&2; exit 3", timeout=30)
        assert (status, out, err) == (3, "hello\n", "oops\n")
        assert session.run("id -un", timeout=30).stdout == "root\n"


def test_large_interleaved_output_does_not_stall(server):
    script = "(yes o | head -c 3000000) & (yes e | head -c 3000000 >&2); wait"
    with ssh.connect(server, deadline=30) as session:
        result = session.run(script, timeout=60)
    assert result.exit_status == 0
    assert len(result.stdout) == len(result.stderr) == 3_000_000


def test_fetch_returns_the_exact_bytes(server, tmp_path):
    remote = tmp_path / "dir with space" / "ca.crt"
    remote.parent.mkdir()
    payload = os.urandom(100_000) + b"'\"$(reboot)"
    remote.write_bytes(payload)
    with ssh.connect(server, deadline=30) as session:
        assert session.fetch(str(remote)) == payload
        with pytest.raises(CloudError, match=r"cannot read /nonexistent on demo-master at 127"):
            session.fetch("/nonexistent")


def test_a_command_past_its_timeout_raises_cluster_timeout(server):
    with ssh.connect(server, deadline=30) as session:
        with pytest.raises(ClusterTimeout, match="did not finish within 0.3s"):
            session.run("sleep 30", timeout=0.3)
        assert session.run("true", timeout=30).exit_status == 0


def test_a_different_host_key_is_refused_at_once(server, keys):
    clock = FakeClock()
    impostor = replace(server, host_key=str(keys["other_host"]))
    with pytest.raises(CloudError) as caught:
        ssh.connect(impostor, deadline=60, clock=clock)
    assert str(caught.value).startswith(
        "host key of demo-master at 127.0.0.1 does not match the key it published; "
        "refusing to connect"
    )
    assert caught.value.exit_code == 4
    assert clock.sleeps == []


def test_a_key_the_vm_does_not_accept_is_retried_then_reported(server, keys):
    clock = FakeClock()
    stranger = replace(server, private_key_path=keys["work"] / "stranger_key")
    with pytest.raises(CloudError, match="does not accept kube-up's ssh key"):
        ssh.connect(stranger, deadline=3, clock=clock)
    assert len(clock.sleeps) >= 2 and sum(clock.sleeps) == pytest.approx(3)


def test_refused_connections_are_retried_until_the_deadline(keys, server):
    clock = FakeClock()
    closed = replace(server, port=free_port())
    with pytest.raises(CloudError) as caught:
        ssh.connect(closed, deadline=5, clock=clock)
    assert f"cannot ssh to demo-master at 127.0.0.1 port {closed.port} as root within 5s" in str(
        caught.value
    )
    assert len(clock.sleeps) >= 3


def test_connect_waits_for_an_sshd_that_is_still_starting(keys, server):
    work: Path = keys["work"]
    late = replace(server, port=free_port())
    started = threading.Event()
    stop = threading.Event()

    def boot_later() -> None:
        time.sleep(0.7)
        with run_sshd(work, late.port, work / "host_key", work / "authorized_keys"):
            started.set()
            stop.wait(30)

    booter = threading.Thread(target=boot_later)
    booter.start()
    try:
        with ssh.connect(late, deadline=30) as session:
            assert started.is_set()
            assert session.run("echo up", timeout=30).stdout == "up\n"
    finally:
        stop.set()
        booter.join()


@pytest.mark.parametrize("host_key", ["", "ssh-ed25519", "ssh-ed25519 !!!notbase64", "x AAAA"])
def test_a_malformed_published_host_key_is_a_cloud_error(server, host_key):
    with pytest.raises(CloudError, match="is not an OpenSSH public key"):
        ssh.connect(replace(server, host_key=host_key), deadline=1)


def test_an_unusable_private_key_is_a_prereq_error(server, tmp_path):
    (tmp_path / "garbage").write_text("not a key")
    with pytest.raises(PrereqError, match="is unusable"):
        ssh.connect(replace(server, private_key_path=tmp_path / "garbage"), deadline=1)
    with pytest.raises(PrereqError, match="is unusable"):
        ssh.connect(replace(server, private_key_path=tmp_path / "missing"), deadline=1)
