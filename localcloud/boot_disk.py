"""An instance's boot disk: the overlay upper dir that makes this host's root into that machine.

Everything here is written while the machine is off (never into a mounted upper dir). What the
machine changes itself is respected: identity files are written on the first boot only, and a
unit the machine enabled or unmasked is never masked again.

- Identity (first boot): /etc/machine-id, an ed25519 SSH host key of its own (the host's keys are
  whited out), /etc/hosts with ``metadata.google.internal``, a resolv.conf without nameservers
  (the cloud network is closed: no resolver for outside names).
- Host data hidden: /root, /home, /work, the state dirs... are opaque directories in the upper
  dir, so the machine sees them empty and what it writes there stays on its own disk.
- Host services: the host's enabled units are masked, except the ones kube-up's salt states
  manage (disabled instead, so ``service.running`` can start them) and the machine's own
  essentials (journald, dbus, logind, ssh).
- The guest environment (``localcloud/guest/``): a startup-script runner and a guest agent for
  ssh-keys and host-key publishing, as GCE images have.
"""

from __future__ import annotations

import os
import shutil
import stat
import uuid
from collections.abc import Iterable
from pathlib import Path

from localcloud.hostcmd import run

GUEST_SOURCE = Path(__file__).parent / "guest"
GUEST_DIR = "/usr/lib/localcloud-guest"
GUEST_PROGRAMS = ("metadata_client.py", "guest_agent.py", "startup_runner.py")
GUEST_UNITS = ("google-guest-agent.service", "google-startup-scripts.service")
HOST_KEY = "etc/ssh/ssh_host_ed25519_key"

# Units kube-up's salt states start themselves: disabled, so `service.running` still works.
DISABLED_UNITS = frozenset(
    {
        "containerd.service",
        "docker.service",
        "docker.socket",
        "nginx.service",
        "kubelet.service",
        "kube-proxy.service",
        "etcd.service",
        "salt-minion.service",
    }
)
# The machine's own essentials.
KEPT_UNITS = frozenset(
    {
        "ssh.service",
        "sshd.service",
        "ssh.socket",
        "dbus.service",
        "dbus.socket",
        "systemd-journald.service",
        "systemd-logind.service",
    }
)
# Units that would touch the host's kernel or console from inside a machine.
ALWAYS_MASKED = (
    "console-getty.service",
    "container-getty@.service",
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
    "sys-kernel-config.mount",
    "sys-fs-fuse-connections.mount",
    "dev-hugepages.mount",
    "proc-sys-fs-binfmt_misc.automount",
    "systemd-resolved.service",
)

HOSTS = """127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
{ip}\t{hostname}
169.254.169.254\tmetadata.google.internal metadata
"""
RESOLV_CONF = "# localcloud: the cloud network is closed, there is no resolver for outside names.\n"
SSHD_CONFIG = """# localcloud: the guest agent writes the ssh-keys metadata to the second file.
AuthorizedKeysFile .ssh/authorized_keys /var/lib/localcloud-guest/keys/%u
HostKey /etc/ssh/ssh_host_ed25519_key
# Keys only, no PAM: a login must not wait on logind and dbus, which a busy machine may not
# have up yet (pam_systemd then stalls every session for its 25 s dbus timeout).
UsePAM no
"""
JOURNALD_CONFIG = """# localcloud: /dev/kmsg reads nothing here; keep the journal small.
[Journal]
ReadKMsg=no
SystemMaxUse=64M
"""


