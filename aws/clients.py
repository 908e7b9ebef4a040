"""boto3 clients for one region, configured once.

Where requests go is boto3's own business: ``AWS_ENDPOINT_URL`` (and the per-service
``AWS_ENDPOINT_URL_<SERVICE>``), profiles and the usual credential chain, so the same code runs
against AWS and against moto. botocore's own retries are turned off: throttling is retried in
one place, :mod:`aws.calls`, with :mod:`cluster.retry`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import boto3
from botocore.config import Config

CLIENT_CONFIG = Config(
    retries={"total_max_attempts": 1},
    connect_timeout=10,
    read_timeout=120,
    user_agent_extra="kube-up",
)


@dataclass
class AwsClients:
    """Lazily built clients sharing one session (one credential lookup)."""

    region: str

    @cached_property
    def session(self) -> boto3.session.Session:
        return boto3.session.Session(region_name=self.region)

    def _client(self, service: str) -> Any:
        return self.session.client(service, config=CLIENT_CONFIG)

    @cached_property
    def ec2(self) -> Any:
        return self._client("ec2")

    @cached_property
    def autoscaling(self) -> Any:
        return self._client("autoscaling")

    @cached_property
    def iam(self) -> Any:
        return self._client("iam")

    @cached_property
    def s3(self) -> Any:
        return self._client("s3")

    @cached_property
    def sts(self) -> Any:
        return self._client("sts")
