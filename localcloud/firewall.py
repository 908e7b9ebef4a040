"""GCE firewall resources and the closed cloud network, rendered as one nftables table.

A pure function of the firewalls, the machines' addresses and tags and the bridge: the same text
is applied by :mod:`localcloud.cloudnet` and inspected by tests. GCE's model is kept: ingress is
denied unless a rule allows it (rules ordered by ``priority``, a deny winning a tie), targets are
chosen by ``targetTags`` (no tags: every instance), sources by ``sourceRanges``/``sourceTags``
(neither: 0.0.0.0/0). It applies to everything that reaches a machine: from the host (output hook)
and from other machines (forward hook, routed or bridged — the host's br_netfilter hands bridged
IPv4 to the inet forward hook). Forwarding between the bridge and any other interface is dropped:
the cloud network is closed, nothing inside it reaches beyond this host; and of the host itself
machines reach only ``host_address`` (metadata server, object storage) and ICMP.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from localcloud.hostcmd import MachineError

METADATA_IP = "169.254.169.254"
METADATA_PORT = 80

# GCE's protocol names; any other value must be a protocol number.
PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1, "esp": 50, "ah": 51, "sctp": 132, "ipip": 4}
PORTED = {6, 17, 132}


@dataclass(frozen=True)
class MachineAddress:
    """What the firewall needs to know about one running instance."""

    ip: str
    tags: frozenset[str] = frozenset()
    # destRanges that GCE routes send to this instance (pod CIDRs): traffic to them is traffic
    # to the instance, as on GCE.
    routed: tuple[str, ...] = ()
    # Its external (NAT) addresses, which this host reaches it at.
    nat_ips: tuple[str, ...] = ()


@dataclass
class _Rule:
    name: str
    sources: list[str]  # empty: any source
    targets: list[str]  # empty: any instance
    matches: list[str] = field(default_factory=list)  # one protocol/ports clause each
    verdict: str = "accept"


def table_name(bridge: str) -> str:
    return f"localcloud_{bridge}"


def render(
    bridge: str,
    host_address: str,
    metadata_port: int,
    machines: Sequence[MachineAddress],
    firewalls: Iterable[dict[str, Any]],
) -> str:
    """The nft script that atomically replaces this bridge's table."""
    table = table_name(bridge)
    br = f'"{bridge}"'
    rules = "".join(f"        {line}\n" for line in _ingress_lines(machines, firewalls))
    return f"""table inet {table}
delete table inet {table}
table inet {table} {{
    chain prerouting {{
        type nat hook prerouting priority dstnat; policy accept;
        iifname {br} ip daddr {METADATA_IP} tcp dport {METADATA_PORT} \\
            dnat ip to {host_address}:{metadata_port} comment "metadata server"
    }}
    chain forward {{
        type filter hook forward priority filter; policy accept;
        iifname {br} oifname != {br} counter drop comment "closed network: nothing leaves"
        iifname != {br} oifname {br} counter drop comment "closed network: nothing enters"
        iifname {br} oifname {br} jump ingress
    }}
    chain input {{
        type filter hook input priority filter; policy accept;
        iifname {br} ct state established,related accept
        iifname {br} ip daddr {host_address} accept comment "metadata and storage"
        iifname {br} meta l4proto icmp accept comment "ping the gateway"
        iifname {br} counter drop comment "the host is closed to machines otherwise"
    }}
    chain output {{
        type filter hook output priority filter; policy accept;
        oifname {br} jump ingress
    }}
    chain ingress {{
        ct state established,related accept
        meta nfproto ipv6 drop
{rules}        counter drop comment "GCE implied deny ingress"
    }}
}}
"""


def remove_script(bridge: str) -> str:
    """The nft script that removes this bridge's table (a no-op when it is absent)."""
    table = table_name(bridge)
    return f"table inet {table}\ndelete table inet {table}\n"


def _ingress_lines(
    machines: Sequence[MachineAddress], firewalls: Iterable[dict[str, Any]]
) -> list[str]:
    lines = []
    for rule in _rules(machines, firewalls):
        prefix = ""
        if rule.sources:
            prefix += f"ip saddr {_set(rule.sources)} "
        if rule.targets:
            prefix += f"ip daddr {_set(rule.targets)} "
        for match in rule.matches:
            lines.append(f'{prefix}{match}{rule.verdict} comment "{rule.name}"')
    return lines


