"""Create or delete many resources of one kind at once, within a small API-call budget.

Waiting on each operation would cost at least one call per resource on top of its insert or
delete. So every request is sent (a few at a time, in threads), then the resources are *listed*
until the wanted state shows — one call per 500 resources per round. Only a resource that stays
in the wrong state has its own operation waited on, which is where GCE reports why it failed
(quota, ...).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from cluster.errors import ClusterTimeout

REQUEST_THREADS = 16
STALL_ROUNDS = 3


def settle(
    names: Iterable[str],
    send: Callable[[str], Any],
    list_present: Callable[[], set[str]],
    wait_failed: Callable[[str, Any], None],
    *,
    present: bool,
    what: str,
    poll_s: float = 1.0,
    timeout_s: float = 900.0,
) -> None:
    """Send one request per name, then list until every name is present (or absent).

    ``send(name)`` makes one request and returns its operation; ``list_present()`` returns the
    names that exist now; ``wait_failed(name, operation)`` waits for one operation and raises
    its error (called only for stragglers).
    """
    wanted = sorted(set(names))
    if not wanted:
        return
    with ThreadPoolExecutor(max_workers=REQUEST_THREADS) as pool:
        operations = dict(zip(wanted, pool.map(send, wanted), strict=True))
    deadline = time.monotonic() + timeout_s
    stalled, last_pending = 0, len(wanted) + 1
    while True:
        now_present = list_present()
        pending = [name for name in wanted if (name in now_present) != present]
        if not pending:
            return
        stalled = stalled + 1 if len(pending) >= last_pending else 0
        last_pending = len(pending)
        if stalled >= STALL_ROUNDS:
            for name in pending:
                wait_failed(name, operations[name])
            stalled = 0
        if time.monotonic() > deadline:
            state = "still missing" if present else "still there"
            raise ClusterTimeout(
                f"{len(pending)} {what} (e.g. {pending[0]}) {state} after {timeout_s:g}s",
                fix="run the command again: it acts only on what is left",
            )
        time.sleep(poll_s)
