"""What each VM role is given: kube-env from the secrets and staged release, plus the node script.

The only place where the cluster's secrets meet kube-env, so the rule "a node never receives a
master key" is enforced in one function.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from cluster.config import ClusterConfig
from cluster.kube_env import (
    Artifact,
    KubeEnvInputs,
    MasterSecrets,
    NodeSecrets,
    render_kube_env,
)
from cluster.pki import CertKey
from cluster.provider import MasterAddresses, VmMetadata
from cluster.release.builder import REPO_ROOT, ReleaseManifest
from cluster.state import ClusterSecrets

STARTUP_SCRIPT = REPO_ROOT / "scripts" / "node" / "configure-vm.sh"


def kube_env_inputs(
    config: ClusterConfig,
    manifest: ReleaseManifest,
    staged: Mapping[str, Artifact],
    secrets: ClusterSecrets,
    apiserver: CertKey,
    addresses: MasterAddresses,
) -> KubeEnvInputs:
    clients = secrets.clients
    return KubeEnvInputs(
        cluster_name=config.cluster_name,
        instance_prefix=config.instance_prefix,
        kube_version=manifest.kube_version,
        master_name=config.master_name,
        master_internal_ip=addresses.internal_ip,
        server_binary_tar=staged["server"],
        salt_tar=staged["salt"],
        salt_runtime_tar=staged["salt_runtime"],
        node_images_tar=staged["node_images"],
        pause_image=manifest.pause_image,
        workload_image=manifest.workload_image,
        dns_image=manifest.dns_image,
        enable_cluster_dns=config.enable_cluster_dns,
        dns_server_ip=str(config.dns_service_ip),
        dns_domain=config.dns_domain,
        ca_cert=secrets.ca.cert_pem,
        service_cluster_ip_range=str(config.service_cluster_ip_range),
        cluster_ip_range=str(config.cluster_ip_range),
        master=MasterSecrets(
            apiserver_cert=apiserver.cert_pem,
            apiserver_key=apiserver.key_pem,
            service_account_key=secrets.service_account_key_pem,
            kubecfg_cert=secrets.admin.cert_pem,
            kubecfg_key=secrets.admin.key_pem,
            controller_manager_cert=clients["kube-controller-manager"].cert_pem,
            controller_manager_key=clients["kube-controller-manager"].key_pem,
            scheduler_cert=clients["kube-scheduler"].cert_pem,
            scheduler_key=clients["kube-scheduler"].key_pem,
            apiserver_kubelet_client_cert=clients["apiserver-kubelet-client"].cert_pem,
            apiserver_kubelet_client_key=clients["apiserver-kubelet-client"].key_pem,
            front_proxy_ca_cert=secrets.front_proxy_ca.cert_pem,
            front_proxy_client_cert=secrets.front_proxy_client.cert_pem,
            front_proxy_client_key=secrets.front_proxy_client.key_pem,
            htpasswd=secrets.htpasswd,
        ),
        node=NodeSecrets(
            kubelet_cert=clients["kubelet"].cert_pem,
            kubelet_key=clients["kubelet"].key_pem,
            kube_proxy_cert=clients["kube-proxy"].cert_pem,
            kube_proxy_key=clients["kube-proxy"].key_pem,
        ),
    )


def vm_metadata(
    inputs: KubeEnvInputs, ssh_public_key: str, script: Path = STARTUP_SCRIPT
) -> tuple[VmMetadata, VmMetadata]:
    """The master's and the nodes' metadata: same script and key, each its own kube-env."""
    startup = script.read_text()
    master = VmMetadata(startup, render_kube_env(inputs, "master"), ssh_public_key)
    node = VmMetadata(startup, render_kube_env(inputs, "node"), ssh_public_key)
    return master, node
