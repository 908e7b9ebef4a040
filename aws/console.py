"""A VM's SSH host key, as cloud-init prints it to the console at the end of the first boot.

EC2 has no guest attributes; the console (``GetConsoleOutput``) is the channel AWS documents for
learning a new instance's host key before trusting it. cloud-init writes the keys between
``-----BEGIN SSH HOST KEY KEYS-----`` and ``-----END SSH HOST KEY KEYS-----``; the last block
wins (a reboot prints it again).
"""

from __future__ import annotations

import base64
import binascii

BEGIN = "-----BEGIN SSH HOST KEY KEYS-----"
END = "-----END SSH HOST KEY KEYS-----"
KEY_TYPE = "ssh-ed25519"


def decode_output(output: str) -> str:
    """The console text: AWS sends it base64-encoded (some emulators send it plain)."""
    try:
        return base64.b64decode(output, validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return output


def ed25519_host_key(console: str) -> str | None:
    """``ssh-ed25519 AAAA...`` from the last host key block of ``console``, if any."""
    start = console.rfind(BEGIN)
    if start < 0:
        return None
    end = console.find(END, start)
    if end < 0:
        return None
    for line in console[start + len(BEGIN) : end].splitlines():
        # Console lines may carry a kernel timestamp or "ci-info:" prefix before the key.
        fields = line.split()
        if KEY_TYPE in fields:
            at = fields.index(KEY_TYPE)
            if at + 1 < len(fields):
                return f"{KEY_TYPE} {fields[at + 1]}"
    return None
