"""GCE firewall resources rendered as the cloud network's nft table (pure; no root needed).

The e2e tests in test_machines.py apply the same text to a real bridge and send traffic.
"""

from __future__ import annotations

from typing import Any

import pytest

from localcloud.firewall import MachineAddress, render
from localcloud.hostcmd import MachineError

MASTER = MachineAddress("10.240.0.2", frozenset({"master"}))
INTERNAL = "ip saddr { 10.240.0.0/16, 10.244.0.0/16 }"
NODE = MachineAddress("10.240.0.3", frozenset({"node"}), routed=("10.244.1.0/24",))


def ingress(firewalls: list[dict[str, Any]], machines: tuple = (MASTER, NODE)) -> list[str]:
    """The rule lines of the ingress chain, minus the fixed first two and the final drop."""
    text = render("lcbr0", "169.254.169.254", 80, list(machines), firewalls)
    chain = text.split("chain ingress {\n")[1].split("\n    }\n")[0]
    lines = [line.strip() for line in chain.strip().splitlines()]
    assert lines[:2] == ["ct state established,related accept", "meta nfproto ipv6 drop"]
    assert lines[-1] == 'counter drop comment "GCE implied deny ingress"'
    return lines[2:-1]


def fw(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "allowed": [{"IPProtocol": "tcp", "ports": ["22"]}], **fields}


@pytest.mark.parametrize(
    ("firewalls", "expected"),
    [
        pytest.param(
            [fw("ssh", sourceRanges=["0.0.0.0/0"])],
            ['meta l4proto 6 th dport 22 accept comment "ssh"'],
            id="anywhere-to-every-instance",
        ),
        pytest.param(
            [fw("ssh")],
            ['meta l4proto 6 th dport 22 accept comment "ssh"'],
            id="no-source-means-anywhere",
        ),
        pytest.param(
            [
                fw(
                    "https",
                    targetTags=["master"],
                    sourceRanges=["203.0.113.0/24"],
                    allowed=[{"IPProtocol": "tcp", "ports": ["443"]}],
                )
            ],
            [
                "ip saddr 203.0.113.0/24 ip daddr 10.240.0.2/32 meta l4proto 6 th dport 443 "
                'accept comment "https"'
            ],
            id="target-tags",
        ),
        pytest.param(
            [
                fw(
                    "to-nodes",
                    targetTags=["node"],
                    sourceTags=["master"],
                    allowed=[{"IPProtocol": "all"}],
                )
            ],
            [
                "ip saddr 10.240.0.2/32 ip daddr { 10.240.0.3/32, 10.244.1.0/24 } "
                'accept comment "to-nodes"'
            ],
            id="source-tags-and-routed-pod-range",
        ),
        pytest.param(
            [fw("nobody", targetTags=["absent"])],
            [],
            id="tags-selecting-no-instance",
        ),
        pytest.param(
            [fw("off", disabled=True), fw("out", direction="EGRESS")],
            [],
            id="disabled-and-egress-skipped",
        ),
        pytest.param(
            [
                fw(
                    "ports",
                    allowed=[{"IPProtocol": "udp", "ports": ["53", "1-100", "8080-8090", "8091"]}],
                )
            ],
            ['meta l4proto 17 th dport { 1-100, 8080-8091 } accept comment "ports"'],
            id="ports-merged",
        ),
        pytest.param(
            [
                fw(
                    "internal",
                    sourceRanges=["10.240.0.0/16", "10.240.5.0/24", "10.244.0.0/16"],
                    allowed=[{"IPProtocol": "icmp"}, {"IPProtocol": "esp"}],
                )
            ],
            [
                f'{INTERNAL} meta l4proto 1 accept comment "internal"',
                f'{INTERNAL} meta l4proto 50 accept comment "internal"',
            ],
            id="ranges-collapsed-one-line-per-protocol",
        ),
    ],
)
def test_rules(firewalls: list[dict[str, Any]], expected: list[str]) -> None:
    assert ingress(firewalls) == expected


def test_priority_orders_rules_and_deny_wins_a_tie() -> None:
    firewalls = [
        fw("z-allow", priority=500),
        {"name": "a-deny", "denied": [{"IPProtocol": "tcp", "ports": ["22"]}], "priority": 500},
        fw("first", priority=10, allowed=[{"IPProtocol": "icmp"}]),
        fw("default-priority", allowed=[{"IPProtocol": "udp"}]),
    ]
    assert [line.rsplit('"', 2)[1] for line in ingress(firewalls)] == [
        "first",
        "a-deny",
        "z-allow",
        "default-priority",
    ]
    assert ingress(firewalls)[1].endswith('drop comment "a-deny"')


@pytest.mark.parametrize(
    ("entry", "complaint"),
    [
        ({"IPProtocol": "tcpp"}, "unknown IPProtocol 'tcpp'"),
        ({"IPProtocol": "icmp", "ports": ["1"]}, "ports are only allowed for tcp, udp and sctp"),
        ({"IPProtocol": "tcp", "ports": ["70000"]}, "bad port '70000'"),
        ({"IPProtocol": "tcp", "ports": ["9-2"]}, "bad port '9-2'"),
    ],
)
def test_bad_rules_are_named(entry: dict[str, Any], complaint: str) -> None:
    with pytest.raises(MachineError, match=f"^firewall broken: {complaint}"):
        ingress([fw("broken", allowed=[entry])])


def test_bad_source_range_is_named() -> None:
    with pytest.raises(MachineError, match="^firewall r: sourceRanges '10.0.0/8x' is not a CIDR"):
        ingress([fw("r", sourceRanges=["10.0.0/8x"])])


def test_closed_network_and_metadata_redirect() -> None:
    text = render("lcbr0", "169.254.170.1", 8080, [MASTER], [])
    assert 'iifname "lcbr0" oifname != "lcbr0" counter drop' in text
    assert 'iifname != "lcbr0" oifname "lcbr0" counter drop' in text
    assert "dnat ip to 169.254.170.1:8080" in text
    # Of the host, machines reach its cloud address (metadata, storage) and ICMP only.
    chain = text.split("chain input {\n")[1].split("\n    }\n")[0]
    assert [line.strip().split(" comment")[0] for line in chain.splitlines()[1:]] == [
        'iifname "lcbr0" ct state established,related accept',
        'iifname "lcbr0" ip daddr 169.254.170.1 accept',
        'iifname "lcbr0" meta l4proto icmp accept',
        'iifname "lcbr0" counter drop',
    ]
    assert "masquerade" not in text and "snat" not in text
    # The script replaces the table atomically, whether or not it exists.
    assert text.startswith("table inet localcloud_lcbr0\ndelete table inet localcloud_lcbr0\n")
