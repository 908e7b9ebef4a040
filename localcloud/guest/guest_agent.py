"""The guest agent: applies the ``ssh-keys`` metadata and publishes the SSH host key.

- ``ssh-keys`` (instance, plus project unless ``block-project-ssh-keys`` is true), one
  ``user:key-type base64 [comment]`` per line: each user is created if missing (in
  ``google-sudoers``, as on GCE) and its keys written to /var/lib/localcloud-guest/keys/<user>,
  which sshd reads as an extra AuthorizedKeysFile; users that left the metadata lose their keys.
  Changes are followed with ``wait_for_change``, so new keys work without a reboot.
- The host key goes to the serial port (between GCE's BEGIN/END SSH HOST KEY KEYS lines) and,
  when the metadata has ``enable-guest-attributes=TRUE`` (GCE's switch), to the guest attribute
  ``hostkeys/<type>``, so clients can verify it before the first connection.
"""

from __future__ import annotations

import os
import pwd
import re
import subprocess
import time
from pathlib import Path

import metadata_client as md

KEYS_DIR = Path("/var/lib/localcloud-guest/keys")
USER = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
KEY = re.compile(r"^(ssh-[a-z0-9-]+|ecdsa-sha2-[a-z0-9-]+|sk-[a-z0-9@.-]+) [A-Za-z0-9+/=]+( .*)?$")
SUDOERS = "%google-sudoers ALL=(ALL:ALL) NOPASSWD:ALL\n"


def host_keys() -> list[str]:
    """``type base64`` of each SSH host key."""
    paths = sorted(Path("/etc/ssh").glob("ssh_host_*_key.pub"))
    return [" ".join(p.read_text().split()[:2]) for p in paths]


def announce_host_keys(keys: list[str]) -> None:
    md.console("guest-agent", "-----BEGIN SSH HOST KEY KEYS-----")
    for key in keys:
        md.console("guest-agent", key)
    md.console("guest-agent", "-----END SSH HOST KEY KEYS-----")


def guest_attributes_enabled(meta: dict) -> bool:
    """GCE's switch: ``enable-guest-attributes=TRUE`` in instance (or else project) metadata."""
    instance = meta.get("instance", {}).get("attributes", {})
    project = meta.get("project", {}).get("attributes", {})
    value = instance.get("enable-guest-attributes", project.get("enable-guest-attributes", ""))
    return value.upper() == "TRUE"


def publish_host_keys(keys: list[str]) -> bool:
    """PUT each key to guest attribute hostkeys/<type>; True when all were stored."""
    return all([md.put(f"instance/guest-attributes/hostkeys/{k.split()[0]}", k) for k in keys])


def wanted_keys(meta: dict) -> dict[str, list[str]]:
    """user -> keys from the recursive metadata document."""
    instance = meta.get("instance", {}).get("attributes", {})
    project = meta.get("project", {}).get("attributes", {})
    lines = instance.get("ssh-keys", "").splitlines()
    if instance.get("block-project-ssh-keys", "").lower() != "true":
        lines += project.get("ssh-keys", "").splitlines()
    users: dict[str, list[str]] = {}
    for line in lines:
        user, sep, key = line.strip().partition(":")
        if sep and USER.match(user) and KEY.match(key.strip()):
            users.setdefault(user, []).append(key.strip())
    return users


def ensure_user(user: str) -> None:
    try:
        pwd.getpwnam(user)
        return
    except KeyError:
        pass
    if subprocess.run(["getent", "group", "google-sudoers"], capture_output=True).returncode:
        subprocess.run(["groupadd", "--system", "google-sudoers"], check=True)
    sudoers = Path("/etc/sudoers.d")
    if sudoers.is_dir() and not (sudoers / "google_sudoers").exists():
        (sudoers / "google_sudoers").write_text(SUDOERS)
        (sudoers / "google_sudoers").chmod(0o440)
    subprocess.run(
        ["useradd", "-m", "-s", "/bin/bash", "-p", "*", "-G", "google-sudoers", user], check=True
    )


def apply_keys(users: dict[str, list[str]]) -> None:
    KEYS_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    for user, keys in users.items():
        ensure_user(user)
        tmp = KEYS_DIR / f".{user}.new"
        tmp.write_text("".join(k + "\n" for k in keys))
        tmp.chmod(0o644)
        os.replace(tmp, KEYS_DIR / user)
    for stale in KEYS_DIR.iterdir():
        if stale.name not in users:
            stale.unlink()


def main() -> None:
    keys = host_keys()
    announce_host_keys(keys)
    published = owed = False
    etag = "0"
    while True:
        try:
            # Short waits while a publication is owed, so a failed PUT is retried soon.
            meta, new_etag = md.watch(etag, timeout_sec=5 if owed else 60)
        except (md.Unavailable, ValueError):
            time.sleep(2)
            continue
        if not published and guest_attributes_enabled(meta):
            published = publish_host_keys(keys)
            owed = not published
        if new_etag != etag or not new_etag:
            apply_keys(wanted_keys(meta))
        if not new_etag:
            time.sleep(2)  # a server without ETags cannot wait for changes: poll gently
        etag = new_etag or etag


if __name__ == "__main__":
    os.umask(0o022)
    main()
