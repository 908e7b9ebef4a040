"""A simulated localcloud for the reliability tests, and what they check in it.

- :class:`SimCloud`: a daemon (simulated backend, no latency, no rate limit) and the private
  environment every CLI run gets (state dir, kubeconfig, credentials file, HOME).
- A tiny release (four small artifacts and their manifest): the simulated backend boots
  nothing, so staging 190 MB per run would only cost time.
- Bystanders: resources that belong to no cluster or to another one, some with names close to
  the cluster's. Every kube-down must leave them exactly as they were, and the instance among
  them keeps the zone from emptying (which would stop the daemon).
- :meth:`SimCloud.inventory`: everything in the project and in object storage, read straight
  from the APIs (not through the product's own listing code).
- :func:`health_problems`: what "healthy" means on the simulated backend: the resource set of a
  clean ``kube-up --no-wait`` and the cluster's pieces agreeing with each other and with the
  local state (CA, addresses, pod CIDRs and routes, staged hashes, file modes).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import stat
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from localcloud import daemon
from tests.localcloud_support import http

PROJECT = "kube-local"
ZONE = "us-central1-b"
REGION = "us-central1"
CLUSTER = "kubernetes"
NUM_NODES = 2
ARTIFACTS = {
    "server": "kubernetes-server-linux-amd64.tar.gz",
    "salt": "kubernetes-salt.tar.gz",
    "salt_runtime": "salt-runtime-py3.11-linux-amd64.tar.gz",
    "node_images": "kubernetes-node-images.tar.gz",
}
_LISTS = {
    "instance": f"zones/{ZONE}/instances",
    "disk": f"zones/{ZONE}/disks",
    "instance-group-manager": f"zones/{ZONE}/instanceGroupManagers",
    "address": f"regions/{REGION}/addresses",
    "subnetwork": f"regions/{REGION}/subnetworks",
    "global-address": "global/addresses",
    "network": "global/networks",
    "firewall": "global/firewalls",
    "route": "global/routes",
    "instance-template": "global/instanceTemplates",
}
Key = tuple[str, str]


def write_release(dest: Path, tag: str = "v1") -> Path:
    """A release dir whose four artifacts are a few bytes each (``tag`` changes their bytes)."""
    dest.mkdir(parents=True, exist_ok=True)
    artifacts = {}
    for key, name in ARTIFACTS.items():
        data = f"{key} {tag}\n".encode()
        (dest / name).write_bytes(data)
        artifacts[key] = {"file": name, "sha256": hashlib.sha256(data).hexdigest()}
    manifest = {
        "artifacts": artifacts,
        "kube_version": "v1.34.4",
        "server_source": "test",
        "pause_image": "registry.k8s.io/pause:3.10.1",
        "workload_image": "localhost/busybox:latest",
        "build_peak_rss_mb": None,
    }
    (dest / "release.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return dest


@dataclass
class SimCloud:
    root: Path
    endpoints: daemon.Endpoints
    release: Path

    @property
    def state_dir(self) -> Path:
        return self.root / "localcloud"

    @property
    def run_root(self) -> Path:
        """Everything a CLI run writes locally lives under here."""
        return self.root / "run"

    @property
    def cluster_state(self) -> Path:
        return self.run_root / "state" / CLUSTER

    def env(self, **extra: str) -> dict[str, str]:
        run = self.run_root
        values = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(run / "home"),
            "KUBERNETES_PROVIDER": "local",
            "LOCALCLOUD_BACKEND": "simulated",
            "LOCALCLOUD_STATE_DIR": str(self.state_dir),
            "KUBE_UP_STATE_DIR": str(run / "state"),
            "KUBECONFIG": str(run / "kube" / "config"),
            "KUBERNETES_AUTH_FILE": str(run / "kubernetes_auth"),
            "NUM_NODES": str(NUM_NODES),
            "KUBE_UP_POLL_INTERVAL": "0.1",
            "RELIABILITY_ROOT": str(run) + "/",
        }
        values.update(extra)
        return values

    # -- admin API -----------------------------------------------------------------------------

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = http(f"{self.endpoints.admin}/{path}", method, body)
        assert status == 200, f"admin {method} {path}: {status} {answer}"
        return answer

    def set_faults(self, schedule: dict[str, Any]) -> None:
        self.admin("POST", "faults", schedule)

    def clear_faults(self) -> dict[str, Any]:
        """Remove the schedule; return what it injected."""
        state = self.admin("GET", "faults")
        self.admin("DELETE", "faults")
        return state

    def calls(self) -> int:
        return self.admin("GET", "stats")["total"]

    # -- reading the cloud -------------------------------------------------------------------

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return http(f"{self.endpoints.compute}/compute/v1/projects/{PROJECT}/{path}", method, body)

    def storage(self) -> storage.Client:
        return storage.Client(
            project=PROJECT,
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=self.endpoints.storage),
        )

    def inventory(self) -> dict[Key, dict[str, Any]]:
        """Every resource of the project and every bucket, by (kind, name)."""
        found: dict[Key, dict[str, Any]] = {}
        for kind, path in _LISTS.items():
            token = ""
            while True:
                query = f"?maxResults=500{'&pageToken=' + token if token else ''}"
                status, page = self.api("GET", path + query)
                assert status == 200, f"list {path}: {status} {page}"
                for item in page.get("items", []):
                    found[(kind, item["name"])] = item
                token = page.get("nextPageToken", "")
                if not token:
                    break
        for bucket in self.storage().list_buckets():
            blobs = {
                b.name: {"metadata": b.metadata or {}, "data": b.download_as_bytes()}
                for b in bucket.list_blobs()
            }
            found[("bucket", bucket.name)] = {"objects": blobs}
        return found

    def wait_operation(self, operation: dict[str, Any]) -> None:
        link = operation["selfLink"].split(f"/projects/{PROJECT}/", 1)[1]
        deadline = time.monotonic() + 30
        while operation.get("status") != "DONE":
            assert time.monotonic() < deadline, f"operation {link} not done"
            time.sleep(0.05)
            _, operation = self.api("GET", link)
        assert "error" not in operation, operation

    def create(self, path: str, body: dict[str, Any]) -> None:
        status, operation = self.api("POST", path, body)
        assert status == 200, f"create {path}: {status} {operation}"
        self.wait_operation(operation)

    # -- bystanders ----------------------------------------------------------------------------

    def add_bystanders(self) -> None:
        """Resources kube-down must never touch: another cluster's, and no cluster's."""
        net = f"projects/{PROJECT}/global/networks/bystander-net"
        other = {"kube-up-cluster": "kubernetes-old"}
        self.create(
            "global/networks",
            {"name": "bystander-net", "autoCreateSubnetworks": False, "description": "hands off"},
        )
        self.create(
            f"regions/{REGION}/subnetworks",
            {
                "name": "kubernetes-subnet-old",
                "network": net,
                "ipCidrRange": "10.250.0.0/24",
                "description": "kube-up cluster kubernetes-old",
            },
        )
        self.create(
            "global/firewalls",
            {
                "name": "kubernetes-ssh-old",
                "network": net,
                "sourceRanges": ["0.0.0.0/0"],
                "allowed": [{"IPProtocol": "tcp", "ports": ["22"]}],
                "description": "kube-up cluster kubernetes-old",
            },
        )
        for name, labels in (("kubernetes-minion-old", other), ("plain-vm", None)):
            instance = {
                "name": name,
                "machineType": f"zones/{ZONE}/machineTypes/e2-small",
                "networkInterfaces": [{"network": net}],
                "disks": [
                    {
                        "boot": True,
                        "autoDelete": True,
                        "initializeParams": {"sourceImage": "debian-12"},
                    }
                ],
            }
            if labels is not None:
                instance["labels"] = labels
            self.create(f"zones/{ZONE}/instances", instance)
        self.create(
            f"zones/{ZONE}/disks",
            {"name": "kubernetes-master-pd-old", "sizeGb": "10", "labels": other},
        )
        self.create(
            f"regions/{REGION}/addresses", {"name": "kubernetes-master-ip-old", "labels": other}
        )
        self.create(
            "global/routes",
            {
                "name": "kubernetes-minion-9-route",
                "network": net,
                "destRange": "10.251.9.0/24",
                "nextHopIp": "10.250.0.9",
                "description": "kube-up cluster kubernetes-old",
            },
        )
        client = self.storage()
        marked = client.create_bucket("kubernetes-staging-old")
        marked.blob("kube-up-owner").upload_from_string("kubernetes-old")
        mine = client.create_bucket("someones-bucket")
        mine.blob("data").upload_from_string("keep me")


@contextmanager
def sim_cloud(root: Path, bystanders: bool = True) -> Iterator[SimCloud]:
    """A simulated daemon for the block; stopped (and its state left in ``root``) after."""
    state_dir = root / "localcloud"
    endpoints = daemon.ensure_running(state_dir, backend="simulated", latency_scale=0.0, rate=0)
    try:
        cloud = SimCloud(root, endpoints, write_release(root / "release"))
        if bystanders:
            cloud.add_bystanders()
        yield cloud
    finally:
        daemon.stop(state_dir)


# --- what healthy means ---------------------------------------------------------------------


def shape(keys: Iterable[Key]) -> Counter[Key]:
    """Resources by kind and name, template names without their hash: a template's name hashes
    its kube-env, which carries the cluster's own (random) CA."""
    return Counter(
        (kind, re.sub(r"-template-[0-9a-f]{8}$", "-template-*", name)) for kind, name in keys
    )


