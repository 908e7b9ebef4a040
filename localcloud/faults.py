"""Seeded fault injection for the Compute API.

A schedule is a small YAML or JSON document, loaded with ``localcloud serve --faults FILE`` or
replaced at runtime with ``POST /localcloud/v1/faults``::

    seed: 7                       # seeds each rule's random generator (default 0)
    rules:
      - api: compute.instances.insert   # API method id, glob (default: any)
        method: POST                    # HTTP verb (default: any)
        path: "*/zones/us-central1-b/*" # request path, glob (default: any)
        nth: [2, 5]                     # fire on these matching calls, counted from 1
        after: 0                        # or: let the first N matching calls through,
        times: 3                        #     then fire at most this many times,
        probability: 0.25               #     each with this probability (seeded)
        fault: http_error               # what to inject, below
        status: 503

Faults: ``http_error`` (``status``, default 503: the call fails with GCE's error body),
``rate_limit`` (429 ``rateLimitExceeded``; use ``after``/``times`` for a burst), ``delay``
(``seconds`` before answering), and, for calls that start an operation, ``operation_error``
(``code``, ``message``, ``status``: the operation ends in that error, nothing changes),
``quota`` (``metric``: the operation ends in ``QUOTA_EXCEEDED``, as when quota runs out
mid-way) and ``slow_operation`` (``seconds`` added to the operation's duration).

Every rule counts the calls it matches; the first rule that fires on a call applies. With the
same seed and the same sequence of calls, the same calls fail.
"""

from __future__ import annotations

import fnmatch
import random
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from localcloud.errors import ApiError, OperationFailed, quota_exceeded, rate_limited

HTTP_FAULTS = {"http_error", "rate_limit", "delay"}
OPERATION_FAULTS = {"operation_error", "quota", "slow_operation"}
_RULE_KEYS = {
    "api",
    "method",
    "path",
    "nth",
    "after",
    "times",
    "probability",
    "fault",
    "status",
    "code",
    "message",
    "metric",
    "seconds",
}
_REASONS = {500: "backendError", 502: "badGateway", 503: "backendError", 504: "timeout"}


@dataclass
class OpFault:
    """An operation-level fault carried from the HTTP layer to the operation engine."""

    failure: OperationFailed | None
    seconds: float = 0.0


@dataclass
class Decision:
    """What to do to one call: an immediate error, a delay, and/or an operation fault."""

    rule: int
    fault: str
    error: ApiError | None = None
    delay: float = 0.0
    op: OpFault | None = None


@dataclass
class _Rule:
    spec: dict[str, Any]
    rng: random.Random
    matched: int = 0
    fired: int = 0
    nth: set[int] = field(default_factory=set)


def _number(spec: dict[str, Any], key: str, default: float, index: int) -> float:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"fault rule {index}: {key} must be a number >= 0, got {value!r}")
    return float(value)


def _validate(spec: Any, index: int) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise ValueError(f"fault rule {index}: must be a mapping")
    unknown = set(spec) - _RULE_KEYS
    if unknown:
        raise ValueError(
            f"fault rule {index}: unknown key(s) {', '.join(sorted(unknown))}; "
            f"allowed: {', '.join(sorted(_RULE_KEYS))}"
        )
    fault = spec.get("fault")
    if fault not in HTTP_FAULTS | OPERATION_FAULTS:
        raise ValueError(
            f"fault rule {index}: fault must be one of "
            f"{', '.join(sorted(HTTP_FAULTS | OPERATION_FAULTS))}, got {fault!r}"
        )
    nth = spec.get("nth", [])
    if not isinstance(nth, list) or not all(isinstance(n, int) and n >= 1 for n in nth):
        raise ValueError(f"fault rule {index}: nth must be a list of call numbers >= 1")
    probability = _number(spec, "probability", 1.0, index)
    if probability > 1:
        raise ValueError(f"fault rule {index}: probability must be between 0 and 1")
    _number(spec, "after", 0, index)
    _number(spec, "seconds", 0, index)
    if "times" in spec:
        _number(spec, "times", 0, index)
    status = spec.get("status", 503 if fault == "http_error" else 500)
    if not isinstance(status, int) or not 400 <= status <= 599:
        raise ValueError(f"fault rule {index}: status must be an HTTP error status, got {status!r}")
    if fault == "quota" and not isinstance(spec.get("metric", "CPUS"), str):
        raise ValueError(f"fault rule {index}: metric must be a quota metric name")
    for key in ("api", "method", "path", "code", "message"):
        if key in spec and not isinstance(spec[key], str):
            raise ValueError(f"fault rule {index}: {key} must be a string")
    return spec


