"""Object storage: gcp-storage-emulator, run in-process with its data under the state dir.

google-cloud-storage reaches it through ``STORAGE_EMULATOR_HOST=<url>``; machines reach it on
the address the backend gives for host services (loopback for the simulated backend).
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path

from gcp_storage_emulator.server import create_server

log = logging.getLogger(__name__)


def free_port(host: str, preferred: int = 0) -> int:
    """``preferred`` if it can be bound on ``host`` now, else any free port."""
    for port in (preferred, 0) if preferred else (0,):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise OSError(f"no free TCP port on {host}")


class StorageEmulator:
    """Start and stop gcp-storage-emulator on ``host:port`` with data in ``data_dir``."""

    def __init__(self, host: str, port: int, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.port = port
        self._server = create_server(host, port, in_memory=False, data_dir=str(data_dir))

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> StorageEmulator:
        self._server.start()
        log.info("storage emulator on %s", self.url)
        return self

    def stop(self) -> None:
        self._server.stop()
