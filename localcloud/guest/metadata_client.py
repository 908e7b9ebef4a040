"""The GCE metadata server as seen from inside a localcloud machine (stdlib only).

Shared by the guest programs installed in every machine (they run on the machine's
/usr/bin/python3, not in the project's venv). Uses the IP, not metadata.google.internal, so it
works before /etc/hosts is read by anything.
"""

from __future__ import annotations

import http.client
import json
import socket
import time

HOST = "169.254.169.254"
ROOT = "/computeMetadata/v1/"
HEADERS = {"Metadata-Flavor": "Google"}


class Unavailable(Exception):
    """The metadata server did not answer usefully (not reachable, or a server error)."""


def request(method: str, path: str, body: str | None = None, timeout: float = 10) -> tuple:
    """One request; returns (status, body text, ETag header or "")."""
    conn = http.client.HTTPConnection(HOST, 80, timeout=timeout)
    try:
        conn.request(method, ROOT + path, body=body, headers=HEADERS)
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace"), resp.getheader("ETag", "")
    except (OSError, http.client.HTTPException) as exc:
        raise Unavailable(f"{method} {path}: {exc}") from exc
    finally:
        conn.close()


def get(path: str, retry_for: float) -> str | None:
    """The value at ``path``, None when it is not set; retries while the server is away."""
    deadline = time.monotonic() + retry_for
    while True:
        try:
            status, text, _ = request("GET", path)
            if status == 404:
                return None
            if status == 200:
                return text
            problem = f"GET {path}: HTTP {status}"
        except Unavailable as exc:
            problem = str(exc)
        if time.monotonic() > deadline:
            raise Unavailable(problem)
        time.sleep(0.5)


def watch(last_etag: str, timeout_sec: int = 60) -> tuple[dict, str]:
    """Everything (recursive JSON) once it differs from ``last_etag``; returns (data, etag)."""
    path = f"?recursive=true&alt=json&wait_for_change=true&timeout_sec={timeout_sec}"
    path += f"&last_etag={last_etag}"
    status, text, etag = request("GET", path, timeout=timeout_sec + 10)
    if status != 200:
        raise Unavailable(f"GET {path}: HTTP {status}")
    return json.loads(text), etag


def put(path: str, value: str) -> bool:
    try:
        status, _, _ = request("PUT", path, body=value)
    except Unavailable:
        return False
    return status == 200


def console(tag: str, line: str) -> None:
    """Append one line to serial port 1 (the console is a file: always append)."""
    stamp = time.strftime("%b %d %H:%M:%S")
    with open("/dev/console", "a", encoding="utf-8", errors="replace") as port:
        port.write(f"{stamp} {socket.gethostname()} {tag}: {line.rstrip()}\n")
