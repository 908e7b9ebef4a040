"""The metadata server protocol: header checks, tree, recursive/alt, wait_for_change, guest
attributes. One part runs the service on its own store with a resolver of the test's choosing;
the other goes through a daemon, where instance changes come from the Compute API."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.cloud import compute_v1

from localcloud.compute.common import project_number
from localcloud.httpd import HttpServer
from localcloud.metadata import MetadataService
from localcloud.store import Store
from tests.localcloud_support import ZONE, LocalCloud, create_instance, make_network

pytest_plugins = ["tests.localcloud_fixtures"]

LINK = "https://www.googleapis.com/compute/v1/projects/proj"
INSTANCE = {
    "kind": "compute#instance",
    "id": "1234567890123456789",
    "name": "vm-1",
    "zone": f"{LINK}/zones/{ZONE}",
    "selfLink": f"{LINK}/zones/{ZONE}/instances/vm-1",
    "machineType": f"{LINK}/zones/{ZONE}/machineTypes/e2-small",
    "status": "RUNNING",
    "networkInterfaces": [
        {
            "network": f"{LINK}/global/networks/net",
            "networkIP": "10.5.0.7",
            "accessConfigs": [{"type": "ONE_TO_ONE_NAT", "natIP": "10.5.0.7"}],
        }
    ],
    "disks": [
        {
            "source": f"{LINK}/zones/{ZONE}/disks/vm-1",
            "deviceName": "persistent-disk-0",
            "boot": True,
            "index": 0,
            "mode": "READ_WRITE",
        }
    ],
    "tags": {"items": ["node", "web"]},
    "metadata": {
        "items": [
            {"key": "kube-env", "value": "A: 1\n"},
            {"key": "enable-guest-attributes", "value": "TRUE"},
        ]
    },
    "serviceAccounts": [{"email": "sa@proj.iam.gserviceaccount.com", "scopes": ["s1"]}],
}


class Server:
    def __init__(self, tmp: Path) -> None:
        self.store = Store(tmp / "md.db")
        self.store.put(
            "proj", "networks", "global", "net", {"name": "net", "IPv4Range": "10.5.0.0/16"}
        )
        self.store.put(
            "proj", "instances", f"zones/{ZONE}", "vm-1", json.loads(json.dumps(INSTANCE))
        )
        self.store.put(
            "proj",
            "projects",
            "global",
            "proj",
            {
                "commonInstanceMetadata": {
                    "items": [{"key": "ssh-keys", "value": "me:ssh-ed25519 AAA"}]
                }
            },
        )
        known = {"127.0.0.1": ("proj", ZONE, "vm-1")}
        self.http = HttpServer(MetadataService(self.store, known.get), "127.0.0.1", 0).start()
        self.base = f"http://127.0.0.1:{self.http.port}/computeMetadata/v1/"

    def get(
        self,
        path: str,
        headers: dict[str, str] | None = None,
        method: str = "GET",
        data: bytes | None = None,
    ) -> tuple[int, str, dict[str, str]]:
        req = urllib.request.Request(
            self.base + path,
            data=data,
            method=method,
            headers={"Metadata-Flavor": "Google", **(headers or {})},
        )
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(req, timeout=30) as resp:
                return resp.status, resp.read().decode(), dict(resp.headers)
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode(), dict(err.headers)

    def set_attribute(self, key: str, value: str) -> None:
        inst = self.store.get("proj", "instances", f"zones/{ZONE}", "vm-1")
        inst["metadata"]["items"] = [i for i in inst["metadata"]["items"] if i["key"] != key]
        inst["metadata"]["items"].append({"key": key, "value": value})
        self.store.put("proj", "instances", f"zones/{ZONE}", "vm-1", inst)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


@pytest.fixture
def md(tmp_path: Path) -> Iterator[Server]:
    server = Server(tmp_path)
    yield server
    server.http.stop()
    server.store.close()


def test_header_rules(md: Server) -> None:
    assert md.get("instance/name")[:2] == (200, "vm-1")
    status, body, _ = md.get("instance/name", {"Metadata-Flavor": "Nope"})
    assert status == 403 and "Metadata-Flavor" in body
    assert md.get("instance/name", {"X-Forwarded-For": "1.2.3.4"})[0] == 403
    _, _, headers = md.get("instance/name")
    assert headers["Metadata-Flavor"] == "Google" and headers["ETag"]


def test_tree_listing_and_values(md: Server) -> None:
    assert md.get("")[1].splitlines() == ["instance/", "project/"]
    listing = md.get("instance/")[1].splitlines()
    assert {
        "attributes/",
        "network-interfaces/",
        "hostname",
        "id",
        "zone",
        "tags",
        "service-accounts/",
        "guest-attributes/",
    } <= set(listing)
    assert md.get("instance/attributes/")[1].splitlines() == ["kube-env", "enable-guest-attributes"]
    assert md.get("instance/attributes/kube-env")[1] == "A: 1\n"
    assert md.get("instance/attributes/missing")[0] == 404
    status, _, headers = md.get("instance/attributes")
    assert status == 301 and headers["Location"].endswith("/instance/attributes/")
    assert md.get("instance/id")[1] == "1234567890123456789"
    assert md.get("instance/zone")[1].endswith(f"/zones/{ZONE}")
    assert md.get("instance/zone")[1] == f"projects/{project_number('proj')}/zones/{ZONE}"
    assert md.get("instance/hostname")[1] == f"vm-1.{ZONE}.c.proj.internal"
    assert md.get("instance/network-interfaces/")[1] == "0/\n"
    assert md.get("instance/network-interfaces/0/ip")[1] == "10.5.0.7"
    assert md.get("instance/network-interfaces/0/gateway")[1] == "10.5.0.1"
    assert md.get("instance/network-interfaces/0/subnetmask")[1] == "255.255.0.0"
    assert md.get("instance/network-interfaces/0/access-configs/0/external-ip")[1] == "10.5.0.7"
    assert json.loads(md.get("instance/tags")[1]) == ["node", "web"]
    assert md.get("instance/service-accounts/default/email")[1] == "sa@proj.iam.gserviceaccount.com"
    assert md.get("project/project-id")[1] == "proj"
    assert md.get("project/attributes/ssh-keys")[1] == "me:ssh-ed25519 AAA"


def test_recursive_and_alt(md: Server) -> None:
    tree = json.loads(md.get("instance/?recursive=true")[1])
    assert tree["networkInterfaces"][0]["accessConfigs"][0]["externalIp"] == "10.5.0.7"
    assert tree["attributes"]["kube-env"] == "A: 1\n" and tree["name"] == "vm-1"
    assert json.loads(md.get("instance/attributes/?recursive=true")[1]) == {
        "kube-env": "A: 1\n",
        "enable-guest-attributes": "TRUE",
    }
    assert json.loads(md.get("instance/name?alt=json")[1]) == "vm-1"
    text = md.get("instance/network-interfaces/?recursive=true&alt=text")[1]
    assert "0/ip 10.5.0.7" in text.splitlines()
    assert json.loads(md.get("?recursive=true")[1])["project"]["projectId"] == "proj"


def test_wait_for_change(md: Server) -> None:
    status, value, headers = md.get("instance/attributes/kube-env")
    etag = headers["ETag"]
    # A different last_etag answers at once; the same one waits for the change.
    assert md.get("instance/attributes/kube-env?wait_for_change=true&last_etag=0")[1] == value
    timer = threading.Timer(0.4, md.set_attribute, ("kube-env", "A: 2\n"))
    timer.start()
    start = time.monotonic()
    status, changed, headers2 = md.get(
        f"instance/attributes/kube-env?wait_for_change=true&last_etag={etag}"
    )
    assert status == 200 and changed == "A: 2\n" and headers2["ETag"] != etag
    assert time.monotonic() - start >= 0.35
    # Unrelated changes do not end the wait; the timeout does, with the unchanged value.
    threading.Timer(0.2, md.set_attribute, ("other", "x")).start()
    start = time.monotonic()
    status, same, headers3 = md.get(
        f"instance/attributes/kube-env?wait_for_change=true&last_etag={headers2['ETag']}"
        "&timeout_sec=1"
    )
    assert same == "A: 2\n" and headers3["ETag"] == headers2["ETag"]
    assert 0.9 <= time.monotonic() - start < 5
    # Without last_etag, the value at the time of the call is the baseline.
    threading.Timer(0.3, md.set_attribute, ("kube-env", "A: 3\n")).start()
    assert md.get("instance/attributes/kube-env?wait_for_change=true")[1] == "A: 3\n"


def test_guest_attributes(md: Server) -> None:
    status, _, _ = md.get(
        "instance/guest-attributes/hostkeys/ssh-ed25519", method="PUT", data=b"ssh-ed25519 AAAAkey"
    )
    assert status == 200
    assert md.get("instance/guest-attributes/")[1] == "hostkeys/\n"
    assert md.get("instance/guest-attributes/hostkeys/ssh-ed25519")[1] == "ssh-ed25519 AAAAkey"
    assert md.get("instance/guest-attributes/bad.ns/k", method="PUT", data=b"x")[0] == 400
    md.set_attribute("enable-guest-attributes", "FALSE")
    status, body, _ = md.get("instance/guest-attributes/hostkeys/rsa", method="PUT", data=b"x")
    assert status == 403 and "enable-guest-attributes" in body


def test_unknown_caller(tmp_path: Path) -> None:
    store = Store(tmp_path / "md.db")
    server = HttpServer(MetadataService(store, lambda ip: None), "127.0.0.1", 0).start()
    try:
        req = urllib.request.Request(
            f"http://127.0.0.1:{server.port}/computeMetadata/v1/instance/name",
            headers={"Metadata-Flavor": "Google"},
        )
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=10)
        assert err.value.code == 404
    finally:
        server.stop()
        store.close()


def test_daemon_metadata_follows_the_api(lc: LocalCloud, project: str) -> None:
    """Through the daemon: the caller is matched by alias, and setMetadata wakes waiters."""
    c = lc.clients
    make_network(c, project)
    vm = create_instance(
        c,
        project,
        "md-vm",
        metadata=compute_v1.Metadata(items=[compute_v1.Items(key="role", value="node")]),
    )
    host, port = lc.endpoints.metadata_address
    base = f"http://{host}:{port}/computeMetadata/v1/"
    lc.admin(
        "POST",
        "metadata-aliases",
        {"127.0.0.1": f"projects/{project}/zones/{ZONE}/instances/md-vm"},
    )

    def get(path: str) -> tuple[str, str]:
        req = urllib.request.Request(base + path, headers={"Metadata-Flavor": "Google"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.read().decode(), resp.headers["ETag"]

    try:
        value, etag = get("instance/attributes/role")
        assert value == "node" and get("instance/name")[0] == "md-vm"
        assert get("instance/network-interfaces/0/ip")[0] == vm.network_interfaces[0].network_i_p

        def change() -> None:
            time.sleep(0.3)
            c.instances.set_metadata(
                project=project,
                zone=ZONE,
                instance="md-vm",
                metadata_resource=compute_v1.Metadata(
                    fingerprint=vm.metadata.fingerprint,
                    items=[compute_v1.Items(key="role", value="master")],
                ),
            )

        threading.Thread(target=change).start()
        value, _ = get(f"instance/attributes/role?wait_for_change=true&last_etag={etag}")
        assert value == "master"
    finally:
        lc.admin("POST", "metadata-aliases", {})
