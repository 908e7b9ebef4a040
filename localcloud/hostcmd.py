"""Running the host tools the machines backend drives (ip, nft, mount, ssh-keygen...).

One place turns a failed tool into a one-line :class:`MachineError` naming the command and the
tool's own complaint, so callers never print a traceback for an expected host failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence


class MachineError(RuntimeError):
    """A machine or the cloud network could not be made as asked; the message says why."""


def run(argv: Sequence[str], *, input: str | None = None, check: bool = True) -> str:
    """Run ``argv`` and return its stdout; raise :class:`MachineError` when it fails."""
    stdin = {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}
    proc = subprocess.run(list(argv), capture_output=True, text=True, **stdin)
    if check and proc.returncode != 0:
        complaint = (proc.stderr or proc.stdout).strip().splitlines()
        detail = complaint[-1] if complaint else f"exit status {proc.returncode}"
        raise MachineError(f"{' '.join(argv[:4])}: {detail}")
    return proc.stdout


def succeeds(argv: Sequence[str]) -> bool:
    """Whether ``argv`` exits 0 (for probes whose failure is an answer, not an error)."""
    return subprocess.run(list(argv), stdin=subprocess.DEVNULL, capture_output=True).returncode == 0


def require_root_and_tools(tools: Sequence[str], why: str) -> None:
    """Fail in one line, before touching anything, when this host cannot do ``why``."""
    if os.geteuid() != 0:
        raise MachineError(f"{why} needs root; run as root or use the simulated backend")
    system_path = "/usr/sbin:/usr/bin:/sbin:/bin"
    missing = [tool for tool in tools if shutil.which(tool, path=system_path) is None]
    if missing:
        raise MachineError(f"{why} needs {', '.join(missing)} on this host; run make deps")
