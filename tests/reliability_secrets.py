"""Finding a cluster's secrets where they must not be: text, files, process arguments.

A secret is found by a piece of it that only it contains, in each form it can travel in: a
private key PEM is recognised by one of its body lines that no other key, no fresh key of the
same format and no public file shares (a key's first line can be the same for every key of its
format), either as that line or as the same bytes inside base64 of the whole PEM (how kube-env
carries keys). The
admin password is recognised as itself and inside a basic-auth header.
"""

from __future__ import annotations

import base64
import os
import stat
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cluster.pki import new_private_key_pem, new_ssh_keypair

# Keys the master needs (kube-env); the nodes need only the last two.
MASTER_KEYS = frozenset(
    {
        "apiserver.key",
        "sa.key",
        "admin.key",
        "kube-controller-manager.key",
        "kube-scheduler.key",
        "apiserver-kubelet-client.key",
        "front-proxy-client.key",
    }
)
NODE_KEYS = frozenset({"kubelet.key", "kube-proxy.key"})
WINDOW = 40


@dataclass(frozen=True)
class Secret:
    name: str  # file name in the state dir, or "admin-password"
    forms: tuple[str, ...]


def _b64_window(pem: bytes, line: bytes) -> str:
    """Base64 of the end of ``line`` (a key's own bytes: a line may start with the header all
    keys of its type share) as it appears in base64 of the whole ``pem``."""
    end = pem.index(line) + len(line)
    group = -(-max(0, end - WINDOW * 3 // 4) // 3)  # first whole 3-byte group in the window
    encoded = base64.b64encode(pem).decode()
    return encoded[group * 4 : group * 4 + WINDOW]


def _body(pem: bytes) -> list[str]:
    return [line for line in pem.decode().splitlines() if not line.startswith("-----")]


def cluster_secrets(state: Path) -> list[Secret]:
    """The secrets of the cluster whose state dir is ``state``."""
    keys = {p.name: p.read_bytes() for p in [*state.glob("pki/*.key"), state / "ssh/id_ed25519"]}
    public = "".join(
        p.read_text() for p in [*state.glob("pki/*.crt"), *state.glob("**/*.pub")] if p.is_file()
    )
    lines = {name: _body(pem) for name, pem in keys.items()}
    shared = Counter(ln for body in lines.values() for ln in set(body))
    # Lines every key of a format has (an OpenSSH key's first line is the same for all).
    shared.update(set(_body(new_private_key_pem())) | set(_body(new_ssh_keypair("x")[0])))
    found = []
    for name, pem in keys.items():
        unique = [ln for ln in lines[name] if shared[ln] == 1 and ln not in public and len(ln) > 20]
        if not unique:
            raise AssertionError(f"{name}: no line of it is its own")
        forms = []
        for line in unique:
            forms += [line, _b64_window(pem, line.encode())]
        found.append(Secret(name, tuple(f for f in forms if len(f) >= 20)))
    password = (state / "admin-password").read_text().strip()
    basic = base64.b64encode(f"admin:{password}".encode()).decode()
    found.append(Secret("admin-password", (password, basic)))
    return found


def found_in(text: str | bytes, secrets: Iterable[Secret]) -> set[str]:
    """The names of the secrets ``text`` contains."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return {s.name for s in secrets if any(form in text for form in s.forms)}


def readable_by_others(path: Path, top: Path) -> bool:
    """Whether a user other than the owner may read ``path`` and reach it from ``top``: the
    directories above ``top`` do not count, so a file is judged by what kube-up (or the VM)
    made, not by the private directory a test happens to run in."""
    if not path.stat().st_mode & (stat.S_IRGRP | stat.S_IROTH):
        return False
    parent = path.parent
    while parent != top and top in parent.parents:
        if not parent.stat().st_mode & (stat.S_IXGRP | stat.S_IXOTH):
            return False  # a private directory on the way: others cannot reach it
        parent = parent.parent
    return True


def leaks_in_files(roots: Iterable[Path], secrets: list[Secret]) -> dict[str, set[str]]:
    """Files under each root (a tree, or a VM's root file system) that others may read and
    that hold a secret. Files over 16 MB (binaries, images) are not read."""
    leaks = {}
    for root in roots:
        for path in root.rglob("*"):
            try:
                if not path.is_file() or path.is_symlink() or path.stat().st_size > 16 << 20:
                    continue
                if not readable_by_others(path, root):
                    continue
                names = found_in(path.read_bytes(), secrets)
            except OSError:
                continue  # gone meanwhile, a socket...
            if names:
                leaks[str(path)] = names
    return leaks


def command_lines() -> dict[int, bytes]:
    """Every process's arguments, right now."""
    found = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                    found[int(entry.name)] = handle.read()
            except OSError:
                continue
    return found


@contextmanager
def watching_command_lines(interval: float = 0.02) -> Iterator[set[bytes]]:
    """Collect every distinct process argument list seen while the block runs."""
    seen: set[bytes] = set()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.update(command_lines().values())
            done.wait(interval)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        done.set()
        thread.join()
