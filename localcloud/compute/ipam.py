"""Address allocation inside subnet ranges.

There is one cloud network on this host (one bridge), so addresses are kept unique across
every network and project: an address is taken if any instance interface or address record
holds it. Like GCE, the network address, the gateway (first host) and the last two addresses
of a range are never handed out.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

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


def taken(store: Store) -> set[str]:
    """Every address held by an instance interface or an address record, in every project."""
    out: set[str] = set()
    for project in store.projects():
        for inst in store.list(project, "instances"):
            for nic in inst.get("networkInterfaces", []):
                out.add(nic.get("networkIP", ""))
        for addr in store.list(project, "addresses"):
            out.add(addr.get("address", ""))
    out.discard("")
    return out


def usable(cidr: str) -> Iterable[str]:
    net = ipaddress.IPv4Network(cidr)
    first, last = int(net.network_address) + 2, int(net.broadcast_address) - 2
    return (str(ipaddress.IPv4Address(i)) for i in range(first, last + 1))


def allocate(used: set[str], cidr: str, what: str) -> str:
    """The lowest free address in ``cidr``; adds it to ``used``."""
    for ip in usable(cidr):
        if ip not in used:
            used.add(ip)
            return ip
    raise ApiError(400, "ipSpaceExhausted", f"IP space of '{what}' ({cidr}) is exhausted.")


def claim(used: set[str], cidr: str, ip: str, field: str) -> str:
    """Take a caller-chosen ``ip``: it must be a usable, free address of ``cidr``."""
    try:
        addr = ipaddress.IPv4Address(ip)
    except ValueError:
        raise bad_field(field, ip, "Must be an IPv4 address.") from None
    net = ipaddress.IPv4Network(cidr)
    if not int(net.network_address) + 2 <= int(addr) <= int(net.broadcast_address) - 2:
        raise bad_field(field, ip, f"Address is not usable in range {cidr}.")
    if ip in used:
        raise bad_field(field, ip, "Address is already in use.")
    used.add(ip)
    return ip


def contains(cidr: str, ip: str) -> bool:
    try:
        return ipaddress.IPv4Address(ip) in ipaddress.IPv4Network(cidr)
    except ValueError:
        return False