class FaultSchedule:
    """The active rules, their counters, and a log of what was injected."""

    def __init__(self, schedule: dict[str, Any] | None = None) -> None:
        self._lock = threading.Lock()
        self.events: deque[dict[str, Any]] = deque(maxlen=2000)
        self.replace(schedule or {})

    def replace(self, schedule: Any) -> None:
        """Validate and install ``schedule`` (raises ValueError naming the bad part)."""
        if not isinstance(schedule, dict):
            raise ValueError("fault schedule must be a mapping with 'seed' and 'rules'")
        unknown = set(schedule) - {"seed", "rules"}
        if unknown:
            raise ValueError(f"fault schedule: unknown key(s) {', '.join(sorted(unknown))}")
        seed = schedule.get("seed", 0)
        if not isinstance(seed, int | str):
            raise ValueError("fault schedule: seed must be an integer or a string")
        specs = schedule.get("rules", [])
        if not isinstance(specs, list):
            raise ValueError("fault schedule: rules must be a list")
        rules = [
            _Rule(_validate(spec, i), random.Random(f"{seed}/{i}"), nth=set(spec.get("nth", [])))
            for i, spec in enumerate(specs)
        ]
        with self._lock:
            self.seed = seed
            self._rules = rules
            self.events.clear()

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "seed": self.seed,
                "rules": [dict(r.spec, matched=r.matched, fired=r.fired) for r in self._rules],
                "events": list(self.events),
            }

    def decide(self, api: str, method: str, path: str, starts_operation: bool) -> Decision | None:
        """Count this call against every matching rule; the first one that fires applies."""
        decision = None
        with self._lock:
            for index, rule in enumerate(self._rules):
                spec = rule.spec
                if spec["fault"] in OPERATION_FAULTS and not starts_operation:
                    continue
                if not (
                    fnmatch.fnmatchcase(api, spec.get("api", "*"))
                    and fnmatch.fnmatchcase(method, spec.get("method", "*").upper())
                    and fnmatch.fnmatchcase(path, spec.get("path", "*"))
                ):
                    continue
                rule.matched += 1
                if decision is None and self._fires(rule):
                    rule.fired += 1
                    decision = _decision(index, spec)
                    self.events.append(
                        {
                            "rule": index,
                            "fault": spec["fault"],
                            "api": api,
                            "method": method,
                            "path": path,
                            "call": rule.matched,
                        }
                    )
        return decision

    @staticmethod
    def _fires(rule: _Rule) -> bool:
        spec = rule.spec
        if rule.nth:
            return rule.matched in rule.nth
        if rule.matched <= spec.get("after", 0):
            return False
        if "times" in spec and rule.fired >= spec["times"]:
            return False
        return rule.rng.random() < spec.get("probability", 1.0)


def _decision(index: int, spec: dict[str, Any]) -> Decision:
    fault = spec["fault"]
    status = spec.get("status", 503 if fault == "http_error" else 500)
    seconds = float(spec.get("seconds", 0))
    if fault == "http_error":
        reason = _REASONS.get(status, "backendError" if status >= 500 else "invalid")
        message = spec.get("message", f"Injected fault: HTTP {status}")
        return Decision(index, fault, error=ApiError(status, reason, message))
    if fault == "rate_limit":
        return Decision(index, fault, error=rate_limited())
    if fault == "delay":
        return Decision(index, fault, delay=seconds)
    if fault == "quota":
        failure = quota_exceeded(spec.get("metric", "CPUS"), 0, "in region (injected)")
        return Decision(index, fault, op=OpFault(failure))
    if fault == "slow_operation":
        return Decision(index, fault, op=OpFault(None, seconds))
    failure = OperationFailed(
        spec.get("code", "INTERNAL_ERROR"),
        spec.get("message", "Injected operation failure"),
        status,
    )
    return Decision(index, fault, op=OpFault(failure))
