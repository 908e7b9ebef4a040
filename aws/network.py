"""The cluster's network: VPC, subnet, internet gateway, route table and security groups.

Each piece is looked up by this cluster's tag first and created only when missing; a piece that
exists but contradicts the config (another CIDR or zone) is an error rather than a silent
mismatch, since changing it would mean replacing every VM.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aws import calls
from aws import resources as res
from cluster.config import ClusterConfig
from cluster.errors import CloudError
from cluster.progress import Progress

DEFAULT_ROUTE = "0.0.0.0/0"


@dataclass(frozen=True)
class Network:
    """The ids the VMs are launched into."""

    vpc_id: str
    subnet_id: str
    route_table_id: str
    group_ids: Mapping[str, str]

    def groups_for(self, config: ClusterConfig, role: str) -> tuple[str, ...]:
        return tuple(self.group_ids[name] for name in res.role_groups(config, role))


def first(items: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    """One of possibly several matches, chosen stably (by id) so re-runs agree."""
    return min(items, key=lambda item: item[key]) if items else None


class NetworkBuilder:
    """Finds or creates each network piece of one cluster."""

    def __init__(self, ec2: Any, config: ClusterConfig, progress: Progress) -> None:
        self.ec2 = ec2
        self.config = config
        self.progress = progress
        self.names = res.Names(config)

    def ensure(self) -> Network:
        vpc_id = self._vpc()
        subnet_id = self._subnet(vpc_id)
        gateway_id = self._gateway(vpc_id)
        route_table_id = self._route_table(vpc_id, subnet_id, gateway_id)
        return Network(vpc_id, subnet_id, route_table_id, self._security_groups(vpc_id))

    def _vpc(self) -> str:
        ec2, config, name = self.ec2, self.config, self.names.vpc
        found = calls.call(
            lambda: ec2.describe_vpcs(Filters=res.owned_filter(config, Name=name))["Vpcs"],
            f"vpc {name}",
        )
        vpc = first(found, "VpcId")
        if vpc is None:
            self.progress.detail(f"creating VPC {name} ({config.subnet_range})")
            vpc = calls.call(
                lambda: ec2.create_vpc(
                    CidrBlock=str(config.subnet_range),
                    TagSpecifications=res.tag_spec("vpc", res.tags(config, name=name)),
                )["Vpc"],
                f"vpc {name}",
            )
        elif vpc["CidrBlock"] != str(config.subnet_range):
            raise CloudError(
                f"exists with CIDR {vpc['CidrBlock']}, but SUBNET_RANGE is {config.subnet_range}",
                resource=f"vpc {name} ({vpc['VpcId']})",
                fix=f"set SUBNET_RANGE={vpc['CidrBlock']}, or kube-down first",
            )
        vpc_id = vpc["VpcId"]
        # Nodes resolve the master and AWS endpoints through the VPC's DNS.
        for attribute, flag in (
            ("enableDnsSupport", "EnableDnsSupport"),
            ("enableDnsHostnames", "EnableDnsHostnames"),
        ):
            current = calls.call(
                lambda a=attribute: ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute=a),
                f"vpc {vpc_id}",
            )
            if not current.get(flag, {}).get("Value"):
                calls.call(
                    lambda f=flag: ec2.modify_vpc_attribute(VpcId=vpc_id, **{f: {"Value": True}}),
                    f"vpc {vpc_id}",
                )
        return vpc_id

    def _subnet(self, vpc_id: str) -> str:
        ec2, config, name = self.ec2, self.config, self.names.subnet
        filters = [*res.owned_filter(config), {"Name": "vpc-id", "Values": [vpc_id]}]
        found = calls.call(lambda: ec2.describe_subnets(Filters=filters)["Subnets"], name)
        subnet = first(found, "SubnetId")
        if subnet is None:
            self.progress.detail(f"creating subnet {name} in {config.zone}")
            subnet = calls.call(
                lambda: ec2.create_subnet(
                    VpcId=vpc_id,
                    CidrBlock=str(config.subnet_range),
                    AvailabilityZone=config.zone,
                    TagSpecifications=res.tag_spec("subnet", res.tags(config, name=name)),
                )["Subnet"],
                f"subnet {name}",
            )
        elif subnet["AvailabilityZone"] != config.zone:
            raise CloudError(
                f"is in zone {subnet['AvailabilityZone']}, but ZONE is {config.zone}",
                resource=f"subnet {name} ({subnet['SubnetId']})",
                fix=f"set ZONE={subnet['AvailabilityZone']}, or kube-down first",
            )
        return subnet["SubnetId"]

    def _gateway(self, vpc_id: str) -> str:
        ec2, config, name = self.ec2, self.config, self.names.internet_gateway
        found = calls.call(
            lambda: ec2.describe_internet_gateways(Filters=res.owned_filter(config))[
                "InternetGateways"
            ],
            name,
        )
        gateway = first(found, "InternetGatewayId")
        if gateway is None:
            self.progress.detail(f"creating internet gateway {name}")
            gateway = calls.call(
                lambda: ec2.create_internet_gateway(
                    TagSpecifications=res.tag_spec("internet-gateway", res.tags(config, name=name))
                )["InternetGateway"],
                f"internet gateway {name}",
            )
        gateway_id = gateway["InternetGatewayId"]
        if vpc_id not in {a.get("VpcId") for a in gateway.get("Attachments") or []}:
            calls.tolerating(
                lambda: ec2.attach_internet_gateway(InternetGatewayId=gateway_id, VpcId=vpc_id),
                f"internet gateway {gateway_id}",
                {"Resource.AlreadyAssociated"},
            )
        return gateway_id

    def _route_table(self, vpc_id: str, subnet_id: str, gateway_id: str) -> str:
        ec2, config, name = self.ec2, self.config, self.names.route_table
        filters = [*res.owned_filter(config), {"Name": "vpc-id", "Values": [vpc_id]}]
        found = calls.call(lambda: ec2.describe_route_tables(Filters=filters)["RouteTables"], name)
        table = first(found, "RouteTableId")
        if table is None:
            self.progress.detail(f"creating route table {name}")
            table = calls.call(
                lambda: ec2.create_route_table(
                    VpcId=vpc_id,
                    TagSpecifications=res.tag_spec("route-table", res.tags(config, name=name)),
                )["RouteTable"],
                f"route table {name}",
            )
        table_id = table["RouteTableId"]
        if subnet_id not in {a.get("SubnetId") for a in table.get("Associations") or []}:
            calls.call(
                lambda: ec2.associate_route_table(RouteTableId=table_id, SubnetId=subnet_id),
                f"route table {table_id}",
            )
        default = [
            r for r in table.get("Routes") or [] if r.get("DestinationCidrBlock") == DEFAULT_ROUTE
        ]
        if not default:
            calls.call(
                lambda: ec2.create_route(
                    RouteTableId=table_id,
                    DestinationCidrBlock=DEFAULT_ROUTE,
                    GatewayId=gateway_id,
                ),
                f"default route of {table_id}",
            )
        elif default[0].get("GatewayId") != gateway_id:
            calls.call(
                lambda: ec2.replace_route(
                    RouteTableId=table_id, DestinationCidrBlock=DEFAULT_ROUTE, GatewayId=gateway_id
                ),
                f"default route of {table_id}",
            )
        return table_id

    def _security_groups(self, vpc_id: str) -> dict[str, str]:
        ec2, config = self.ec2, self.config
        rules = res.security_group_rules(config)
        filters = [
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "group-name", "Values": sorted(rules)},
        ]
        found = calls.call(
            lambda: ec2.describe_security_groups(Filters=filters)["SecurityGroups"],
            "security groups",
        )
        by_name = {g["GroupName"]: g for g in found}
        ids = {}
        for name, wanted in rules.items():
            group = by_name.get(name)
            if group is None:
                self.progress.detail(f"creating security group {name}")
                group_id = calls.call(
                    lambda n=name: ec2.create_security_group(
                        GroupName=n,
                        Description=f"kube-up cluster {config.cluster_name}: {n}",
                        VpcId=vpc_id,
                        TagSpecifications=res.tag_spec("security-group", res.tags(config, name=n)),
                    )["GroupId"],
                    f"security group {name}",
                )
                have: set[tuple[str, int, int, str]] = set()
            else:
                group_id, have = group["GroupId"], res.rule_keys(group.get("IpPermissions") or [])
            missing = [p for p in wanted if not res.rule_keys([p]) <= have]
            if missing:
                calls.tolerating(
                    lambda g=group_id, m=missing: ec2.authorize_security_group_ingress(
                        GroupId=g, IpPermissions=m
                    ),
                    f"security group {name}",
                    {"InvalidPermission.Duplicate"},
                )
            ids[name] = group_id
        return ids
