"""Create or delete many resources of one kind at once, within a small API-call budget.

Waiting on each operation would cost at least one call per resource on top of its insert or
delete. So every request is sent (a few at a time, in threads), and then the *operations list*
is read, filtered to what is still running, until none of ours is; one more filtered list finds
those of ours that failed (GCE keeps the cause there: quota, ...). A last listing of the
resources confirms the outcome. Each round costs a call per 500 results, not one per resource.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from google.api_core import exceptions as gexc

from cluster.errors import CloudError, ClusterTimeout
from gce.calls import cloud_error, operation_exception

REQUEST_THREADS = 16
OperationLister = Callable[[str], Iterable[Any]]


def settle(
    names: Iterable[str],
    send: Callable[[str], Any],
    list_operations: OperationLister,
    list_present: Callable[[], set[str]],
    *,
    present: bool,
    what: str,
    poll_s: float = 1.0,
    timeout_s: float = 900.0,
) -> None:
    """Send one request per name, wait for the operations, then check every name is present
    (or absent). ``send(name)`` returns the operation (or None when there was nothing to do);
    ``list_operations(filter)`` lists the operations of the scope the requests went to."""
    wanted = sorted(set(names))
    if not wanted:
        return
    with ThreadPoolExecutor(max_workers=REQUEST_THREADS) as pool:
        sent = dict(zip(wanted, pool.map(send, wanted), strict=True))
    ours = {op.name: name for name, op in sent.items() if op is not None}
    deadline = time.monotonic() + timeout_s
    while ours:
        running = [op.name for op in list_operations("status != DONE") if op.name in ours]
        if not running:
            break
        if time.monotonic() > deadline:
            raise ClusterTimeout(
                f"{len(running)} {what} operations still running after {timeout_s:g}s",
                fix="run the command again: it acts only on what is left",
            )
        time.sleep(poll_s)
    # Failed operations are few: listing them all and keeping ours is cheap.
    for op in list_operations("error:*"):
        exc = operation_exception(op) if op.name in ours else None
        if exc is not None and not (present and isinstance(exc, gexc.Conflict)):
            raise cloud_error(exc, f"{what.rstrip('s')} {ours[op.name]}")
    now_present = list_present()
    wrong = [name for name in wanted if (name in now_present) != present]
    if wrong:
        state = "missing" if present else "still there"
        raise CloudError(
            f"{len(wrong)} {what} {state} after their operations ended (e.g. {wrong[0]})",
            fix="run the command again: it acts only on what is left",
        )