def kube_env(instance_or_properties: dict[str, Any]) -> dict[str, str]:
    return yaml.safe_load(metadata_items(instance_or_properties)["kube-env"])


def metadata_items(resource: dict[str, Any]) -> dict[str, str]:
    return {i["key"]: i.get("value", "") for i in resource.get("metadata", {}).get("items", [])}


def pod_cidr(node: dict[str, Any]) -> str | None:
    """The node's pod range as its startup script reads it: its own ``pod-cidr`` attribute, or
    its line in the ``pod-cidrs`` map (``<node> <cidr>`` per line)."""
    items = metadata_items(node)
    if "pod-cidr" in items:
        return items["pod-cidr"]
    for line in items.get("pod-cidrs", "").splitlines():
        name, _, cidr = line.partition(" ")
        if name == node["name"]:
            return cidr.strip()
    return None


def _pem(value: str) -> bytes:
    return base64.b64decode(value)


def health_problems(
    cloud: SimCloud,
    reference: Iterable[Key],
    inventory: dict[Key, dict[str, Any]] | None = None,
    release: Path | None = None,
) -> list[str]:
    """Why the cluster is not the healthy one a clean ``kube-up --no-wait`` makes ([] if it is);
    ``release``: the one it should have staged (default: the cloud's own)."""
    inventory = cloud.inventory() if inventory is None else inventory
    problems = []
    want, have = shape(reference), shape(inventory)
    if want != have:
        missing, extra = sorted((want - have).elements()), sorted((have - want).elements())
        problems.append(f"resources missing {missing}, unexpected {extra}")
    ca = (cloud.cluster_state / "pki" / "ca.crt").read_bytes()
    ssh_key = (cloud.cluster_state / "ssh" / "id_ed25519.pub").read_text().strip()
    master = inventory.get(("instance", f"{CLUSTER}-master"))
    nodes = [f"{CLUSTER}-minion-{i}" for i in range(1, NUM_NODES + 1)]
    templates = [v["properties"] for k, v in inventory.items() if k[0] == "instance-template"]
    vms = [master] + [inventory.get(("instance", n)) for n in nodes] + templates
    for vm in vms:
        if vm is None:
            continue
        env, items = kube_env(vm), metadata_items(vm)
        if _pem(env["CA_CERT"]) != ca:
            problems.append(f"{vm.get('name', 'template')}: kube-env CA is not the state's CA")
        if items.get("ssh-keys") != f"root:{ssh_key}":
            problems.append(f"{vm.get('name', 'template')}: ssh-keys is not the state's key")
    internal = inventory.get(("address", f"{CLUSTER}-master-internal-ip"), {}).get("address")
    if master is not None and kube_env(master)["KUBERNETES_MASTER_IP"] != internal:
        problems.append("master kube-env names another master IP than its reserved address")
    cidrs = {}
    for name in nodes:
        node = inventory.get(("instance", name))
        if node is None:
            continue
        if node.get("status") not in ("PROVISIONING", "STAGING", "RUNNING"):
            problems.append(f"{name} is {node.get('status')}")
        cidrs[name] = pod_cidr(node)
        route = inventory.get(("route", f"{name}-route"), {})
        if route.get("destRange") != cidrs[name] or not route.get("nextHopInstance", "").endswith(
            f"/instances/{name}"
        ):
            problems.append(f"route of {name} does not send {cidrs[name]} to it")
    if len(set(cidrs.values())) != len(cidrs):
        problems.append(f"nodes share pod CIDRs: {cidrs}")
    problems += _staging_problems(release or cloud.release, inventory)
    problems += private_mode_problems(cloud.cluster_state)
    return problems


