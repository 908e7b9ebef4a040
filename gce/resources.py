"""What a cluster is on GCE: one pure function per resource, from config to API body.

The same bodies serve creation, comparison on re-runs, and ``kube-down --dry-run``. Ownership is
marked with the label ``kube-up-cluster=<name>`` where GCE has labels (instances, disks,
addresses, buckets) and with a fixed description where it has none (networks, subnetworks,
firewalls, routes, instance templates), so teardown never needs local state to find a cluster.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, TypeVar

from cluster.config import ClusterConfig

CLUSTER_LABEL = "kube-up-cluster"
ROLE_LABEL = "kube-up-role"
MASTER_PD_DEVICE = "master-pd"

Body = dict[str, Any]
M = TypeVar("M")


def api(message_class: type[M], body: Body) -> M:
    """The client library's message for a REST-shaped body (camelCase field names, as the API
    documents them and as the bodies here are written)."""
    return message_class.from_json(json.dumps(body))


def owner_description(config: ClusterConfig) -> str:
    """The description that marks an unlabelable resource as this cluster's."""
    return f"kube-up cluster {config.cluster_name}"


def labels(config: ClusterConfig, role: str | None = None) -> dict[str, str]:
    found = {CLUSTER_LABEL: config.cluster_name}
    if role:
        found[ROLE_LABEL] = role
    return found


@dataclass(frozen=True)
class Names:
    """Every resource name of a cluster, derived once from its config."""

    config: ClusterConfig

    @property
    def subnetwork(self) -> str:
        """Per cluster, so kube-down can delete it even inside a shared network."""
        return f"{self.config.instance_prefix}-subnet"

    @property
    def master_address(self) -> str:
        return f"{self.config.master_name}-ip"

    @property
    def master_internal_address(self) -> str:
        return f"{self.config.master_name}-internal-ip"

    @property
    def master_disk(self) -> str:
        return f"{self.config.master_name}-pd"

    @property
    def firewalls(self) -> tuple[str, str, str]:
        prefix = self.config.instance_prefix
        return (f"{prefix}-internal", f"{prefix}-ssh", f"{prefix}-master-https")

    def route(self, node: str) -> str:
        return f"{node}-route"

    def template(self, properties: Body) -> str:
        """Templates cannot change, so each distinct body gets its own name."""
        digest = hashlib.sha256(json.dumps(properties, sort_keys=True).encode()).hexdigest()
        return f"{self.config.node_base_name}-template-{digest[:8]}"

    @property
    def master_tag(self) -> str:
        return self.config.master_tag or f"{self.config.instance_prefix}-master"

    @property
    def node_tag(self) -> str:
        return self.config.node_tag or f"{self.config.instance_prefix}-minion"


def _project_path(config: ClusterConfig) -> str:
    return f"projects/{config.project}"


def network_url(config: ClusterConfig) -> str:
    return f"{_project_path(config)}/global/networks/{config.network}"


def subnetwork_url(config: ClusterConfig) -> str:
    names = Names(config)
    return f"{_project_path(config)}/regions/{config.region}/subnetworks/{names.subnetwork}"


def network_body(config: ClusterConfig) -> Body:
    return {
        "name": config.network,
        "autoCreateSubnetworks": False,
        "description": owner_description(config),
    }


def subnetwork_body(config: ClusterConfig) -> Body:
    return {
        "name": Names(config).subnetwork,
        "network": network_url(config),
        "ipCidrRange": str(config.subnet_range),
        "region": config.region,
        "description": owner_description(config),
    }


