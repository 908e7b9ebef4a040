"""The cloud network on this host: one bridge, the subnets' gateways, a veth per machine, routes.

Why this shape:
- The host joins the network as ``host_address`` (link-local, outside every subnet): the daemon's
  metadata and storage servers listen there, and the host's own traffic into the network leaves
  from it, so firewall rules see the host as "outside" (an internal ``sourceRanges`` never
  matches it).
- Subnet gateways are addresses on the bridge; machines' default route points at them, so the
  host routes between machines and to GCE route destinations (pod CIDRs).
- Forwarding is enabled on the bridge alone (IPv4 forwarding is decided by the incoming
  interface), never host-wide; the nft table in :mod:`localcloud.firewall` drops anything that
  would cross to another interface.
- GCE routes are kernel routes tagged with our own protocol number, so :meth:`sync_routes` can
  find exactly the ones it owns.
"""

from __future__ import annotations

import ipaddress
import json
import os
import time
from collections.abc import Iterable

from localcloud.firewall import remove_script
from localcloud.hostcmd import MachineError, run, succeeds

ROUTE_PROTO = "76"  # marks kernel routes that mirror GCE routes


class CloudNetwork:
    """The bridge ``bridge`` and everything attached to it."""

    def __init__(self, bridge: str, host_address: str) -> None:
        if not 1 <= len(bridge) <= 15:
            raise MachineError(f"bridge name {bridge!r} must be 1-15 characters (a Linux ifname)")
        self.bridge = bridge
        self.host_address = host_address

    # -- bridge ---------------------------------------------------------------------------

    def ensure_bridge(self) -> None:
        """Create the bridge with the host's address on it (idempotent)."""
        if not succeeds(["ip", "link", "show", "dev", self.bridge]):
            run(["ip", "link", "add", self.bridge, "type", "bridge"])
        run(["ip", "addr", "replace", f"{self.host_address}/32", "dev", self.bridge])
        run(["ip", "link", "set", self.bridge, "up"])
        with open(f"/proc/sys/net/ipv4/conf/{self.bridge}/forwarding", "w") as knob:
            knob.write("1")

    def destroy(self) -> None:
        """Remove the bridge, its routes and the nft table (machines must be gone already)."""
        self.remove_rules()
        if succeeds(["ip", "link", "show", "dev", self.bridge]):
            run(["ip", "link", "del", self.bridge])

    # -- subnets ----------------------------------------------------------------------------

    def subnets(self) -> list[ipaddress.IPv4Interface]:
        """The subnets on the bridge, each as its gateway address with the subnet prefix."""
        return [
            iface
            for iface in self._bridge_addresses()
            if iface.ip != ipaddress.ip_address(self.host_address)
        ]

    def add_subnet(self, cidr: str, gateway: str) -> None:
        net = _ipv4_network(cidr, "subnet")
        gw = ipaddress.ip_address(gateway)
        if gw not in net:
            raise MachineError(f"gateway {gateway} is outside subnet {cidr}")
        if any(s.network == net for s in self.subnets()):
            return
        self._refuse_overlap(net, "subnet")
        iface = f"{gw}/{net.prefixlen}"
        run(["ip", "addr", "add", iface, "dev", self.bridge, "noprefixroute"])
        run(self._subnet_route("replace", net))

    def remove_subnet(self, cidr: str, gateway: str) -> None:
        net = _ipv4_network(cidr, "subnet")
        if not any(s.network == net for s in self.subnets()):
            return
        run(self._subnet_route("del", net), check=False)
        run(["ip", "addr", "del", f"{gateway}/{net.prefixlen}", "dev", self.bridge])

    def subnet_of(self, ip: str) -> ipaddress.IPv4Interface:
        """The subnet (as gateway/prefix) that holds ``ip``."""
        addr = ipaddress.ip_address(ip)
        for subnet in self.subnets():
            if addr in subnet.network:
                return subnet
        raise MachineError(f"no subnet on {self.bridge} holds {ip}; create the subnetwork first")

    def _subnet_route(self, verb: str, net: ipaddress.IPv4Network) -> list[str]:
        where = ["dev", self.bridge, "scope", "link", "src", self.host_address]
        return ["ip", "route", verb, str(net), *where]

    # -- machines ---------------------------------------------------------------------------

    def connect(
        self, netns: str, veth: str, ip: str, mac: str, extra_ips: Iterable[str] = ()
    ) -> None:
        """Create ``netns`` with eth0 on the bridge holding ``ip`` (and ``extra_ips``, each in
        its own subnet), default route via the gateway of ``ip``'s subnet."""
        subnet = self.subnet_of(ip)
        extras = [f"addr add {x}/{self.subnet_of(x).network.prefixlen} dev eth0" for x in extra_ips]
        self.disconnect(netns, veth)
        run(["ip", "netns", "add", netns])
        run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns])
        run(["ip", "link", "set", veth, "master", self.bridge, "up"])
        inside = [
            "link set lo up",
            f"link set eth0 address {mac}",
            f"addr add {ip}/{subnet.network.prefixlen} dev eth0",
            *extras,
            "link set eth0 up",
            f"route add default via {subnet.ip} dev eth0",
        ]
        run(["ip", "-n", netns, "-batch", "-"], input="\n".join(inside) + "\n")

    def disconnect(self, netns: str, veth: str) -> None:
        """Remove the machine's namespace and veth (idempotent)."""
        if os.path.exists(f"/run/netns/{netns}"):
            run(["ip", "netns", "del", netns])
        # The kernel tears a namespace down asynchronously, taking the veth pair along.
        deadline = time.monotonic() + 5
        while succeeds(["ip", "link", "show", "dev", veth]):
            if time.monotonic() > deadline:
                run(["ip", "link", "del", veth], check=False)
                if succeeds(["ip", "link", "show", "dev", veth]):
                    raise MachineError(f"veth {veth} of {netns} cannot be removed")
                break
            time.sleep(0.02)

    # -- routes -----------------------------------------------------------------------------

    def routes(self) -> set[tuple[str, str]]:
        out = run(["ip", "-j", "-4", "route", "show", "dev", self.bridge, "proto", ROUTE_PROTO])
        return {(str(ipaddress.ip_network(r["dst"])), r["gateway"]) for r in json.loads(out)}

    def sync_routes(self, wanted: Iterable[tuple[str, str]]) -> None:
        """Make this network's GCE routes exactly ``(destRange, next hop)`` ``wanted``."""
        desired = set()
        for dest, hop in wanted:
            net = _ipv4_network(dest, "route destRange")
            self.subnet_of(hop)
            self._refuse_overlap(net, "route destRange")
            desired.add((str(net), hop))
        current = self.routes()
        for dest, hop in current - desired:
            run(["ip", "route", "del", dest, "via", hop, "dev", self.bridge, "proto", ROUTE_PROTO])
        for dest, hop in desired - current:
            via = ["via", hop, "dev", self.bridge, "proto", ROUTE_PROTO, "src", self.host_address]
            run(["ip", "route", "replace", dest, *via])

    # -- nftables ---------------------------------------------------------------------------

    def apply_rules(self, script: str) -> None:
        run(["nft", "-f", "-"], input=script)

    def remove_rules(self) -> None:
        run(["nft", "-f", "-"], input=remove_script(self.bridge))

    # -- helpers ----------------------------------------------------------------------------

    def _bridge_addresses(self) -> list[ipaddress.IPv4Interface]:
        out = run(["ip", "-j", "-4", "addr", "show", "dev", self.bridge], check=False) or "[]"
        return [
            ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}")
            for link in json.loads(out)
            for a in link.get("addr_info", [])
        ]

    def _refuse_overlap(self, net: ipaddress.IPv4Network, what: str) -> None:
        """Refuse ranges that would capture the host's own traffic elsewhere."""
        if net.overlaps(ipaddress.ip_network("169.254.0.0/16")) or not net.is_private:
            raise MachineError(
                f"{what} {net} is not a private range outside 169.254.0.0/16; "
                "use one from 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16"
            )
        for other, dev in _host_ranges():
            if dev != self.bridge and net.overlaps(other):
                raise MachineError(
                    f"{what} {net} overlaps {other} on {dev} on this host; "
                    "choose a range that no host route uses"
                )


def _host_ranges() -> list[tuple[ipaddress.IPv4Network, str]]:
    """Every IPv4 range the host routes or owns, except the default route."""
    ranges = []
    for route in json.loads(run(["ip", "-j", "-4", "route", "show", "table", "main"])):
        if route["dst"] != "default":
            ranges.append((ipaddress.ip_network(route["dst"], strict=False), route.get("dev", "")))
    for link in json.loads(run(["ip", "-j", "-4", "addr", "show"])):
        for a in link.get("addr_info", []):
            net = ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}").network
            ranges.append((net, link["ifname"]))
    return ranges


def _ipv4_network(value: str, what: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(value)
    except ValueError:
        raise MachineError(f"{what} {value!r} is not a CIDR like 10.240.0.0/16") from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise MachineError(f"{what} {value} is IPv6; localcloud networks are IPv4")
    return net
