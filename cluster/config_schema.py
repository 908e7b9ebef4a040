"""The settings kube-up knows and how each raw value becomes a typed one.

Raw values come from three places (a provider's ``config_default`` module, the environment, a
YAML file), so a parser accepts whatever those can hold (str, int, float, bool, None, lists...)
and either returns the typed value or raises :class:`Invalid` with the allowed form, which
:mod:`cluster.config` turns into a one-line ``ConfigError``. Every parser is total: it never
raises anything else, whatever it is given.

Formats that differ per cloud (zone, machine size, image, project) are not here: each provider's
``config_default`` module gives them as regular expressions in its ``FORMATS`` table.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

RFC1035 = r"[a-z]([-a-z0-9]*[a-z0-9])?"
# Longest suffix kube-up may append to INSTANCE_PREFIX in a resource name: the GCE provider's
# "-minion-template-<8 hex>" (25); GCE names are at most 63 characters.
MAX_NAME_SUFFIX = 25
MAX_NAME = 63
MAX_PREFIX = MAX_NAME - MAX_NAME_SUFFIX
MAX_NODES = 1000
# Private ranges a cluster may use: RFC 1918 plus the RFC 6598 shared range GCE also accepts.
PRIVATE_RANGES = tuple(
    ipaddress.IPv4Network(net)
    for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")
)


class Invalid(ValueError):
    """A raw value is not acceptable; the message says what is allowed."""


def _text(raw: object, what: str) -> str:
    if not isinstance(raw, str):
        raise Invalid(f"expected text ({what}), got a YAML {type(raw).__name__}")
    return raw.strip()


def pattern(regex: str, description: str, max_len: int = MAX_NAME) -> Callable[[object], str]:
    """A text setting that must match ``regex`` entirely (ASCII only)."""
    compiled = re.compile(regex, re.ASCII)

    def parse(raw: object) -> str:
        value = _text(raw, description)
        if len(value) > max_len or not compiled.fullmatch(value):
            raise Invalid(f"expected {description}")
        return value

    return parse


def integer(low: int, high: int, what: str) -> Callable[[object], int]:
    """A whole number in ``[low, high]``, given as a number or as digits."""

    def parse(raw: object) -> int:
        allowed = f"expected {what}: a whole number from {low} to {high}"
        if isinstance(raw, bool):
            raise Invalid(allowed)
        if isinstance(raw, int):
            value = raw
        elif isinstance(raw, str) and re.fullmatch(r"[0-9]{1,9}", raw.strip(), re.ASCII):
            value = int(raw.strip())
        else:
            raise Invalid(allowed)
        if not low <= value <= high:
            raise Invalid(allowed)
        return value

    return parse


_DISK_GB = (10, 65536)


def disk_size_gb(raw: object) -> int:
    """A disk size in GB, written as in the original config-default: ``20GB``, ``20`` or 20."""
    low, high = _DISK_GB
    allowed = f"expected a size like '20GB', from {low}GB to {high}GB"
    if isinstance(raw, str):
        match = re.fullmatch(r"([0-9]{1,6})\s*(G|GB)?", raw.strip(), re.ASCII | re.IGNORECASE)
        if not match:
            raise Invalid(allowed)
        raw = int(match.group(1))
    if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
        raise Invalid(allowed)
    return raw


_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


def seconds(low: float, high: float) -> Callable[[object], float]:
    """A duration in seconds: a number, or text like ``2``, ``2.5s``, ``15m``, ``1h``."""

    def parse(raw: object) -> float:
        allowed = f"expected a duration like '2s', '15m' or a number of seconds, {low}s to {high}s"
        if isinstance(raw, bool):
            raise Invalid(allowed)
        if isinstance(raw, int | float):
            value = float(raw)
        elif isinstance(raw, str):
            match = re.fullmatch(r"([0-9]{1,7}(?:\.[0-9]{1,6})?)\s*([smh]?)", raw.strip(), re.ASCII)
            if not match:
                raise Invalid(allowed)
            value = float(match.group(1)) * _UNITS[match.group(2)]
        else:
            raise Invalid(allowed)
        if not math.isfinite(value) or not low <= value <= high:
            raise Invalid(allowed)
        return value

    return parse


_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def boolean(raw: object) -> bool:
    """A switch: YAML true/false, or text such as ``true``, ``false``, ``yes``, ``no``, 1, 0."""
    allowed = "expected true or false"
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int) and raw in (0, 1):
        return bool(raw)
    if isinstance(raw, str) and raw.strip().lower() in _TRUE + _FALSE:
        return raw.strip().lower() in _TRUE
    raise Invalid(allowed)


def ipv4_network(min_prefix: int, max_prefix: int) -> Callable[[object], ipaddress.IPv4Network]:
    """A private IPv4 CIDR whose prefix length is within ``[min_prefix, max_prefix]``."""

    def parse(raw: object) -> ipaddress.IPv4Network:
        shape = (
            f"an IPv4 CIDR like '10.244.0.0/16' with a prefix from /{min_prefix} to /{max_prefix}"
        )
        text = _text(raw, shape)
        if not re.fullmatch(r"[0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}", text, re.ASCII):
            raise Invalid(f"expected {shape}")
        try:
            net = ipaddress.IPv4Network(text, strict=False)
        except ValueError as exc:
            raise Invalid(f"expected {shape} ({exc})") from None
        if str(net) != text:
            raise Invalid(f"host bits are set; the network is {net}")
        if not min_prefix <= net.prefixlen <= max_prefix:
            raise Invalid(f"expected {shape}")
        if not any(net.subnet_of(private) for private in PRIVATE_RANGES):
            ranges = ", ".join(str(private) for private in PRIVATE_RANGES)
            raise Invalid(f"expected a private range inside one of {ranges}")
        return net

    return parse


@dataclass(frozen=True)
class Setting:
    """One setting: its name, how to parse it, and what it means (for errors and docs)."""

    name: str
    parse: Callable[[object], Any]
    doc: str


# Settings whose format is the provider's (FORMATS in its config_default module).
PROVIDER_FORMATTED = ("ZONE", "PROJECT", "MASTER_SIZE", "NODE_SIZE", "MASTER_IMAGE", "NODE_IMAGE")

_NAME = f"a lowercase name matching {RFC1035} (at most {MAX_NAME} characters)"
_TAG = f"'' (derived from INSTANCE_PREFIX) or {_NAME}"

COMMON_SETTINGS: tuple[Setting, ...] = (
    Setting("NUM_NODES", integer(1, MAX_NODES, "a node count"), "number of node VMs"),
    Setting(
        "INSTANCE_PREFIX",
        pattern(
            RFC1035,
            f"a lowercase name matching {RFC1035} of at most {MAX_PREFIX} characters "
            f"(kube-up appends suffixes of up to {MAX_NAME_SUFFIX})",
            MAX_PREFIX,
        ),
        "prefix of every resource name; the cluster's name",
    ),
    Setting("REGION", pattern(f"({RFC1035})?", "'' or a region name"), "must match ZONE"),
    Setting("NETWORK", pattern(RFC1035, _NAME), "network (GCE) or VPC name (AWS)"),
    Setting("MASTER_DISK_SIZE", disk_size_gb, "master boot disk size"),
    Setting("NODE_DISK_SIZE", disk_size_gb, "node boot disk size"),
    Setting("SUBNET_RANGE", ipv4_network(8, 29), "the VMs' subnet"),
    Setting("CLUSTER_IP_RANGE", ipv4_network(8, 24), "pod addresses, one /24 per VM"),
    Setting("SERVICE_CLUSTER_IP_RANGE", ipv4_network(12, 28), "service cluster IPs"),
    Setting(
        "KUBE_VERSION",
        pattern(
            r"v[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(-[0-9A-Za-z.]{1,30})?",
            "a Kubernetes release like 'v1.34.4'",
        ),
        "Kubernetes release to install",
    ),
    Setting("KUBE_UP_POLL_INTERVAL", seconds(0.1, 60), "pause between apiserver polls"),
    Setting("KUBE_UP_TIMEOUT", seconds(10, 86400), "how long kube-up waits for the cluster"),
    Setting("MASTER_TAG", pattern(f"({RFC1035})?", _TAG), "network tag of the master"),
    Setting("NODE_TAG", pattern(f"({RFC1035})?", _TAG), "network tag of the nodes"),
    Setting("ENABLE_CLUSTER_DNS", boolean, "run the CoreDNS addon; pods resolve Service names"),
    Setting(
        "DNS_DOMAIN",
        pattern(
            r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?){0,4}",
            "a DNS domain like 'cluster.local' (lowercase labels joined by dots)",
        ),
        "the cluster's DNS domain; Services are <name>.<namespace>.svc.<domain>",
    ),
    Setting(
        "STAGING_BUCKET",
        pattern(r"([a-z0-9][-a-z0-9]{1,61}[a-z0-9])?", "'' (derived) or a bucket name"),
        "object-store bucket for release tarballs",
    ),
)
COMMON_NAMES = frozenset(setting.name for setting in COMMON_SETTINGS) | frozenset(
    PROVIDER_FORMATTED
)
