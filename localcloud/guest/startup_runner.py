"""Runs the instance's ``startup-script`` metadata once per boot, as GCE images do.

The script's output goes to serial port 1 (and the journal), prefixed ``startup-script:``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import metadata_client as md

SCRIPT = Path("/run/localcloud-guest/startup-script")


def main() -> int:
    try:
        script = md.get("instance/attributes/startup-script", retry_for=120)
    except md.Unavailable as exc:
        md.console("startup-script", f"metadata server unavailable: {exc}")
        return 1
    if script is None:
        md.console("startup-script", "No startup script to run.")
        return 0
    SCRIPT.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    SCRIPT.write_text(script)
    SCRIPT.chmod(0o700)
    argv = [str(SCRIPT)] if script.startswith("#!") else ["/bin/bash", str(SCRIPT)]
    md.console("startup-script", "Starting startup script.")
    proc = subprocess.Popen(
        argv, cwd="/", stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    for raw in proc.stdout:
        line = raw.decode(errors="replace").rstrip("\n")
        md.console("startup-script", line)
        print(line, flush=True)
    status = proc.wait()
    md.console("startup-script", f"Finished running startup script, exit status {status}.")
    return status


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
