"""A small GCE metadata server for the machines backend's tests and benchmark.

Only until localcloud's own metadata server can be started on its own: it speaks the parts the
guest programs use (attribute reads, recursive JSON with ``wait_for_change``/``last_etag``,
guest-attribute PUTs) and, like the real one, tells machines apart by their source IP.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

PREFIX = "/computeMetadata/v1/"


class MetadataStandIn:
    """Serves ``instances`` (by networkIP) and ``project_attributes`` at ``address``."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.instances: dict[str, dict[str, Any]] = {}
        self.project_attributes: dict[str, str] = {}
        self.guest_attributes: dict[str, dict[str, str]] = {}
        self.changed = threading.Condition()
        self.server = ThreadingHTTPServer(address, _handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> MetadataStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add(self, instance: dict[str, Any]) -> None:
        with self.changed:
            self.instances[instance["networkInterfaces"][0]["networkIP"]] = instance
            self.changed.notify_all()

    def set_attribute(self, instance: dict[str, Any], key: str, value: str) -> None:
        with self.changed:
            items = instance.setdefault("metadata", {}).setdefault("items", [])
            items[:] = [i for i in items if i["key"] != key] + [{"key": key, "value": value}]
            self.changed.notify_all()

    def document(self, ip: str) -> dict[str, Any]:
        instance = self.instances[ip]
        attrs = {i["key"]: i["value"] for i in instance.get("metadata", {}).get("items", [])}
        return {
            "instance": {
                "name": instance["name"],
                "hostname": instance["name"],
                "attributes": attrs,
            },
            "project": {"attributes": dict(self.project_attributes)},
        }


def _etag(doc: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def _handler(md: MetadataStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _reply(self, status: int, body: str, etag: str = "") -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Metadata-Flavor", "Google")
            if etag:
                self.send_header("ETag", etag)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _target(self) -> tuple[str, dict[str, list[str]]] | None:
            if self.headers.get("Metadata-Flavor") != "Google":
                self._reply(403, "Missing Metadata-Flavor:Google header.")
                return None
            url = urlsplit(self.path)
            if not url.path.startswith(PREFIX) or self.client_address[0] not in md.instances:
                self._reply(404, "not found")
                return None
            return url.path[len(PREFIX) :], parse_qs(url.query)

        def do_GET(self) -> None:
            target = self._target()
            if target is None:
                return
            path, query = target
            ip = self.client_address[0]
            if path == "" and query.get("recursive") == ["true"]:
                with md.changed:
                    doc = md.document(ip)
                    if query.get("wait_for_change") == ["true"]:
                        last = query.get("last_etag", ["0"])[0]
                        timeout = float(query.get("timeout_sec", ["60"])[0])
                        md.changed.wait_for(lambda: _etag(md.document(ip)) != last, timeout)
                        doc = md.document(ip)
                self._reply(200, json.dumps(doc), _etag(doc))
                return
            if path.startswith("instance/attributes/"):
                value = md.document(ip)["instance"]["attributes"].get(path.split("/", 2)[2])
                if value is not None:
                    self._reply(200, value)
                    return
            self._reply(404, "not found")

        def do_PUT(self) -> None:
            target = self._target()
            if target is None:
                return
            path, _ = target
            if not path.startswith("instance/guest-attributes/"):
                self._reply(404, "not found")
                return
            body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
            name = md.instances[self.client_address[0]]["name"]
            with md.changed:
                key = path[len("instance/guest-attributes/") :]
                md.guest_attributes.setdefault(name, {})[key] = body
                md.changed.notify_all()
            self._reply(200, "")

    return Handler