def firewall_bodies(config: ClusterConfig) -> list[Body]:
    """Internal traffic between VMs and pods; ssh to every VM; https to the master only."""
    names = Names(config)
    internal, ssh, https = names.firewalls
    inside = sorted({str(config.subnet_range), str(config.cluster_ip_range)})
    common = {"network": network_url(config), "description": owner_description(config)}
    return [
        {
            "name": internal,
            "sourceRanges": inside,
            "allowed": [
                {"IPProtocol": "tcp", "ports": ["1-65535"]},
                {"IPProtocol": "udp", "ports": ["1-65535"]},
                {"IPProtocol": "icmp"},
            ],
            **common,
        },
        {
            "name": ssh,
            "sourceRanges": ["0.0.0.0/0"],
            "allowed": [{"IPProtocol": "tcp", "ports": ["22"]}],
            **common,
        },
        {
            "name": https,
            "sourceRanges": ["0.0.0.0/0"],
            "targetTags": [names.master_tag],
            "allowed": [{"IPProtocol": "tcp", "ports": ["443"]}],
            **common,
        },
    ]


def master_address_body(config: ClusterConfig) -> Body:
    return {
        "name": Names(config).master_address,
        "addressType": "EXTERNAL",
        "labels": labels(config, "master"),
    }


def master_internal_address_body(config: ClusterConfig) -> Body:
    return {
        "name": Names(config).master_internal_address,
        "addressType": "INTERNAL",
        "subnetwork": subnetwork_url(config),
        "labels": labels(config, "master"),
    }


def master_disk_body(config: ClusterConfig) -> Body:
    return {
        "name": Names(config).master_disk,
        "sizeGb": str(config.master_disk_size_gb),
        "type": f"zones/{config.zone}/diskTypes/pd-standard",
        "labels": labels(config, "master"),
    }


def _metadata(items: dict[str, str]) -> Body:
    return {"items": [{"key": k, "value": v} for k, v in sorted(items.items())]}


def _boot_disk(config: ClusterConfig, image: str, size_gb: int, role: str) -> Body:
    return {
        "boot": True,
        "autoDelete": True,
        "initializeParams": {
            "sourceImage": image,
            "diskSizeGb": str(size_gb),
            "labels": labels(config, role),
        },
    }


def master_instance_body(
    config: ClusterConfig, metadata: dict[str, str], external_ip: str, internal_ip: str
) -> Body:
    names = Names(config)
    zone = config.zone
    return {
        "name": config.master_name,
        "machineType": f"zones/{zone}/machineTypes/{config.master_size}",
        "labels": labels(config, "master"),
        "tags": {"items": [names.master_tag]},
        "canIpForward": True,
        "disks": [
            _boot_disk(config, config.master_image, 20, "master"),
            {
                "boot": False,
                "autoDelete": False,
                "deviceName": MASTER_PD_DEVICE,
                "source": f"projects/{config.project}/zones/{zone}/disks/{names.master_disk}",
            },
        ],
        "networkInterfaces": [
            {
                "network": network_url(config),
                "subnetwork": subnetwork_url(config),
                "networkIP": internal_ip,
                "accessConfigs": [
                    {"name": "external-nat", "type": "ONE_TO_ONE_NAT", "natIP": external_ip}
                ],
            }
        ],
        "metadata": _metadata(metadata),
    }


def node_template_properties(config: ClusterConfig, metadata: dict[str, str]) -> Body:
    names = Names(config)
    return {
        "machineType": config.node_size,
        "labels": labels(config, "node"),
        "tags": {"items": [names.node_tag]},
        "canIpForward": True,
        "disks": [_boot_disk(config, config.node_image, config.node_disk_size_gb, "node")],
        "networkInterfaces": [
            {
                "network": network_url(config),
                "subnetwork": subnetwork_url(config),
                "accessConfigs": [{"name": "external-nat", "type": "ONE_TO_ONE_NAT"}],
            }
        ],
        "metadata": _metadata(metadata),
    }


def node_template_body(config: ClusterConfig, metadata: dict[str, str]) -> Body:
    properties = node_template_properties(config, metadata)
    return {
        "name": Names(config).template(properties),
        "description": owner_description(config),
        "properties": properties,
    }


def route_body(config: ClusterConfig, node: str, pod_cidr: str) -> Body:
    return {
        "name": Names(config).route(node),
        "network": network_url(config),
        "destRange": pod_cidr,
        "nextHopInstance": f"projects/{config.project}/zones/{config.zone}/instances/{node}",
        "priority": 1000,
        "description": owner_description(config),
    }