def _staging_problems(release: Path, inventory: dict[Key, dict[str, Any]]) -> list[str]:
    manifest = json.loads((release / "release.json").read_text())
    buckets = [
        v["objects"]
        for k, v in inventory.items()
        if k[0] == "bucket" and v["objects"].get("kube-up-owner", {}).get("data") == b"kubernetes"
    ]
    if len(buckets) != 1:
        return [f"{len(buckets)} buckets carry this cluster's owner marker"]
    problems = []
    for artifact in manifest["artifacts"].values():
        blob = buckets[0].get(f"v1.34.4/{artifact['file']}")
        if blob is None or hashlib.sha256(blob["data"]).hexdigest() != artifact["sha256"]:
            problems.append(f"{artifact['file']} is not staged with its release bytes")
        elif blob["metadata"].get("sha256") != artifact["sha256"]:
            problems.append(f"{artifact['file']} is staged without its sha256")
    return problems


def private_mode_problems(directory: Path) -> list[str]:
    """Files under ``directory`` that are not 0600, directories that are not 0700."""
    problems = []
    if not directory.exists():
        return [f"{directory} does not exist"]
    for path in [directory, *directory.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        want = 0o700 if path.is_dir() else 0o600
        if mode != want:
            problems.append(f"{path} is {oct(mode)}, not {oct(want)}")
    return problems


def owned_keys(inventory: dict[Key, dict[str, Any]], bystanders: set[Key]) -> set[Key]:
    """What is left of the cluster: everything that is not a bystander."""
    return set(inventory) - bystanders
