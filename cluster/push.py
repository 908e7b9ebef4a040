"""kube-push's last mile: re-run the node script in push mode over SSH, master first, then the
nodes in parallel batches. The first failure stops the push, naming the VM and its failed state.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from cluster.errors import CloudError
from cluster.progress import Progress
from cluster.provider import Provider
from cluster.ssh import SSHTarget, connect
from cluster.state import ClusterSecrets

PUSH_COMMAND = "/opt/kube-salt/scripts/configure-vm.sh --push"
PUSH_TIMEOUT_S = 900.0
BATCH = 10


def ssh_target(provider: Provider, secrets: ClusterSecrets, name: str, address: str) -> SSHTarget:
    """How to reach one VM, trusting only the host key it published."""
    host_key = provider.host_key(name)
    if host_key is None:
        raise CloudError(
            "published no SSH host key",
            resource=f"instance {name}",
            fix=provider.serial_log_hint(name),
        )
    return SSHTarget(
        host=address,
        port=22,
        user="root",
        private_key_path=secrets.ssh_private_key_path,
        host_key=host_key,
        name=name,
    )


def push_one(provider: Provider, secrets: ClusterSecrets, name: str, address: str) -> None:
    with connect(ssh_target(provider, secrets, name, address)) as session:
        result = session.run(PUSH_COMMAND, timeout=PUSH_TIMEOUT_S)
    if result.exit_status != 0:
        lines = [line for line in result.stdout.splitlines() if line.startswith("kube-up: ")]
        failed = [line for line in lines if "state failed" in line or "error" in line]
        reason = (failed or lines or [f"exit status {result.exit_status}"])[0]
        raise CloudError(
            f"highstate failed: {reason.removeprefix('kube-up: ')}",
            resource=f"instance {name}",
            fix="fix the state and run kube-push again",
        )


def rerun_highstate(
    provider: Provider,
    progress: Progress,
    secrets: ClusterSecrets,
    master: tuple[str, str],
) -> None:
    with progress.step(f"Re-applying the salt states on {master[0]}"):
        push_one(provider, secrets, *master)
    nodes = sorted(provider.node_addresses().items())
    with progress.step(f"Re-applying the salt states on {len(nodes)} node(s)"):
        for start in range(0, len(nodes), BATCH):
            batch = nodes[start : start + BATCH]
            with ThreadPoolExecutor(max_workers=BATCH) as pool:
                futures = [pool.submit(push_one, provider, secrets, n, a) for n, a in batch]
            for future in futures:
                future.result()
