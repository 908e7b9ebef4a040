"""A small HTTPS server on loopback for tests: serves a certificate, may demand client certs,
and answers every GET with JSON naming the client certificate's CN and O."""

from __future__ import annotations

import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cluster.pki import CertKey


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        peer = self.connection.getpeercert() or {}
        subject = dict(item for rdn in peer.get("subject", ()) for item in rdn)
        body = json.dumps(
            {
                "path": self.path,
                "cn": subject.get("commonName"),
                "o": subject.get("organizationName"),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class TLSServer:
    """``with TLSServer(pair, tmp_path, client_ca=ca_pem) as server: server.port``"""

    def __init__(self, pair: CertKey, workdir: Path, client_ca: bytes | None = None) -> None:
        cert, key = workdir / "server.crt", workdir / "server.key"
        cert.write_bytes(pair.cert_pem)
        key.write_bytes(pair.key_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        if client_ca is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(cadata=client_ca.decode())
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> TLSServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)
