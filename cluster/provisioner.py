"""The phases of kube-up, kube-push and kube-down, as an explicit list of named steps.

Everything cloud-specific is behind :class:`cluster.provider.Provider`; this module only orders
the work and moves data between steps. Each step is idempotent, so a run that failed anywhere
is finished by running it again.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from cluster import kubeconfig
from cluster.apiserver import ApiServer, validate, wait_until_answering
from cluster.config import ClusterConfig
from cluster.errors import CloudError, PrereqError
from cluster.files import check_writable
from cluster.progress import Progress
from cluster.provider import MasterAddresses, OwnedResource, Provider, VmMetadata
from cluster.push import rerun_highstate, ssh_target
from cluster.release.builder import MANIFEST, ReleaseManifest, default_output_dir
from cluster.release.tarball import sha256_file
from cluster.ssh import connect
from cluster.state import (
    ClusterSecrets,
    ClusterState,
    auth_file_path,
    remove_auth_file,
    write_auth_file,
)
from cluster.vm_config import kube_env_inputs, vm_metadata

PROVIDERS = {
    "gce": "gce.provider:GceProvider",
    "local": "localcloud.provider:LocalProvider",
    "aws": "aws.provider:AwsProvider",
}
CREDENTIAL_FILES = ("ca.crt", "kubecfg.crt", "kubecfg.key")
# Manifest keys the VMs' kube-env is made from.
RELEASE_ARTIFACTS = ("server", "salt", "salt_runtime", "node_images")
REMOTE_PKI_DIR = "/srv/kubernetes"
HOST_KEY_TIMEOUT_S = 300.0


def make_provider(config: ClusterConfig, progress: Progress) -> Provider:
    module_name, class_name = PROVIDERS[config.provider].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError:
        raise PrereqError(
            f"KUBERNETES_PROVIDER={config.provider} is not available in this version",
            fix=f"use one of: {', '.join(p for p in PROVIDERS if p != config.provider)}",
        ) from None
    return getattr(module, class_name)(config, progress)


def load_release(release_dir: Path | None = None) -> tuple[Path, ReleaseManifest]:
    """The release and its manifest, every artifact checked against its recorded sha256: VMs
    refuse an artifact whose hash is not the one in kube-env, so a corrupt local copy would
    otherwise only show as a cluster that never comes up."""
    release_dir = release_dir or default_output_dir()
    if not (release_dir / MANIFEST).is_file():
        raise PrereqError(
            f"no release in {release_dir}", fix="run `make release` (or kube-release) first"
        )
    rebuild = "run `make release` (or kube-release) again"
    try:
        manifest = ReleaseManifest.load(release_dir / MANIFEST)
        artifacts = {key: (release_dir / a.file, a.sha256) for key, a in manifest.artifacts.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PrereqError(
            f"release manifest {release_dir / MANIFEST} is unusable ({type(exc).__name__}: {exc})",
            fix=rebuild,
        ) from None
    missing = sorted(set(RELEASE_ARTIFACTS) - set(artifacts))
    if missing:
        raise PrereqError(
            f"release manifest {release_dir / MANIFEST} lists no {', '.join(missing)}", fix=rebuild
        )
    for path, recorded in artifacts.values():
        try:
            digest = sha256_file(path)
        except OSError as exc:
            raise PrereqError(f"release file {path}: {exc.strerror or exc}", fix=rebuild) from None
        if digest != recorded:
            raise PrereqError(
                f"release file {path} has sha256 {digest}, {MANIFEST} records {recorded} "
                "(corrupt, or changed after the build)",
                fix=rebuild,
            )
    return release_dir, manifest


@dataclass
class Provisioner:
    config: ClusterConfig
    provider: Provider
    progress: Progress
    state: ClusterState

    # -- kube-up -----------------------------------------------------------------------------

    def up(self, *, wait: bool = True, release_dir: Path | None = None) -> None:
        step = self.progress.step
        config = self.config
        # Local checks first: a bad release, an unusable kubeconfig, credentials file or state
        # dir fails before any cloud call.
        with step("Checking the release and local files"):
            release_dir, manifest = load_release(release_dir)
            if wait:
                kubeconfig.check_usable()
                check_writable(auth_file_path())
        with step("Preparing the cluster's secrets"):
            secrets = self.state.ensure_secrets()
            self.progress.add_secret(*secrets.secret_values())
        with step("Checking the cloud project and credentials"):
            self.provider.verify_prereqs()
        with step("Creating the network and firewall rules"):
            self.provider.ensure_network()
        with step("Reserving the master's addresses"):
            addresses = self.provider.ensure_master_addresses()
        master_md, node_md = self._stage_and_render(release_dir, manifest, secrets, addresses)
        with step("Creating the master VM"):
            self.provider.ensure_master(master_md, addresses)
        with step(f"Creating {config.num_nodes} node VM(s) and their pod routes"):
            self.provider.ensure_nodes(node_md)
        if not wait:
            self.progress.info("cloud resources exist; not waiting for the cluster (--no-wait)")
            return
        api = self._api(secrets, addresses)
        hint = self.provider.serial_log_hint(config.master_name)
        with step("Waiting for the apiserver"):
            wait_until_answering(
                api, interval=config.poll_interval, timeout=config.timeout, hint=hint
            )
        with step("Fetching credentials from the master over SSH"):
            self._fetch_credentials(secrets, addresses)
        with step("Writing the kubeconfig"):
            path = kubeconfig.write_kubeconfig(
                config.cluster_name, api.url, secrets.ca.cert_pem, secrets.admin
            )
            auth = write_auth_file(self.state, secrets)
        with step(f"Validating: {config.num_nodes} node(s) Ready, control plane healthy"):
            ready = validate(
                api, config.num_nodes, interval=config.poll_interval, timeout=config.timeout
            )
        self.progress.info(f"Kubernetes master is running at {api.url}")
        self.progress.info(f"Nodes Ready: {', '.join(ready)}")
        self.progress.info(
            f"kubeconfig context {config.cluster_name} in {path}; credentials in {auth}"
        )

    def _stage_and_render(
        self,
        release_dir: Path,
        manifest: ReleaseManifest,
        secrets: ClusterSecrets,
        addresses: MasterAddresses,
    ) -> tuple[VmMetadata, VmMetadata]:
        """Stage the release and render each role's metadata for the master's addresses (the
        apiserver certificate is re-issued only when those changed)."""
        config = self.config
        apiserver = self.state.ensure_apiserver_cert(
            secrets.ca,
            master_name=config.master_name,
            master_ips=[addresses.internal_ip, addresses.external_ip],
            service_ip=config.kubernetes_service_ip,
        )
        with self.progress.step("Staging the release"):
            staged = self.provider.stage(release_dir, manifest)
        inputs = kube_env_inputs(config, manifest, staged, secrets, apiserver, addresses)
        return vm_metadata(inputs, secrets.ssh_public_key)

    def _api(self, secrets: ClusterSecrets, addresses: MasterAddresses) -> ApiServer:
        return ApiServer(
            host=addresses.external_ip,
            ca_pem=secrets.ca.cert_pem,
            user="admin",
            password=secrets.admin_password,
        )

    def _fetch_credentials(self, secrets: ClusterSecrets, addresses: MasterAddresses) -> None:
        """Read the CA and admin pair off the master and check they are the ones we made: the
        master answering with other credentials means it is not the master we set up."""
        expected = {
            "ca.crt": secrets.ca.cert_pem,
            "kubecfg.crt": secrets.admin.cert_pem,
            "kubecfg.key": secrets.admin.key_pem,
        }
        target = ssh_target(self.provider, secrets, self.config.master_name, addresses.external_ip)
        with connect(target) as session:
            for name in CREDENTIAL_FILES:
                fetched = session.fetch(f"{REMOTE_PKI_DIR}/{name}")
                if fetched.strip() != expected[name].strip():
                    raise CloudError(
                        f"{REMOTE_PKI_DIR}/{name} differs from this cluster's",
                        resource=f"instance {self.config.master_name}",
                        fix="kube-down and kube-up again: the master was set up by someone else",
                    )

    # -- validate-cluster --------------------------------------------------------------------

    def validate(self) -> None:
        secrets = self.state.ensure_secrets()
        addresses = self.provider.ensure_master_addresses()
        api = self._api(secrets, addresses)
        with self.progress.step(f"Validating {self.config.cluster_name}"):
            ready = validate(
                api, self.config.num_nodes, interval=self.config.poll_interval, timeout=60.0
            )
        self.progress.info(f"Nodes Ready: {', '.join(ready)}")

    # -- kube-push ---------------------------------------------------------------------------

    def push(self, *, release_dir: Path | None = None) -> None:
        step = self.progress.step
        config = self.config
        with step("Checking prerequisites"):
            release_dir, manifest = load_release(release_dir)
            self.provider.verify_prereqs()
            secrets = self.state.ensure_secrets()
            self.progress.add_secret(*secrets.secret_values())
            addresses = self.provider.ensure_master_addresses()
        master_md, node_md = self._stage_and_render(release_dir, manifest, secrets, addresses)
        with step("Updating instance metadata and the node template"):
            self.provider.update_metadata(master_md, node_md)
        rerun_highstate(
            self.provider, self.progress, secrets, (config.master_name, addresses.external_ip)
        )
        api = self._api(secrets, addresses)
        with step("Validating"):
            validate(api, config.num_nodes, interval=config.poll_interval, timeout=config.timeout)

    # -- kube-down ---------------------------------------------------------------------------

    def down(self, *, dry_run: bool = False) -> list[OwnedResource]:
        with self.progress.step(f"Finding the resources of {self.config.cluster_name}"):
            found = self.provider.owned_resources()
        if dry_run:
            for item in found:
                self.progress.info(f"would delete {item}")
            return found
        if found:
            with self.progress.step(f"Deleting {len(found)} resource(s)"):
                self.provider.delete(found)
        with self.progress.step("Removing local credentials"):
            kubeconfig.remove_context(self.config.cluster_name)
            remove_auth_file(self.state)
            self.state.destroy()
        return found