class BootDisk:
    """The upper dir ``upper`` of one instance's overlay root."""

    def __init__(self, upper: Path) -> None:
        self.upper = upper

    def prepare(self, hostname: str, ip: str, hidden: Iterable[Path]) -> None:
        """Bring the disk up to date for the next boot (first boot: create its identity)."""
        self.upper.mkdir(parents=True, exist_ok=True)
        self._write_once("etc/machine-id", uuid.uuid4().hex + "\n")
        self._write_once("etc/hosts", HOSTS.format(ip=ip, hostname=hostname))
        self._write_once("etc/resolv.conf", RESOLV_CONF)
        self._host_key()
        self._write("etc/hostname", hostname + "\n")
        self._write("etc/ssh/sshd_config.d/localcloud.conf", SSHD_CONFIG)
        self._write("etc/systemd/journald.conf.d/localcloud.conf", JOURNALD_CONFIG)
        for path in _outermost(Path(p).resolve() for p in hidden):
            self._hide(path)
        if not os.path.lexists(self._path("opt/cni/bin")):
            self._mkdirs("opt/cni")
            os.symlink("/usr/lib/cni", self._path("opt/cni/bin"))
        self._install_guest()
        self._apply_unit_policy()

    def host_public_key(self) -> str:
        """``ssh-ed25519 AAAA...`` of the machine's SSH host key."""
        return " ".join(self._path(HOST_KEY + ".pub").read_text().split()[:2])

    # -- identity ---------------------------------------------------------------------------

    def _host_key(self) -> None:
        key = self._path(HOST_KEY)
        if key.exists():
            return
        for host_key in Path("/etc/ssh").glob("ssh_host_*"):
            self._whiteout(f"etc/ssh/{host_key.name}")
        key.unlink(missing_ok=True)  # a whiteout made just now for the host's own key
        self._path(HOST_KEY + ".pub").unlink(missing_ok=True)
        old_umask = os.umask(0o077)
        try:
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(key)])
        finally:
            os.umask(old_umask)
        self._path(HOST_KEY + ".pub").chmod(0o644)

    # -- host data --------------------------------------------------------------------------

    def _hide(self, path: Path) -> None:
        """Make ``path`` an empty directory of the machine's own (an overlay opaque dir)."""
        rel = str(path).lstrip("/")
        if not rel or os.path.lexists(self._path(rel)):
            return
        self._mkdirs(str(Path(rel).parent))
        target = self._path(rel)
        target.mkdir(mode=0o700)  # also when the host has none yet: it may make one later
        if path.is_dir():
            _copy_owner_mode(path, target)
        os.setxattr(target, "trusted.overlay.opaque", b"y")

    # -- units ------------------------------------------------------------------------------

    def _install_guest(self) -> None:
        self._mkdirs(GUEST_DIR.lstrip("/"))
        for name in GUEST_PROGRAMS:
            shutil.copyfile(GUEST_SOURCE / name, self._path(f"{GUEST_DIR.lstrip('/')}/{name}"))
        self._mkdirs("etc/systemd/system/multi-user.target.wants")
        for unit in GUEST_UNITS:
            self._write(f"etc/systemd/system/{unit}", (GUEST_SOURCE / unit).read_text())
            link = self._path(f"etc/systemd/system/multi-user.target.wants/{unit}")
            if not os.path.lexists(link):
                os.symlink(f"/etc/systemd/system/{unit}", link)

    def _apply_unit_policy(self) -> None:
        """Mask or disable what the host enabled; leave alone what the machine changed."""
        masked = set(ALWAYS_MASKED)
        for wants in Path("/etc/systemd/system").iterdir():
            if not wants.is_dir() or wants.suffix not in (".wants", ".requires"):
                continue
            for link in wants.iterdir():
                unit = link.name
                if unit in KEPT_UNITS or unit in GUEST_UNITS or unit.endswith(".target"):
                    continue
                if _template_of(unit) in DISABLED_UNITS or unit in DISABLED_UNITS:
                    rel = f"etc/systemd/system/{wants.name}/{unit}"
                    if not os.path.lexists(self._path(rel)):
                        self._mkdirs(str(Path(rel).parent))
                        self._whiteout(rel)
                else:
                    masked.add(unit)
        self._mkdirs("etc/systemd/system")
        for unit in masked:
            mask = self._path(f"etc/systemd/system/{unit}")
            if not os.path.lexists(mask):
                os.symlink("/dev/null", mask)

    # -- upper dir primitives ---------------------------------------------------------------

    def _path(self, rel: str) -> Path:
        return self.upper / rel

    def _mkdirs(self, rel: str) -> None:
        """Create ``rel`` in the upper dir, each level owned and moded like the host's."""
        current = Path("/")
        for part in Path(rel).parts:
            current = current / part
            target = self._path(str(current).lstrip("/"))
            if target.is_dir():
                continue
            target.mkdir()
            if current.is_dir():
                _copy_owner_mode(current, target)

    def _write(self, rel: str, text: str, mode: int = 0o644) -> None:
        self._mkdirs(str(Path(rel).parent))
        path = self._path(rel)
        if path.is_symlink() or (path.exists() and not path.is_file()):
            path.unlink()
        path.write_text(text)
        path.chmod(mode)

    def _write_once(self, rel: str, text: str) -> None:
        if not os.path.lexists(self._path(rel)):
            self._write(rel, text)

    def _whiteout(self, rel: str) -> None:
        """Hide the host's file ``rel`` (an overlay whiteout: a 0/0 character device)."""
        path = self._path(rel)
        if os.path.lexists(path):
            return
        self._mkdirs(str(Path(rel).parent))
        os.mknod(path, stat.S_IFCHR, os.makedev(0, 0))


def _outermost(paths: Iterable[Path]) -> list[Path]:
    """Drop paths inside others: hiding the outer one hides them (and their names) too."""
    unique = set(paths)
    return sorted(p for p in unique if not any(q in p.parents for q in unique))


def _template_of(unit: str) -> str:
    """``getty@tty1.service`` -> ``getty@.service``."""
    name, _, rest = unit.partition("@")
    return f"{name}@{rest[rest.index('.') :]}" if rest else unit


def _copy_owner_mode(source: Path, target: Path) -> None:
    st = source.stat()
    os.chown(target, st.st_uid, st.st_gid)
    target.chmod(stat.S_IMODE(st.st_mode))
