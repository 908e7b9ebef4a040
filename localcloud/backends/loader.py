"""Choosing a backend by name; the machines backend is imported only when asked for."""

from __future__ import annotations

from pathlib import Path

from localcloud.backends.base import MachineBackend

BACKENDS = ("machines", "simulated")


class BackendUnavailable(Exception):
    """The requested backend cannot run here (missing module, not root, ...)."""


def load_backend(name: str, state_dir: Path) -> MachineBackend:
    if name == "simulated":
        from localcloud.backends.simulated import SimulatedBackend

        return SimulatedBackend()
    if name == "machines":
        try:
            from localcloud.backends.machines import MachinesBackend
        except ImportError as err:
            raise BackendUnavailable(f"backend 'machines' is not available: {err}") from None
        try:
            return MachinesBackend(state_dir=state_dir)
        except (OSError, RuntimeError) as err:
            raise BackendUnavailable(f"backend 'machines' could not start: {err}") from None
    raise BackendUnavailable(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
