"""A loopback stand-in for one EC2 instance's metadata service, IMDSv2 only.

``PUT /latest/api/token`` with ``X-aws-ec2-metadata-token-ttl-seconds`` (1..21600) returns a
session token; every GET must carry it in ``X-aws-ec2-metadata-token`` or gets 401, as on an
instance launched with ``HttpTokens=required``. What it serves comes from the caller, live: the
tests read the instance's tags from moto on each request, so a tag kube-up sets later shows up
the way it does in IMDS, and hand out credentials of the instance's role from moto's STS.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN_HEADER = "X-aws-ec2-metadata-token"
TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    status: int


@dataclass
class Imds:
    """One instance's metadata; ``describe`` answers its current description (tags, IPs)."""

    describe: Callable[[], dict[str, Any]]
    credentials: Callable[[], dict[str, str]]
    role: str
    region: str
    refuse_tokens: bool = False
    tokens: set[str] = field(default_factory=set)
    seen: list[Seen] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer(self, path: str) -> str | None:
        """The body for a GET under /latest/, None for 404."""
        if path == "meta-data/iam/security-credentials/":
            return self.role
        if path == f"meta-data/iam/security-credentials/{self.role}":
            creds = self.credentials()
            document = {
                "Code": "Success",
                "Type": "AWS-HMAC",
                "AccessKeyId": creds["AccessKeyId"],
                "SecretAccessKey": creds["SecretAccessKey"],
                "Token": creds["SessionToken"],
                "Expiration": "2099-01-01T00:00:00Z",
            }
            return json.dumps(document, indent=2)  # IMDS pretty-prints, one key per line
        if path == "meta-data/placement/region":
            return self.region
        instance = self.describe()
        if path == "meta-data/local-ipv4":
            return instance["PrivateIpAddress"]
        tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
        if path == "meta-data/tags/instance/":
            return "\n".join(sorted(k for k in tags if not k.startswith("aws:")))
        if path.startswith("meta-data/tags/instance/"):
            return tags.get(path.removeprefix("meta-data/tags/instance/"))
        return None


def _handler(imds: Imds) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _send(self, status: int, body: str = "") -> None:
            imds.seen.append(Seen(self.command, self.path, dict(self.headers.items()), status))
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_PUT(self) -> None:
            if self.path != "/latest/api/token":
                self._send(404)
                return
            ttl = self.headers.get(TTL_HEADER, "")
            if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
                self._send(400)
            elif imds.refuse_tokens:
                self._send(403)
            else:
                token = secrets.token_urlsafe(32)
                imds.tokens.add(token)
                self._send(200, token)

        def do_GET(self) -> None:
            if self.headers.get(TOKEN_HEADER) not in imds.tokens:
                self._send(401)
                return
            body = None
            if self.path.startswith("/latest/"):
                body = imds.answer(self.path.removeprefix("/latest/"))
            if body is None:
                self._send(404)
            else:
                self._send(200, body)

    return Handler


@contextmanager
def serve_imds(imds: Imds) -> Iterator[Imds]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(imds))
    server.daemon_threads = True
    imds.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield imds
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
