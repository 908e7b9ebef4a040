"""Address allocation inside subnet ranges.

There is one cloud network on this host (one bridge), so addresses are kept unique across
every network and project: an address is taken if any instance interface or address record
holds it. Like GCE, the network address, the gateway (first host) and the last two addresses
of a range are never handed out.
"""

from __future__ import annotations

import ipaddress
import socket

from localcloud.errors import ApiError, bad_field
from localcloud.store import Store


def network(cidr: str, field: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(cidr, strict=True)
    except ValueError as err:
        raise bad_field(field, cidr, f"Must be an IPv4 CIDR range ({err}).") from None


def check_range(value: str, field: str) -> None:
    """An address or a range, host bits allowed (firewall source ranges)."""
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError as err:
        raise bad_field(field, value, f"Must be an IP range ({err}).") from None


def gateway(cidr: str) -> str:
    return str(ipaddress.IPv4Network(cidr).network_address + 1)


def _as_int(ip: str) -> int | None:
    try:
        return int.from_bytes(socket.inet_aton(ip), "big") if ip.count(".") == 3 else None
    except OSError:
        return None


def taken(store: Store) -> set[int]:
    """Every address (as an integer) held by an instance interface or an address record, in
    every project. Integers keep allocation in large ranges cheap."""
    found: list[str] = []
    for project in store.projects():
        for inst in store.list(project, "instances"):
            found += [nic.get("networkIP", "") for nic in inst.get("networkInterfaces", [])]
        found += [addr.get("address", "") for addr in store.list(project, "addresses")]
    return {n for ip in found if (n := _as_int(ip)) is not None}


def _usable(cidr: str) -> range:
    net = ipaddress.IPv4Network(cidr)
    return range(int(net.network_address) + 2, int(net.broadcast_address) - 1)


def allocate(used: set[int], cidr: str, what: str) -> str:
    """The lowest free address in ``cidr``; adds it to ``used``."""
    for n in _usable(cidr):
        if n not in used:
            used.add(n)
            return str(ipaddress.IPv4Address(n))
    raise ApiError(400, "ipSpaceExhausted", f"IP space of '{what}' ({cidr}) is exhausted.")


def claim(used: set[int], cidr: str, ip: str, field: str) -> str:
    """Take a caller-chosen ``ip``: it must be a usable, free address of ``cidr``."""
    try:
        n = int(ipaddress.IPv4Address(ip))
    except ValueError:
        raise bad_field(field, ip, "Must be an IPv4 address.") from None
    if n not in _usable(cidr):
        raise bad_field(field, ip, f"Address is not usable in range {cidr}.")
    if n in used:
        raise bad_field(field, ip, "Address is already in use.")
    used.add(n)
    return ip


def contains(cidr: str, ip: str) -> bool:
    try:
        return ipaddress.IPv4Address(ip) in ipaddress.IPv4Network(cidr)
    except ValueError:
        return False
