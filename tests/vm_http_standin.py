"""A loopback HTTP server standing in for what a VM talks to at boot: the GCE metadata server
(``/computeMetadata/v1/...``, ``Metadata-Flavor: Google``, ``wait_for_change``) and the object
store (``/files/NAME`` plain, ``/gcs/NAME`` needing the metadata server's OAuth token)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

TOKEN = "ya29.test-token"  # a fake token for the fake metadata server
METADATA = "/computeMetadata/v1/"


@dataclass
class Request:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


@dataclass
class StandIn:
    """What the server serves; change it from the test while the server runs."""

    attributes: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    # Answer this many requests for a file with 503 before serving it.
    failures: dict[str, int] = field(default_factory=dict)
    network_ip: str = "10.40.0.7"
    requests: list[Request] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)
    port: int = 0

    @property
    def metadata_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/computeMetadata/v1"

    def url(self, prefix: str, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{prefix}/{name}"

    def set_attribute(self, key: str, value: str) -> None:
        with self.changed:
            self.attributes[key] = value
            self.changed.notify_all()

    def requests_for(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]


def _handler(state: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _send(self, code: int, body: bytes, content_type: str = "text/plain") -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            state.requests.append(Request(parts.path, query, dict(self.headers.items())))
            if parts.path.startswith(METADATA):
                self._metadata(parts.path[len(METADATA) :], query)
            elif parts.path.startswith("/files/"):
                self._file(parts.path[len("/files/") :])
            elif parts.path.startswith("/gcs/"):
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self._send(401, b"no token")
                else:
                    self._file(parts.path[len("/gcs/") :])
            else:
                self._send(404, b"not found")

        def _metadata(self, path: str, query: dict[str, list[str]]) -> None:
            if self.headers.get("Metadata-Flavor") != "Google":
                self._send(403, b"Missing Metadata-Flavor:Google header")
                return
            if path == "instance/attributes/" and query.get("wait_for_change") == ["true"]:
                timeout = float(query.get("timeout_sec", ["60"])[0])
                with state.changed:
                    before = dict(state.attributes)
                    deadline = time.monotonic() + timeout
                    while state.attributes == before and time.monotonic() < deadline:
                        state.changed.wait(deadline - time.monotonic())
                    body = json.dumps(state.attributes).encode()
                self._send(200, body, "application/json")
            elif path.startswith("instance/attributes/"):
                value = state.attributes.get(path[len("instance/attributes/") :])
                if value is None:
                    self._send(404, b"not found")
                else:
                    self._send(200, value.encode())
            elif path == "instance/service-accounts/default/token":
                token = {"access_token": TOKEN, "expires_in": 3599, "token_type": "Bearer"}
                self._send(200, json.dumps(token).encode(), "application/json")
            elif path == "instance/network-interfaces/0/ip":
                self._send(200, state.network_ip.encode())
            elif path == "instance/name":
                self._send(200, state.attributes.get("_name", "node-2").encode())
            else:
                self._send(404, b"not found")

        def _file(self, name: str) -> None:
            if state.failures.get(name, 0) > 0:
                state.failures[name] -= 1
                self._send(503, b"try again")
            elif name in state.files:
                self._send(200, state.files[name], "application/octet-stream")
            else:
                self._send(404, b"no such object")

    return Handler


@contextmanager
def serve() -> Iterator[StandIn]:
    """Run a stand-in on 127.0.0.1 (a free port) for the duration of the block."""
    state = StandIn()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
