"""A loopback proxy in front of moto that answers chosen API actions with AWS errors.

moto does not throttle, has no VPC or instance quotas and never fails a launch, so the tests put
this between boto3 and moto: every request is forwarded unchanged except the next N calls of an
action (``CreateVpc``, ``RunInstances``...) that a test queued a fault for, which get the error
document that service's protocol uses — boto3 parses them as it would AWS's.
"""

from __future__ import annotations

import http.client
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length"}


@dataclass
class Fault:
    code: str
    message: str
    status: int = 400


@dataclass
class FaultProxy:
    """What to break; the actions seen, in order, for the test to count."""

    upstream: str
    port: int = 0
    faults: dict[str, list[Fault]] = field(default_factory=lambda: defaultdict(list))
    actions: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail(self, action: str, code: str, message: str, *, times: int = 1, status: int = 400):
        with self.lock:
            self.faults[action] += [Fault(code, message, status)] * times

    def count(self, action: str) -> int:
        return self.actions.count(action)

    def next_fault(self, action: str) -> Fault | None:
        with self.lock:
            self.actions.append(action)
            queued = self.faults.get(action)
            return queued.pop(0) if queued else None


def _service(authorization: str) -> str:
    """The service named in SigV4's scope: Credential=KEY/DATE/REGION/SERVICE/aws4_request."""
    for part in authorization.replace(",", " ").split():
        if part.startswith("Credential="):
            scope = part.split("=", 1)[1].split("/")
            return scope[3] if len(scope) > 3 else ""
    return ""


def error_document(service: str, fault: Fault) -> bytes:
    request_id = str(uuid.uuid4())
    code, message = escape(fault.code), escape(fault.message)
    if service == "ec2":
        return (
            f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error>"
            f"</Errors><RequestID>{request_id}</RequestID></Response>"
        ).encode()
    return (
        f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}"
        f"</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    ).encode()


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    upstream = urlsplit(proxy.upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _relay(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            action = ""
            if self.headers.get("Content-Type", "").startswith("application/x-www-form"):
                action = parse_qs(body.decode()).get("Action", [""])[0]
            fault = proxy.next_fault(action) if action else None
            if fault is not None:
                document = error_document(_service(self.headers.get("Authorization", "")), fault)
                self.send_response(fault.status)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(document)))
                self.end_headers()
                self.wfile.write(document)
                return
            connection = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=120)
            try:
                # Host stays as signed: moto checks SigV4 signatures when IAM is enforced.
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                connection.request(self.command, self.path, body=body, headers=headers)
                answer = connection.getresponse()
                data = answer.read()
            finally:
                connection.close()
            self.send_response(answer.status)
            for key, value in answer.getheaders():
                if key.lower() not in HOP_HEADERS:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _relay

    return Handler


@contextmanager
def fault_proxy(upstream: str) -> Iterator[FaultProxy]:
    proxy = FaultProxy(upstream)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(proxy))
    server.daemon_threads = True
    proxy.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