def _rules(machines: Sequence[MachineAddress], firewalls: Iterable[dict[str, Any]]) -> list[_Rule]:
    ordered = sorted(
        (fw for fw in firewalls if _enforced(fw)),
        key=lambda fw: (int(fw.get("priority", 1000)), 0 if fw.get("denied") else 1, fw["name"]),
    )
    rules = []
    for fw in ordered:
        sources = _sources(fw, machines)
        targets = _targets(fw, machines)
        if sources is None or targets is None:
            continue  # tags that select no instance: the rule matches nothing now
        verdict = "drop" if fw.get("denied") else "accept"
        entries = fw.get("denied") or fw.get("allowed") or []
        matches = [_protocol_match(fw["name"], entry) for entry in entries]
        rules.append(_Rule(fw["name"], sources, targets, matches, verdict))
    return rules


def _enforced(fw: dict[str, Any]) -> bool:
    return not fw.get("disabled", False) and fw.get("direction", "INGRESS") == "INGRESS"


def _sources(fw: dict[str, Any], machines: Sequence[MachineAddress]) -> list[str] | None:
    ranges = [_network(fw["name"], "sourceRanges", r) for r in fw.get("sourceRanges", [])]
    ranges = [r for r in ranges if r.version == 4]
    tags = set(fw.get("sourceTags", []))
    if not fw.get("sourceRanges") and not tags:
        return []  # GCE: neither given means 0.0.0.0/0
    ranges += [ipaddress.ip_network(m.ip) for m in machines if tags & m.tags]
    if not ranges:
        return None
    collapsed = list(ipaddress.collapse_addresses(ranges))
    if ipaddress.ip_network("0.0.0.0/0") in collapsed:
        return []
    return [str(n) for n in collapsed]


def _targets(fw: dict[str, Any], machines: Sequence[MachineAddress]) -> list[str] | None:
    tags = set(fw.get("targetTags", []))
    if not tags:
        return []
    chosen = [m for m in machines if tags & m.tags]
    if not chosen:
        return None
    nets = [ipaddress.ip_network(ip) for m in chosen for ip in (m.ip, *m.nat_ips)]
    nets += [ipaddress.ip_network(r) for m in chosen for r in m.routed]
    return [str(n) for n in ipaddress.collapse_addresses(nets)]


def _protocol_match(name: str, entry: dict[str, Any]) -> str:
    proto = str(entry.get("IPProtocol", "")).lower()
    if proto == "all":
        return ""
    number = PROTOCOLS.get(proto)
    if number is None:
        if not proto.isdigit() or not 0 <= int(proto) <= 255:
            raise MachineError(
                f"firewall {name}: unknown IPProtocol {proto!r}; use tcp, udp, icmp, esp, ah, "
                "sctp, ipip, all or a protocol number"
            )
        number = int(proto)
    ports = entry.get("ports") or []
    if not ports:
        return f"meta l4proto {number} "
    if number not in PORTED:
        raise MachineError(f"firewall {name}: ports are only allowed for tcp, udp and sctp")
    return f"meta l4proto {number} th dport {_set(_port_ranges(name, ports))} "


def _port_ranges(name: str, ports: Iterable[str]) -> list[str]:
    spans = []
    for port in ports:
        low, _, high = str(port).partition("-")
        try:
            span = (int(low), int(high or low))
        except ValueError:
            span = (-1, -1)
        if not 0 <= span[0] <= span[1] <= 65535:
            raise MachineError(f"firewall {name}: bad port {port!r}; use N or N-M within 0-65535")
        spans.append(span)
    merged: list[list[int]] = []
    for low, high in sorted(spans):
        if merged and low <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], high)
        else:
            merged.append([low, high])
    return [str(low) if low == high else f"{low}-{high}" for low, high in merged]


def _network(
    name: str, field_name: str, value: str
) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise MachineError(f"firewall {name}: {field_name} {value!r} is not a CIDR") from None


def _set(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"
