"""Runs the repo's salt tree with the real salt (the venv's salt-call) in a private config dir."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from cluster.kube_env import render_kube_env
from tests.kube_env_samples import sample_inputs

REPO = Path(__file__).resolve().parent.parent
SALT_TREE = REPO / "salt"
SALT_CALL = Path(sys.executable).parent / "salt-call"

GRAINS = {
    "master": {"roles": ["kubernetes-master"], "cloud": "gce", "node_ip": "10.40.0.2"},
    "node": {
        "roles": ["kubernetes-pool"],
        "cloud": "gce",
        "cbr-cidr": "10.244.3.0/24",
        "node_ip": "10.40.0.7",
    },
}


@dataclass(frozen=True)
class State:
    """One state of a highstate: its function (``file.managed``) and flattened arguments."""

    fun: str
    args: dict[str, object]
    sls: str


def exec_start(state: State) -> list[str]:
    """The ExecStart command line (binary first) of a rendered systemd unit."""
    text = str(state.args["contents"])
    argv = []
    for line in text[text.index("ExecStart=") :].split("\n"):
        argv.append(line.removeprefix("ExecStart=").strip().rstrip("\\").strip())
        if not line.endswith("\\"):
            break
    return argv


def write_salt_config(root: Path, grains: dict, kube_env: str, tree: Path = SALT_TREE) -> Path:
    """A masterless config dir under ``root`` (nothing in /etc/salt); returns the dir."""
    conf, pillar = root / "conf", root / "pillar"
    conf.mkdir(parents=True)
    pillar.mkdir()
    minion = {
        "id": "test-minion",
        "file_client": "local",
        "root_dir": str(root),
        "file_roots": {"base": [str(tree)]},
        "pillar_roots": {"base": [str(pillar)]},
        "cachedir": str(root / "cache"),
        "pki_dir": str(root / "pki"),
        "sock_dir": str(root / "sock"),
        "log_file": str(root / "minion.log"),
        "enable_fqdns_grains": False,
    }
    (conf / "minion").write_text(yaml.safe_dump(minion))
    (conf / "grains").write_text(yaml.safe_dump(grains))
    (pillar / "top.sls").write_text("base:\n  '*':\n    - kube-env\n")
    (pillar / "kube-env.sls").write_text(kube_env)
    return conf


def salt_call(conf: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SALT_CALL), "--local", "-c", str(conf), "--out=json", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def show_highstate(conf: Path) -> dict[str, State]:
    """The compiled highstate by state id; fails the test with salt's message on errors."""
    proc = salt_call(conf, "state.show_highstate")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)["local"]
    assert isinstance(data, dict), f"salt reported errors: {data}"
    states: dict[str, State] = {}
    for state_id, body in data.items():
        for module, items in body.items():
            if module.startswith("__"):
                continue
            args: dict[str, object] = {}
            function = ""
            for item in items:
                if isinstance(item, dict):
                    args.update(item)
                else:
                    function = item
            args.pop("order", None)
            states[state_id] = State(f"{module}.{function}", args, body["__sls__"])
    return states


def role_config(
    root: Path, role: str, inputs: dict[str, object] | None = None, **grain_changes: object
) -> Path:
    """Config for ``role`` with the sample cluster's kube-env (changed by ``inputs``) as pillar."""
    grains = {**GRAINS[role], **grain_changes}
    grains = {k: v for k, v in grains.items() if v is not None}
    return write_salt_config(root, grains, render_kube_env(sample_inputs(**(inputs or {})), role))
