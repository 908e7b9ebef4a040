"""pytest fixtures for the localcloud tests (``pytest_plugins = ["tests.localcloud_fixtures"]``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.localcloud_support import LocalCloud, running_cloud


@pytest.fixture(scope="session")
def shared_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    """One daemon for the whole session (tests use their own project in it)."""
    with running_cloud(tmp_path_factory.mktemp("localcloud")) as cloud:
        yield cloud


@pytest.fixture
def lc(shared_cloud: LocalCloud) -> Iterator[LocalCloud]:
    """The shared daemon, with faults, quotas and the rate limit reset after the test."""
    yield shared_cloud
    shared_cloud.admin("DELETE", "faults")
    shared_cloud.admin("POST", "quotas", {})
    shared_cloud.admin("POST", "ratelimit", {"rate": 0})


@pytest.fixture
def project() -> str:
    return f"p-{uuid.uuid4().hex[:10]}"
