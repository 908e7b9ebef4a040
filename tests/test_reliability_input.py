"""Hostile input: every setting, environment variable and ``--config`` file, a corrupt release,
and a full disk. Each must end in one clear line and a documented exit code, with nothing done
in any cloud and nothing half-written on disk.

tests/test_config.py checks the configuration functions (any input: a config or one line);
here the same kind of input goes through the commands themselves (their real entry points, and
a sample through the console scripts) and the property is what happens around them: exit 2,
exactly one line on stderr naming the setting (or the file), no traceback, no request to any
cloud (a running localcloud's call counter stays at 0 and a listener standing in for GCE, GCS,
AWS and the metadata servers accepts no connection) and no file written. The values are
invalid by rules written here, independently of the product's (GCE's naming rules, private
IPv4 ranges, counts the default ranges cannot hold...).
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import json
import math
import os
import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cluster import cli
from cluster.config import ProviderDefaults
from cluster.errors import PrereqError
from cluster.kubeconfig import remove_context, write_kubeconfig
from cluster.pki import new_ca
from tests.reliability_cloud import Key, SimCloud, sim_cloud, write_release
from tests.reliability_runner import run_cli
from tests.test_node_script import Cluster as NodeVm
from tests.vm_http_standin import serve as serve_vm

BIN = Path(__file__).resolve().parents[1] / ".venv" / "bin"
COMMANDS = {
    "kube-up": cli.kube_up,
    "kube-down": cli.kube_down,
    "kube-push": cli.kube_push,
    "validate-cluster": cli.validate_cluster,
}
RFC1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
GCE_ZONE = re.compile(r"[a-z]+-[a-z]+[0-9]{1,2}-[a-z]")
# Default pod range of the local and GCE providers: one /24 per VM, the master's included.
DEFAULT_MAX_NODES = 255
PRIVATE = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]


class Listener:
    """A loopback TCP port standing in for every cloud endpoint: it counts connections."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


@dataclass
class Sandbox:
    """Where hostile runs happen: a quiet localcloud, a listener, private paths."""

    cloud: SimCloud
    listener: Listener
    root: Path
    bystanders: dict[Key, dict[str, Any]]

    def env(self, **values: str) -> dict[str, str]:
        endpoint = f"127.0.0.1:{self.listener.port}"
        env = self.cloud.env(
            CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE=f"http://{endpoint}/compute/v1/",
            STORAGE_EMULATOR_HOST=f"http://{endpoint}",
            AWS_ENDPOINT_URL=f"http://{endpoint}",
            AWS_ACCESS_KEY_ID="hostile-input-test",
            AWS_SECRET_ACCESS_KEY="hostile-input-test",
            AWS_EC2_METADATA_DISABLED="true",
            GCE_METADATA_HOST=endpoint,
            GCE_METADATA_IP=endpoint,
            NO_GCE_CHECK="True",
        )
        env.pop("RELIABILITY_ROOT")
        env.update(values)
        return env

    def reset(self) -> None:
        """Zero the counters a refused run must leave at zero."""
        self.cloud.admin("DELETE", "stats")
        self.listener.connections = 0

    def untouched(self) -> list[str]:
        """What a refused run did that it must not have ([] if nothing)."""
        problems = []
        if self.listener.connections:
            problems.append(f"{self.listener.connections} connection(s) to a cloud endpoint")
        calls = self.cloud.calls()
        if calls:
            problems.append(f"{calls} call(s) to localcloud")
        written = (
            sorted(p.name for p in self.cloud.run_root.iterdir())
            if self.cloud.run_root.exists()
            else []
        )
        if written:
            problems.append(f"wrote {written} under {self.cloud.run_root}")
        return problems


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    root = tmp_path_factory.mktemp("hostile")
    listener = Listener()
    # Bystanders keep the zone from emptying, so a kube-down here never stops the daemon.
    with sim_cloud(root) as cloud:
        yield Sandbox(cloud, listener, root, cloud.inventory())
    listener.close()


