"""SSH into cluster VMs with paramiko, trusting only the host key the cloud published.

kube-up learns each VM's host key from the cloud (guest attributes, serial console or
metadata) before it connects, loads it as the only known key for that address, and uses
paramiko's ``RejectPolicy``: a server presenting any other key is refused with a
:class:`~cluster.errors.CloudError`. There is no trust-on-first-use and no AutoAddPolicy.

While a VM boots, sshd may refuse connections, drop them, or not yet know kube-up's key; those
failures are retried (bounded by a deadline) through :mod:`cluster.retry`. Commands run through
:meth:`SSHSession.run` must not contain secrets: they show up in the VM's process list.
"""

from __future__ import annotations

import base64
import binascii
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import NamedTuple

import paramiko

from cluster.errors import CloudError, ClusterTimeout, PrereqError, one_line, show_value
from cluster.retry import SYSTEM_CLOCK, Backoff, Clock, retry

CONNECT_DEADLINE = 180.0
CONNECT_TIMEOUT = 10.0
READ_CHUNK = 65536


@dataclass(frozen=True)
class SSHTarget:
    """A VM to log into: address, login, kube-up's private key, and the VM's published host
    public key as an OpenSSH line (``ssh-ed25519 AAAA... [comment]``)."""

    host: str
    port: int
    user: str
    private_key_path: Path
    host_key: str
    # The VM's name, for messages ("kubernetes-master at 10.240.0.2").
    name: str = ""

    @property
    def label(self) -> str:
        return f"{self.name} at {self.host}" if self.name else self.host


class CommandResult(NamedTuple):
    """What :meth:`SSHSession.run` returns; unpacks as ``(exit_status, stdout, stderr)``."""

    exit_status: int
    stdout: str
    stderr: str


def connect(
    target: SSHTarget,
    *,
    deadline: float = CONNECT_DEADLINE,
    clock: Clock = SYSTEM_CLOCK,
) -> SSHSession:
    """Open a session to ``target``, retrying while its sshd comes up, for up to ``deadline``s.

    Raises CloudError if the host key differs from the published one (at once, no retry) or if
    no connection could be made in time; PrereqError if the private key file is unusable.
    """
    host_key = _parse_host_key(target)
    try:
        private_key = paramiko.PKey.from_path(target.private_key_path)
    except (OSError, ValueError, paramiko.SSHException, paramiko.UnknownKeyType) as exc:
        raise PrereqError(
            f"ssh key {target.private_key_path} is unusable ({one_line(str(exc))})",
            fix="remove it and re-run kube-up to make a new one",
        ) from None

    def attempt() -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        known_as = target.host if target.port == 22 else f"[{target.host}]:{target.port}"
        client.get_host_keys().add(known_as, host_key.get_name(), host_key)
        try:
            client.connect(
                target.host,
                port=target.port,
                username=target.user,
                pkey=private_key,
                timeout=CONNECT_TIMEOUT,
                banner_timeout=CONNECT_TIMEOUT,
                auth_timeout=CONNECT_TIMEOUT,
                allow_agent=False,
                look_for_keys=False,
            )
        except BaseException:
            client.close()
            raise
        return client

    try:
        client = retry(
            attempt,
            retryable=_worth_retrying,
            backoff=Backoff(initial=0.5, maximum=5.0, deadline=deadline),
            clock=clock,
        )
    except paramiko.BadHostKeyException:
        raise CloudError(
            f"host key of {target.name or 'the VM'} at {target.host} does not match the key it "
            "published; refusing to connect",
            fix="if the VM was re-created, re-run kube-up so it reads the new key",
        ) from None
    except (OSError, EOFError, paramiko.SSHException) as exc:
        raise CloudError(
            f"cannot ssh to {target.label} port {target.port} as {target.user} within "
            f"{deadline:g}s ({_describe(exc)})",
            fix="check that the VM is running and the firewall allows ssh from here",
        ) from None
    return SSHSession(target, client)


def _worth_retrying(exc: BaseException) -> bool:
    """Failures of a VM that is still booting: refused, reset, timed out, no banner yet,
    or our key not yet installed. A wrong host key is never retried."""
    if isinstance(exc, paramiko.BadHostKeyException):
        return False
    return isinstance(exc, OSError | EOFError | paramiko.SSHException)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, paramiko.AuthenticationException):
        return "the VM does not accept kube-up's ssh key"
    return one_line(str(exc)) or type(exc).__name__


def _parse_host_key(target: SSHTarget) -> paramiko.PKey:
    parts = target.host_key.split()
    try:
        if len(parts) < 2:
            raise ValueError("expected '<type> <base64>'")
        return paramiko.PKey.from_type_string(parts[0], base64.b64decode(parts[1], validate=True))
    except (ValueError, binascii.Error, paramiko.SSHException, paramiko.UnknownKeyType) as exc:
        raise CloudError(
            f"the host key published for {target.label} is not an OpenSSH public key "
            f"({one_line(str(exc)) or type(exc).__name__})",
            fix="check what the VM's startup script publishes",
        ) from None


class SSHSession:
    """An open, host-key-verified connection; use as a context manager."""

    def __init__(self, target: SSHTarget, client: paramiko.SSHClient) -> None:
        self.target = target
        self._client = client

    def __enter__(self) -> SSHSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def run(self, command: str, timeout: float) -> CommandResult:
        """Run ``command`` through the login shell; wait up to ``timeout`` seconds for it.

        Raises ClusterTimeout when it runs longer (the channel is closed), CloudError when the
        connection drops.
        """
        status, out, err = self._exec(command, timeout)
        return CommandResult(status, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))

    def fetch(self, remote_path: str, timeout: float = 60.0) -> bytes:
        """The contents of ``remote_path`` on the VM (read with ``cat``: no sftp needed)."""
        status, data, problem = self._exec(f"cat -- {shlex.quote(remote_path)}", timeout)
        if status != 0:
            reason = one_line(problem.decode("utf-8", "replace")) or f"exit status {status}"
            raise CloudError(f"cannot read {remote_path} on {self.target.label}: {reason}")
        return data

    def _exec(self, command: str, timeout: float) -> tuple[int, bytes, bytes]:
        try:
            return self._exec_channel(command, timeout)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise CloudError(
                f"lost the ssh connection to {self.target.label} while running "
                f"{show_value(command)} ({_describe(exc)})"
            ) from None

    def _exec_channel(self, command: str, timeout: float) -> tuple[int, bytes, bytes]:
        transport = self._client.get_transport()
        if transport is None or not transport.is_active():
            raise paramiko.SSHException("the connection is closed")
        channel = transport.open_session(timeout=CONNECT_TIMEOUT)
        try:
            channel.exec_command(command)
            channel.shutdown_write()
            out, err = bytearray(), bytearray()
            give_up = time.monotonic() + timeout
            while True:
                got = False
                while channel.recv_ready():
                    out += channel.recv(READ_CHUNK)
                    got = True
                while channel.recv_stderr_ready():
                    err += channel.recv_stderr(READ_CHUNK)
                    got = True
                # The exit status arrives after all output, so once it is here and the
                # buffers are drained the command's output is complete.
                if channel.exit_status_ready() and not (
                    channel.recv_ready() or channel.recv_stderr_ready()
                ):
                    return channel.recv_exit_status(), bytes(out), bytes(err)
                if time.monotonic() > give_up:
                    raise ClusterTimeout(
                        f"{show_value(command)} on {self.target.label} did not finish "
                        f"within {timeout:g}s"
                    )
                if not got:
                    time.sleep(0.01)
        finally:
            channel.close()
