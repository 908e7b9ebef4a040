"""The daemon: CLI serve/status/stop, ensure_running, restarts that keep state, clear errors;
and object storage through google-cloud-storage."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1, storage

from localcloud import daemon
from localcloud.testing import compute_clients
from tests.localcloud_schema import Validator
from tests.localcloud_support import REGION, ZONE, create_instance, http, make_network


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "localcloud", *args], capture_output=True, text=True, timeout=120
    )


def one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_cli_serve_status_stop(tmp_path: Path) -> None:
    state = tmp_path / "state"
    started = cli("serve", "--state-dir", str(state), "--latency-scale", "0")
    assert started.returncode == 0, started.stderr
    info = json.loads(started.stdout)
    try:
        assert info["backend"] == "simulated" and info["compute"].startswith("http://127.0.0.1:")
        status = cli("status", "--state-dir", str(state))
        assert status.returncode == 0 and json.loads(status.stdout)["pid"] == info["pid"]
        assert (state / "daemon.pid").read_text().strip() == str(info["pid"])
        assert http(info["compute"] + "/compute/v1/projects/p")[0] == 200
        again = cli("serve", "--state-dir", str(state))
        assert again.returncode == 1 and "already serving" in again.stderr
        ep = daemon.ensure_running(state)
        assert (ep.pid, ep.compute) == (info["pid"], info["compute"])
        with pytest.raises(daemon.DaemonError, match="runs backend 'simulated'"):
            daemon.ensure_running(state, backend="machines")
    finally:
        stopped = cli("stop", "--state-dir", str(state))
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert cli("status", "--state-dir", str(state)).returncode == 3
    assert not (state / "endpoints.json").exists()
    assert "was not running" in cli("stop", "--state-dir", str(state)).stdout
    assert (state / "localcloud.log").stat().st_mode & 0o077 == 0


def test_bad_input_is_one_clear_line(tmp_path: Path) -> None:
    bad = tmp_path / "faults.yaml"
    bad.write_text("rules:\n  - fault: meteor\n")
    one_line_error(
        cli("serve", "--state-dir", str(tmp_path / "s"), "--faults", str(bad)),
        "fault rule 0",
        "meteor",
    )
    one_line_error(
        cli(
            "serve", "--state-dir", str(tmp_path / "s"), "--faults", str(tmp_path / "missing.yaml")
        ),
        "does not exist",
    )
    quotas = tmp_path / "quotas.yaml"
    quotas.write_text("CPUS: many\n")
    one_line_error(
        cli("serve", "--state-dir", str(tmp_path / "s"), "--quotas", str(quotas)), "CPUS"
    )
    one_line_error(
        cli("serve", "--state-dir", str(tmp_path / "s"), "--latency-scale", "-1"), "--latency-scale"
    )
    # A state dir made for one backend refuses another.
    state = tmp_path / "sim"
    assert cli("serve", "--state-dir", str(state)).returncode == 0
    assert cli("stop", "--state-dir", str(state)).returncode == 0
    one_line_error(
        cli("serve", "--state-dir", str(state), "--backend", "machines"),
        "backend 'simulated'",
        "--state-dir",
    )


def test_restart_keeps_state_and_resumes(tmp_path: Path) -> None:
    state, record = tmp_path / "state", tmp_path / "responses.jsonl"
    ep = daemon.ensure_running(state, latency_scale=0.0, rate=0, record=record)
    c = compute_clients(ep.compute)
    project = "restart"
    make_network(c, project, cidr="10.77.0.0/24")
    vm = create_instance(c, project, "keeper")
    c.routes.insert(
        project=project,
        route_resource=compute_v1.Route(
            name="pods",
            network="global/networks/net",
            dest_range="10.250.1.0/24",
            next_hop_instance=vm.self_link,
        ),
    ).result(timeout=30)
    c.firewalls.insert(
        project=project,
        firewall_resource=compute_v1.Firewall(
            name="ssh",
            network="global/networks/net",
            allowed=[compute_v1.Allowed(I_p_protocol="tcp", ports=["22"])],
        ),
    ).result(timeout=30)
    http(
        ep.admin + "/faults",
        "POST",
        {"rules": [{"api": "compute.instances.stop", "fault": "slow_operation", "seconds": 2}]},
    )
    pending = c.instances.stop(project=project, zone=ZONE, instance="keeper")
    assert daemon.stop(state)

    ep2 = daemon.ensure_running(state, latency_scale=0.0, rate=0, record=record)
    assert ep2.pid != ep.pid and ep2.compute == ep.compute and ep2.storage == ep.storage
    c2 = compute_clients(ep2.compute)
    again = c2.instances.get(project=project, zone=ZONE, instance="keeper")
    assert again.id == vm.id and again.network_interfaces[0].network_i_p == "10.77.0.2"
    # The operation accepted before the restart finishes after it.
    done = c2.zone_operations.wait(project=project, zone=ZONE, operation=pending.name)
    assert done.status.name == "DONE" and not done.error.errors
    assert c2.instances.get(project=project, zone=ZONE, instance="keeper").status == "TERMINATED"
    told = http(ep2.admin + "/backend")[1]
    assert told["subnets"] == {"10.77.0.0/24": "10.77.0.1"}
    assert told["routes"] == [["10.250.1.0/24", "10.77.0.2"]] and told["firewalls"] == ["ssh"]
    assert [s.name for s in c2.subnetworks.list(project=project, region=REGION)] == ["net-sub"]
    assert daemon.stop(state)
    assert not Validator().check_file(record)


def test_storage_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state"
    ep = daemon.ensure_running(state, latency_scale=0.0)
    try:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", ep.storage)
        client = storage.Client(project="proj", credentials=AnonymousCredentials())
        bucket = client.create_bucket("kubernetes-staging-proj")
        payload = bytes(range(256)) * 4096  # 1 MiB, binary
        bucket.blob("devel/kubernetes-server-linux-amd64.tar.gz").upload_from_string(payload)
        local = tmp_path / "salt.tar.gz"
        local.write_bytes(b"salt" * 1000)
        bucket.blob("devel/kubernetes-salt.tar.gz").upload_from_filename(str(local))
        names = [b.name for b in client.list_blobs("kubernetes-staging-proj", prefix="devel/")]
        assert names == [
            "devel/kubernetes-salt.tar.gz",
            "devel/kubernetes-server-linux-amd64.tar.gz",
        ]
        got = (
            client.bucket("kubernetes-staging-proj")
            .blob("devel/kubernetes-server-linux-amd64.tar.gz")
            .download_as_bytes()
        )
        assert got == payload
    finally:
        daemon.stop(state)
    # Data lives under the state dir: a restarted daemon serves it again.
    ep = daemon.ensure_running(state, latency_scale=0.0)
    try:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", ep.storage)
        client = storage.Client(project="proj", credentials=AnonymousCredentials())
        blob = client.bucket("kubernetes-staging-proj").blob("devel/kubernetes-salt.tar.gz")
        assert blob.download_as_bytes() == b"salt" * 1000
        assert (state / "storage").is_dir()
    finally:
        daemon.stop(state)


def test_start_timeout_reports_the_log(tmp_path: Path) -> None:
    """A daemon that dies while starting is reported with its last log line, quickly."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "localcloud.db").write_text("this is not a database")
    start = time.monotonic()
    with pytest.raises(daemon.DaemonError, match="database|not a database"):
        daemon.ensure_running(state)
    assert time.monotonic() - start < 30


def test_concurrent_ensure_running_share_one_daemon(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with ThreadPoolExecutor(3) as pool:
        found = list(pool.map(lambda _: daemon.ensure_running(state, latency_scale=0.0), range(3)))
    try:
        assert len({ep.pid for ep in found}) == 1
        assert daemon.running(state) == found[0]
    finally:
        daemon.stop(state)
