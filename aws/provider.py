"""The AWS provider: the cluster's resources on EC2, S3 and IAM, through boto3.

Every ``ensure_*`` step finds what carries this cluster's tag and creates only what is missing,
so a re-run after any failure converges and adopts what the failed run made. VMs boot the same
node script as on GCE (as gzipped user-data); their kube-env lives in the staging bucket, read
with the instance role's credentials, so kube-push can hand running VMs a new one (EC2 user-data
cannot change while an instance runs) and a node never receives the master's keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

from aws import calls, console, iam, master, network, nodes, staging, teardown
from aws import resources as res
from aws.clients import AwsClients
from aws.instances import Image, instance_named, resolve_image
from cluster.config import ClusterConfig
from cluster.errors import CloudError, ConfigError
from cluster.kube_env import Artifact
from cluster.progress import Progress
from cluster.provider import MasterAddresses, OwnedResource, Provider, VmMetadata
from cluster.release.builder import ReleaseManifest


class AwsProvider(Provider):
    name = "aws"

    def __init__(
        self, config: ClusterConfig, progress: Progress, clients: AwsClients | None = None
    ) -> None:
        self.config = config
        self.progress = progress
        self.clients = clients or AwsClients(config.region)
        self.names = res.Names(config)
        self._network: network.Network | None = None
        self._profiles: dict[str, str] = {}

    # -- helpers -----------------------------------------------------------------------------

    @cached_property
    def account(self) -> str:
        """The account id (it names the staging bucket); also proves the credentials work."""
        identity = calls.call(lambda: self.clients.sts.get_caller_identity(), "AWS credentials")
        return str(identity["Account"])

    @property
    def bucket(self) -> str:
        return self.config.staging_bucket(self.account)

    @property
    def ec2(self) -> Any:
        return self.clients.ec2

    @cached_property
    def images(self) -> dict[str, Image]:
        """The master's and the nodes' image (AMI ids, or the Debian 12 lookup), resolved once."""
        by_setting: dict[str, Image] = {}
        found: dict[str, Image] = {}
        for role, wanted in (
            ("master", self.config.master_image),
            ("node", self.config.node_image),
        ):
            if wanted not in by_setting:
                by_setting[wanted] = resolve_image(self.ec2, self.config, wanted)
            found[role] = by_setting[wanted]
        return found

    @property
    def network(self) -> network.Network:
        if self._network is None:
            self._network = network.NetworkBuilder(self.ec2, self.config, self.progress).ensure()
        return self._network

    def _profile(self, role: str) -> str:
        if role not in self._profiles:
            self._profiles[role] = iam.ensure_instance_profile(
                self.clients.iam, self.config, role, self.bucket, self.progress
            )
        return self._profiles[role]

    def _key_pair(self, public_key: str) -> str:
        name = self.names.key_pair(public_key)
        found = calls.tolerating(
            lambda: self.ec2.describe_key_pairs(KeyNames=[name])["KeyPairs"],
            f"key pair {name}",
            {"InvalidKeyPair.NotFound"},
        )
        if not found:
            self.progress.detail(f"importing key pair {name}")
            calls.tolerating(
                lambda: self.ec2.import_key_pair(
                    KeyName=name,
                    PublicKeyMaterial=public_key.encode(),
                    TagSpecifications=res.tag_spec("key-pair", res.tags(self.config, name=name)),
                ),
                f"key pair {name}",
                {"InvalidKeyPair.Duplicate"},
            )
        return name

    def _launch_inputs(self, metadata: VmMetadata, role: str) -> res.LaunchInputs:
        """Everything a VM of ``role`` is launched from; writes its kube-env to the bucket."""
        net = self.network
        image = self.images[role]
        return res.LaunchInputs(
            image=image.image_id,
            root_device=image.root_device,
            subnet_id=net.subnet_id,
            group_ids=net.groups_for(self.config, role),
            key_name=self._key_pair(metadata.ssh_public_key),
            instance_profile=self._profile(role),
            kube_env_url=staging.put_kube_env(
                self.clients.s3, self.bucket, role, metadata.kube_env
            ),
            script=metadata.startup_script,
        )

    # -- Provider ----------------------------------------------------------------------------

    def verify_prereqs(self) -> None:
        config = self.config
        if config.subnet_range.prefixlen not in res.SUBNET_PREFIXES:
            raise ConfigError.for_setting(
                "SUBNET_RANGE",
                str(config.subnet_range),
                "an AWS subnet must be between /16 and /28",
            )
        self.progress.detail(f"AWS account {self.account}, region {config.region}")
        zones = calls.call(
            lambda: self.ec2.describe_availability_zones()["AvailabilityZones"],
            f"region {config.region}",
        )
        names = sorted(z["ZoneName"] for z in zones)
        if config.zone not in names:
            raise CloudError(
                f"no zone {config.zone} in region {config.region}",
                resource=f"ZONE={config.zone}",
                fix=f"use one of {', '.join(names)}",
            )
        self.progress.detail(f"images: {', '.join(i.image_id for i in self.images.values())}")

    def ensure_network(self) -> None:
        _ = self.network

    def ensure_master_addresses(self) -> MasterAddresses:
        address = master.ensure_address(self.ec2, self.config, self.progress)
        return MasterAddresses(
            internal_ip=res.master_internal_ip(self.config), external_ip=address["PublicIp"]
        )

    def stage(self, release_dir: Path, manifest: ReleaseManifest) -> Mapping[str, Artifact]:
        staging.ensure_bucket(self.clients.s3, self.config, self.bucket, self.progress)
        return staging.stage_release(
            self.clients.s3, self.bucket, release_dir, manifest, self.progress
        )

    def ensure_master(self, metadata: VmMetadata, addresses: MasterAddresses) -> None:
        launch = self._launch_inputs(metadata, "master")
        address = master.ensure_address(self.ec2, self.config, self.progress)
        master.ensure_master(self.ec2, self.config, self.progress, launch, address)

    def ensure_nodes(self, metadata: VmMetadata) -> None:
        launch = self._launch_inputs(metadata, "node")
        template_id = nodes.ensure_template(self.ec2, self.config, launch, self.progress)
        autoscaling = self.clients.autoscaling
        nodes.ensure_group(
            autoscaling, self.config, template_id, self.network.subnet_id, self.progress
        )
        members = nodes.wait_for_instances(autoscaling, self.config)
        cidrs = nodes.assign_pod_cidrs(self.ec2, self.config, members, self.progress)
        nodes.ensure_routes(
            self.ec2, self.config, self.network.route_table_id, cidrs, self.progress
        )

    def host_key(self, instance: str) -> str | None:
        found = instance_named(self.ec2, self.config, instance)
        if found is None:
            return None
        instance_id = found["InstanceId"]
        output = calls.find(
            lambda: self.ec2.get_console_output(InstanceId=instance_id),
            f"console of {instance}",
        )
        text = console.decode_output((output or {}).get("Output") or "")
        return console.ed25519_host_key(text)

    def serial_log_hint(self, instance: str) -> str:
        found = instance_named(self.ec2, self.config, instance)
        instance_id = found["InstanceId"] if found else f"<id of {instance}>"
        return (
            f"read its boot log with: aws ec2 get-console-output --instance-id {instance_id} "
            f"--region {self.config.region} --output text"
        )

    def update_metadata(self, master_md: VmMetadata, node_md: VmMetadata) -> None:
        """kube-push: running VMs re-read kube-env from the bucket; future nodes boot from a new
        launch template version when the script or the template changed."""
        self._launch_inputs(master_md, "master")
        nodes.ensure_template(
            self.ec2, self.config, self._launch_inputs(node_md, "node"), self.progress
        )

    def node_addresses(self) -> dict[str, str]:
        return nodes.node_names_and_addresses(self.ec2, self.config)

    # -- teardown ----------------------------------------------------------------------------

    def owned_resources(self) -> list[OwnedResource]:
        return teardown.find_owned(self.clients, self.config, self.bucket)

    def delete(self, resources: list[OwnedResource]) -> None:
        teardown.delete_owned(self.clients, self.config, resources, self.progress)