@contextlib.contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_entry(command: str, argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """A command's real entry point, in this process (as fast as hypothesis needs)."""
    out, err = io.StringIO(), io.StringIO()
    with environment(env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = COMMANDS[command](argv)
    return code, out.getvalue(), err.getvalue()


def refusal_problems(command: str, code: int, out: str, err: str, names: str) -> list[str]:
    """Why this is not a clean refusal of a setting: exit 2, one line naming it."""
    lines = [line for line in err.splitlines() if line.strip()]
    problems = []
    if code != 2:
        problems.append(f"exit {code}")
    if out or len(lines) != 1:
        problems.append(f"expected one line on stderr, got {out!r} {lines}")
    elif not lines[0].startswith(f"{command}: ") or names not in lines[0]:
        problems.append(f"the line does not name {names!r}: {lines[0]}")
    if "Traceback" in err:
        problems.append("traceback")
    return problems


# --- invalid values, by rules written here --------------------------------------------------

_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
_tricky = [
    "Kube", "kube_1", "1kube", "kube-", "-kube", "kübe", "kube\u200b", "\u202ekube",
    "ｋube", "kube\ncluster", "kube cluster", "kube.", "k" * 64, "kube\t",
]  # fmt: skip


def _gce_refuses(value: str, longest: int) -> bool:
    text = value.strip()
    return bool(text) and not (RFC1035.fullmatch(text) and len(text) <= longest)


def bad_names(longest: int) -> st.SearchStrategy[str]:
    """Names GCE refuses (or that leave no room for kube-up's suffixes), never blank."""
    return st.one_of(
        st.sampled_from(_tricky), _text.filter(lambda s: _gce_refuses(s, longest))
    ).filter(lambda s: _gce_refuses(s, longest))


def bad_counts() -> st.SearchStrategy[str]:
    too_many_or_few = st.integers().filter(lambda n: not 1 <= n <= DEFAULT_MAX_NODES)
    not_counts = _text.filter(lambda s: s.strip() and not re.fullmatch(r"[0-9]+", s.strip()))
    return st.one_of(too_many_or_few.map(str), not_counts)


def _not_private_cidr(text: str) -> bool:
    try:
        net = ipaddress.ip_network(text.strip())
    except ValueError:
        return True
    return net.version != 4 or not any(net.subnet_of(p) for p in PRIVATE)


def bad_cidrs() -> st.SearchStrategy[str]:
    host_bits = st.integers(1, 255).map(lambda n: f"10.240.{n}.0/16")
    public = st.sampled_from(["8.8.0.0/16", "1.0.0.0/8", "100.63.0.0/16", "0.0.0.0/0"])
    ipv6 = st.sampled_from(["fd00::/64", "::/0", "2001:db8::/32"])
    garbage = _text.filter(lambda s: s.strip() and _not_private_cidr(s))
    return st.one_of(host_bits, public, ipv6, garbage)


def overlapping_subnets() -> st.SearchStrategy[str]:
    """Private subnets inside the default pod range (10.244.0.0/16) or service range."""
    inside_pods = st.integers(0, 15).map(lambda n: f"10.244.{n * 16}.0/20")
    inside_services = st.integers(0, 255).map(lambda n: f"10.0.{n}.0/24")
    return st.one_of(inside_pods, inside_services)


def bad_durations(low: float, high: float) -> st.SearchStrategy[str]:
    numbers = st.floats(allow_nan=True).filter(lambda f: math.isnan(f) or not low <= f <= high)
    maybe_valid = re.compile(r"[0-9.]+\s*[smh]?")
    garbage = _text.filter(lambda s: s.strip() and not maybe_valid.fullmatch(s.strip()))
    return st.one_of(numbers.map(str), garbage, st.sampled_from(["-2s", "1d", "2 hours", "inf"]))


_zones = _text.filter(lambda s: s.strip() and not GCE_ZONE.fullmatch(s.strip()))
_providers = _text.filter(lambda s: s.strip().lower() not in ("", "local", "gce", "aws"))
_versions = _text.filter(lambda s: s.strip() and s.strip()[:1] != "v")
_disks = st.sampled_from(["0", "5GB", "-20GB", "1TB", "99999999GB", "big", "20 GiB"])
_buckets = st.sampled_from(["UPPER", "a", "has space", "x" * 64, "ünï", "-dash"])
_switch_words = ("true", "yes", "on", "1", "false", "no", "off", "0")
_switches = _text.filter(lambda s: s.strip() and s.strip().lower() not in _switch_words)
_domains = ["a..b", ".local", "local.", "x" * 64 + ".local", "cluster.local/", "a.b.c.d.e.f"]
# Up to five lowercase RFC 1123 labels joined by dots.
_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(\.{_LABEL}){{0,4}}", re.ASCII)
_not_domains = _text.filter(lambda s: s.strip() and not _DOMAIN.fullmatch(s.strip()))
DURATIONS = ("KUBE_UP_POLL_INTERVAL", "KUBE_UP_TIMEOUT")
SWITCHES = ("ENABLE_CLUSTER_DNS",)
# (setting, invalid values for it, the phrase its error line must contain)
SETTINGS: list[tuple[str, st.SearchStrategy[str], str]] = [
    ("NUM_NODES", bad_counts(), "NUM_NODES="),
    ("NUM_MINIONS", bad_counts(), "NUM_MINIONS="),
    ("INSTANCE_PREFIX", bad_names(38), "INSTANCE_PREFIX="),
    ("NETWORK", bad_names(63), "NETWORK="),
    ("MASTER_TAG", bad_names(63), "MASTER_TAG="),
    ("NODE_TAG", bad_names(63), "NODE_TAG="),
    ("ZONE", _zones, "ZONE="),
    ("SUBNET_RANGE", st.one_of(bad_cidrs(), overlapping_subnets()), "SUBNET_RANGE="),
    ("CLUSTER_IP_RANGE", st.one_of(bad_cidrs(), st.just("10.240.0.0/16")), "CLUSTER_IP_RANGE="),
    ("SERVICE_CLUSTER_IP_RANGE", bad_cidrs(), "SERVICE_CLUSTER_IP_RANGE="),
    ("KUBE_UP_POLL_INTERVAL", bad_durations(0.1, 60), "KUBE_UP_POLL_INTERVAL="),
    ("KUBE_UP_TIMEOUT", bad_durations(10, 86400), "KUBE_UP_TIMEOUT="),
    ("MASTER_DISK_SIZE", _disks, "MASTER_DISK_SIZE="),
    ("KUBE_VERSION", _versions, "KUBE_VERSION="),
    ("STAGING_BUCKET", _buckets, "STAGING_BUCKET="),
    ("ENABLE_CLUSTER_DNS", _switches, "ENABLE_CLUSTER_DNS="),
    ("DNS_DOMAIN", st.one_of(st.sampled_from(_domains), _not_domains), "DNS_DOMAIN="),
    ("KUBERNETES_PROVIDER", _providers, "KUBERNETES_PROVIDER="),
]
_SETTING_NAMES = [name for name, _, _ in SETTINGS]
KNOWN = ProviderDefaults.load("local").known_names()
_yaml_wrong_types = st.one_of(
    st.booleans(),
    st.none(),
    st.floats().filter(lambda f: not f.is_integer()),
    st.lists(st.integers(), min_size=1, max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), min_size=1, max_size=2),
)
_malformed_yaml = st.sampled_from(
    [
        "NUM_NODES: [",
        "NUM_NODES: 'unterminated",
        "\tNUM_NODES: 3",
        "NUM_NODES: 3\n  ZONE: x: y",
        "num_nodes: 3\nNUM_NODES: 4",
        "---\nNUM_NODES: 3\n---\nZONE: us-east1-b\n",
        "- NUM_NODES\n- 3",
        "just a sentence",
        "ZONE: !!python/object/apply:os.system ['touch /tmp/pwned']",
        "NUM_NODES: &a [*a]",
        "[" * 2000 + "]" * 2000,
        "\x00\x01\x02 binary",
        "NUM_NODES: 3\n\x85\u2028ZONE: x",
        "? [complex, key]\n: value",
    ]
)


@dataclass(frozen=True)
class Hostile:
    command: str
    env: dict[str, str]
    config_text: str | None  # written to --config when not None
    names: str  # what the error line must contain


@st.composite
def hostile_inputs(draw: st.DrawFn) -> Hostile:
    command = draw(st.sampled_from(sorted(COMMANDS)))
    where = draw(st.sampled_from(["env", "file", "wrong type", "unknown key", "malformed"]))
    if where in ("env", "file"):
        index = draw(st.integers(0, len(SETTINGS) - 1))
        name, values, phrase = SETTINGS[index]
        value = draw(values)
        if where == "env":
            return Hostile(command, {name: value}, None, phrase)
        return Hostile(command, {}, yaml.safe_dump({name: value}), phrase)
    if where == "wrong type":
        name = draw(st.sampled_from(_SETTING_NAMES))
        values = _yaml_wrong_types
        if name in DURATIONS:  # a fractional number of seconds is a fine duration
            values = values.filter(lambda v: not isinstance(v, float))
        if name in SWITCHES:  # YAML true and false are what a switch takes
            values = values.filter(lambda v: not isinstance(v, bool))
        text = yaml.safe_dump({name: draw(values)})
        return Hostile(command, {}, text, f"{name}=")
    if where == "unknown key":
        key = draw(st.from_regex(r"[A-Za-z][A-Za-z_]{1,20}", fullmatch=True))
        key = key if key.upper() not in KNOWN else key + "_X"
        text = yaml.safe_dump({key: draw(st.integers())})
        return Hostile(command, {}, text, "unknown setting")
    # The line names the file, whether it is not YAML or holds a bad value.
    return Hostile(command, {}, draw(_malformed_yaml), "cluster.yaml")


@settings(
    max_examples=400,
    deadline=None,
    derandomize=True,  # the same 400 inputs on every run
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(case=hostile_inputs())
def test_hostile_settings_are_refused_in_one_line_before_any_cloud_call(
    sandbox: Sandbox, case: Hostile
) -> None:
    argv = []
    if case.config_text is not None:
        config = sandbox.root / "cluster.yaml"
        config.write_text(case.config_text, encoding="utf-8", errors="surrogateescape")
        argv = ["--config", str(config)]
    sandbox.reset()
    code, out, err = run_entry(case.command, argv, sandbox.env(**case.env))
    problems = refusal_problems(case.command, code, out, err, case.names)
    problems += sandbox.untouched()
    assert not problems, f"{case}: {problems}"


@pytest.mark.parametrize(
    ("command", "env", "config_text", "names"),
    [
        ("kube-up", {"NUM_NODES": "-3"}, None, "NUM_NODES='-3'"),
        ("kube-up", {"INSTANCE_PREFIX": "Prod_Cluster"}, None, "INSTANCE_PREFIX="),
        ("kube-up", {"SUBNET_RANGE": "10.244.16.0/20"}, None, "overlaps"),
        ("kube-down", {"KUBERNETES_PROVIDER": "azure"}, None, "KUBERNETES_PROVIDER="),
        ("kube-push", {}, "NUM_NODES: [", "not valid YAML"),
        ("kube-up", {}, "NUM_NODE: 3\n", "did you mean NUM_NODES"),
        ("validate-cluster", {}, "ZONE: 'us-central1-b\u202e'\n", "ZONE="),
        ("kube-up", {"KUBERNETES_PROVIDER": "gce", "NUM_NODES": "0"}, None, "NUM_NODES='0'"),
        ("kube-up", {"KUBERNETES_PROVIDER": "aws", "AWS_ZONE": "mars-1a"}, None, "AWS_ZONE="),
    ],
)
def test_console_scripts_refuse_hostile_settings_the_same_way(
    sandbox: Sandbox, command: str, env: dict[str, str], config_text: str | None, names: str
) -> None:
    argv = []
    if config_text is not None:
        config = sandbox.root / f"{command}.yaml"
        config.write_text(config_text)
        argv = ["--config", str(config)]
    sandbox.reset()
    proc = subprocess.run(
        [str(BIN / command), *argv],
        env=sandbox.env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    problems = refusal_problems(command, proc.returncode, proc.stdout, proc.stderr, names)
    assert not problems + sandbox.untouched(), proc.stderr


@pytest.mark.parametrize("config", ["missing.yaml", "a-directory", "not-utf8.yaml", "a-loop.yaml"])
def test_an_unusable_config_file_is_refused_in_one_line(sandbox: Sandbox, config: str) -> None:
    files = sandbox.root / "config-files"
    files.mkdir(exist_ok=True)
    (files / "a-directory").mkdir(exist_ok=True)
    (files / "not-utf8.yaml").write_bytes(b"NUM_NODES: \xff\xfe\n")
    if not (files / "a-loop.yaml").is_symlink():
        (files / "a-loop.yaml").symlink_to(files / "a-loop.yaml")
    sandbox.reset()
    code, out, err = run_entry("kube-up", ["--config", str(files / config)], sandbox.env())
    assert not refusal_problems("kube-up", code, out, err, "--config") + sandbox.untouched()


# --- a corrupt release ----------------------------------------------------------------------


def _corrupt(release: Path, how: str) -> str:
    """Damage ``release`` in one way; return a phrase the error line must contain."""
    manifest = release / "release.json"
    if how == "flipped byte":
        tarball = release / "kubernetes-server-linux-amd64.tar.gz"
        data = bytearray(tarball.read_bytes())
        data[0] ^= 0xFF
        tarball.write_bytes(bytes(data))
        return "has sha256"
    if how == "truncated":
        tarball = release / "kubernetes-salt.tar.gz"
        tarball.write_bytes(tarball.read_bytes()[:3])
        return "has sha256"
    if how == "missing file":
        (release / "kubernetes-node-images.tar.gz").unlink()
        return "No such file"
    if how == "manifest not JSON":
        manifest.write_text('{"artifacts": ')
        return "release.json is unusable"
    if how == "manifest without an artifact":
        data = json.loads(manifest.read_text())
        del data["artifacts"]["salt_runtime"]
        manifest.write_text(json.dumps(data))
        return "lists no salt_runtime"
    data = json.loads(manifest.read_text())
    data["artifacts"]["server"] = ["not", "a", "mapping"]
    manifest.write_text(json.dumps(data))
    return "release.json is unusable"


@pytest.mark.parametrize(
    "how",
    [
        "flipped byte",
        "truncated",
        "missing file",
        "manifest not JSON",
        "manifest without an artifact",
        "manifest of the wrong shape",
    ],
)
@pytest.mark.parametrize("command", ["kube-up", "kube-push"])
def test_a_corrupt_release_is_refused_before_any_cloud_call(
    sandbox: Sandbox, tmp_path: Path, how: str, command: str
) -> None:
    release = write_release(tmp_path / "release")
    phrase = _corrupt(release, how)
    sandbox.reset()
    code, out, err = run_entry(command, ["--release-dir", str(release)], sandbox.env())
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 3, err
    assert lines[-1].startswith(f"{command}: release") and phrase in lines[-1], lines[-1]
    assert "Traceback" not in err and not out
    assert sandbox.untouched() == []


def _unwritable(root: Path, how: str) -> Path:
    """A path kube-up could not write its kubeconfig or credentials file to, made ``how``."""
    if how == "under a file":
        (root / "plain-file").write_text("x")
        return root / "plain-file" / "deeper" / "config"
    if how == "not a mapping":
        (root / "list.yaml").write_text("- a\n- b\n")
        return root / "list.yaml"
    (root / "a-dir").mkdir()
    return root / "a-dir"


@pytest.mark.parametrize(
    ("variable", "how", "phrase"),
    [
        ("KUBECONFIG", "under a file", "Not a directory"),
        ("KUBECONFIG", "not a mapping", "not a YAML mapping"),
        ("KUBECONFIG", "a directory", "IsADirectoryError"),
        ("KUBERNETES_AUTH_FILE", "under a file", "Not a directory"),
        ("KUBERNETES_AUTH_FILE", "a directory", "Is a directory"),
    ],
)
def test_an_unwritable_kubeconfig_or_credentials_file_is_refused_before_any_cloud_call(
    sandbox: Sandbox, tmp_path: Path, variable: str, how: str, phrase: str
) -> None:
    """Found out only after the cluster is up, it would leave the user a cluster and no way in."""
    target = _unwritable(tmp_path, how)
    argv = ["--release-dir", str(sandbox.cloud.release)]
    sandbox.reset()
    code, out, err = run_entry("kube-up", argv, sandbox.env(**{variable: str(target)}))
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 3, err
    assert lines[-1].startswith("kube-up: ") and phrase in lines[-1], lines[-1]
    assert "Traceback" not in err and not out
    assert sandbox.untouched() == []


@pytest.fixture
def node_vm(tmp_path: Path) -> Iterator[NodeVm]:
    with serve_vm() as standin:
        yield NodeVm(standin, tmp_path)


@pytest.mark.parametrize(
    ("artifact", "damage", "tree"),
    [
        ("server_binary_tar", b"this is not a tarball", "opt/kubernetes/server/bin"),
        ("salt_tar", b"\x1f\x8b\x08\x00 a gzip header and nothing after", "srv/salt"),
    ],
)
def test_vm_refuses_a_corrupt_tarball_whose_hash_matches_and_installs_nothing(
    node_vm: NodeVm, artifact: str, damage: bytes, tree: str
) -> None:
    """The release was built broken (kube-env's hash is the broken file's): unpacking fails in
    one clear line and the tree it would have made is not there, not even in part (trees
    before it are complete). A download whose hash differs from kube-env's is
    tests/test_node_script.py's test_corrupt_artifact_fails_and_leaves_nothing."""
    node_vm.content[artifact] = damage
    node_vm.publish("node")
    node_vm.standin.set_attribute("pod-cidr", "10.244.3.0/24")
    proc = node_vm.run()
    assert proc.returncode != 0
    name = node_vm.names[artifact]
    assert "kube-up: error: could not unpack" in proc.stderr and name in proc.stderr
    assert re.search(r"kube-up: FAILED at \S+", proc.stdout.strip().splitlines()[-1])
    root = node_vm.root
    assert not (root / tree).exists()
    assert not (root / "opt/kube-salt").exists()  # nothing after the failure either
    assert not list((root / "var/cache/kubernetes-install").glob("unpack-*"))


# --- a full disk ------------------------------------------------------------------------------


@contextlib.contextmanager
def tiny_tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` at ``path`` for the block (needs root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size},mode=0700"
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _half_written(directory: Path) -> list[str]:
    """Temp files left behind, and empty files (a write that stopped at 0 bytes)."""
    return [
        str(p)
        for p in directory.rglob("*")
        if p.is_file() and (p.name.endswith(".tmp") or p.stat().st_size == 0) and p.name != ".lock"
    ]


@pytest.mark.parametrize("size", ["24k", "48k", "64k"])
def test_a_full_state_disk_is_one_clear_line_and_a_rerun_with_room_finishes(
    sandbox: Sandbox, tmp_path: Path, size: str
) -> None:
    state = tmp_path / "state"
    env = sandbox.cloud.env(KUBE_UP_STATE_DIR=str(state))
    argv = ["--no-wait", "--release-dir", str(sandbox.cloud.release)]
    with tiny_tmpfs(state, size):
        full = run_cli("kube-up", argv, env, tmp_path / "full")
        lines = [line for line in full.stderr.splitlines() if line.strip()]
        assert full.returncode == 3, full.stderr
        assert lines[-1].startswith("kube-up: cannot write ") and "No space left" in lines[-1]
        assert "Traceback" not in full.stderr
        assert _half_written(state) == []
        subprocess.run(["mount", "-o", "remount,size=8m", str(state)], check=True)
        again = run_cli("kube-up", argv, env, tmp_path / "again")
        assert again.returncode == 0, again.stderr
        down = run_cli("kube-down", [], env, tmp_path / "down")
        assert down.returncode == 0, down.stderr
    assert set(sandbox.cloud.inventory()) == set(sandbox.bystanders)


def test_a_full_disk_never_costs_the_user_their_kubeconfig(tmp_path: Path) -> None:
    ca = new_ca("test-ca")
    with tiny_tmpfs(tmp_path / "kube", "8k") as kube:
        config = kube / "config"
        write_kubeconfig("existing", "https://203.0.113.1", ca.cert_pem, ca, path=config)
        before = config.read_bytes()
        filler = kube / "filler"
        with contextlib.suppress(OSError), filler.open("wb") as handle:
            handle.write(b"\0" * (1 << 20))
        for change in (
            lambda: write_kubeconfig("new", "https://203.0.113.2", ca.cert_pem, ca, path=config),
            lambda: remove_context("existing", path=config),
        ):
            with pytest.raises(PrereqError) as caught:
                change()
            assert "No space left" in str(caught.value) and "\n" not in str(caught.value)
            assert config.read_bytes() == before
            assert not list(kube.glob(".*.tmp"))
