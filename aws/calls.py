"""Every AWS request goes through here: throttling retried with backoff, the rest one-line errors.

AWS says "slow down" with a handful of codes (``RequestLimitExceeded`` on EC2, ``Throttling``
on IAM and Auto Scaling, ``SlowDown`` on S3, 5xx anywhere); those are retried by
:func:`cluster.retry.retry`. Anything else is the caller's to act on: a missing resource can be
tolerated (``find``, ``delete``), everything else becomes a :class:`CloudError` (or a
:class:`PrereqError` for credentials and endpoints) naming the resource, AWS's code and a fix.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TypeVar

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)

from cluster.errors import CloudError, PrereqError
from cluster.retry import Backoff, retry

T = TypeVar("T")

THROTTLING = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "SlowDown",
        "EC2ThrottledException",
        "PriorRequestNotComplete",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "Unavailable",
    }
)
API_BACKOFF = Backoff(initial=0.5, maximum=10.0, deadline=120.0)
# Codes that mean "no such thing" for the describe/get/delete calls kube-up makes.
NOT_FOUND = frozenset(
    {
        "NoSuchEntity",
        "NoSuchBucket",
        "NoSuchKey",
        "404",
        "NotFound",
        "InvalidVpcID.NotFound",
        "InvalidSubnetID.NotFound",
        "InvalidGroup.NotFound",
        "InvalidInternetGatewayID.NotFound",
        "InvalidRouteTableID.NotFound",
        "InvalidRoute.NotFound",
        "InvalidAssociationID.NotFound",
        "InvalidAllocationID.NotFound",
        "InvalidVolume.NotFound",
        "InvalidInstanceID.NotFound",
        "InvalidKeyPair.NotFound",
        "InvalidLaunchTemplateName.NotFoundException",
        "InvalidLaunchTemplateId.NotFound",
        "Gateway.NotAttached",
    }
)
CREDENTIALS_REJECTED = frozenset(
    {
        "AuthFailure",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidAccessKeyId",
        "UnrecognizedClientException",
    }
)
CREDENTIALS_FIX = (
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), or run `aws configure`"
)
_PERMISSION_FIX = (
    "grant these credentials the EC2, Auto Scaling, IAM and S3 permissions kube-up needs "
    "(e.g. the AmazonEC2FullAccess, AutoScalingFullAccess, IAMFullAccess and AmazonS3FullAccess "
    "policies)"
)
_INSTANCE_QUOTA_FIX = (
    "ask AWS for a higher 'Running On-Demand instances' quota (Service Quotas), or use fewer or "
    "smaller VMs (NUM_NODES, NODE_SIZE, MASTER_SIZE)"
)
_FIXES = {
    "UnauthorizedOperation": _PERMISSION_FIX,
    "AccessDenied": _PERMISSION_FIX,
    "AccessDeniedException": _PERMISSION_FIX,
    "InstanceLimitExceeded": _INSTANCE_QUOTA_FIX,
    "VcpuLimitExceeded": _INSTANCE_QUOTA_FIX,
    "InsufficientInstanceCapacity": "try another ZONE or instance type (MASTER_SIZE, NODE_SIZE)",
    "VpcLimitExceeded": "delete unused VPCs in this region, or ask AWS for a higher "
    "'VPCs per Region' quota",
    "AddressLimitExceeded": "release unused Elastic IPs in this region, or ask AWS for a higher "
    "'EC2-VPC Elastic IPs' quota",
    "InternetGatewayLimitExceeded": "delete unused internet gateways, or ask for a higher quota",
    "RouteLimitExceeded": "ask AWS for a higher 'Routes per route table' quota (up to 1000), "
    "or use fewer nodes",
    "SecurityGroupLimitExceeded": "delete unused security groups, or ask for a higher quota",
    "LimitExceeded": "ask AWS for a higher quota, or delete unused resources of this kind",
    "OptInRequired": "enable this region for the account, or pick another ZONE",
    "InvalidAMIID.NotFound": "set AMI (or MASTER_IMAGE/NODE_IMAGE) to an image of this region",
    "InvalidAMIID.Malformed": "set AMI (or MASTER_IMAGE/NODE_IMAGE) to an id like ami-0abc1234",
    "InvalidKeyPair.Format": "the cluster's SSH key was refused; remove its state dir's ssh/ "
    "and run kube-up again",
    "BucketAlreadyExists": "set STAGING_BUCKET to a bucket name of your own",
}


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "")) or "Unknown"
    return type(exc).__name__


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def is_throttling(exc: BaseException) -> bool:
    """AWS asked us to slow down, or failed on its side: worth another try."""
    if not isinstance(exc, ClientError):
        return False
    return error_code(exc) in THROTTLING or _status(exc) >= 500


def _message(exc: ClientError) -> str:
    text = str(exc.response.get("Error", {}).get("Message", "")) or str(exc)
    # UnauthorizedOperation carries a long encoded blob that only `aws sts
    # decode-authorization-message` can read; the sentence before it says what was refused.
    return text.split(" Encoded authorization failure message")[0].strip()


def cloud_error(exc: BaseException, resource: str) -> CloudError | PrereqError:
    """One line for a refused or failed request: ``<resource>: <Code>: <message>; <fix>``."""
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return PrereqError(f"no usable AWS credentials found ({exc})", fix=CREDENTIALS_FIX)
    if isinstance(exc, NoRegionError):
        return PrereqError("no AWS region configured", fix="set ZONE (e.g. us-west-2a)")
    if isinstance(exc, EndpointConnectionError):
        return PrereqError(
            f"cannot reach the AWS endpoint {exc.kwargs.get('endpoint_url', '')}",
            fix="check ZONE (its region), AWS_ENDPOINT_URL and the network",
        )
    if not isinstance(exc, ClientError):
        return CloudError(f"{type(exc).__name__}: {exc}", resource=resource)
    code = error_code(exc)
    if code in CREDENTIALS_REJECTED:
        return PrereqError(
            f"AWS rejected the credentials ({code}: {_message(exc)})", fix=CREDENTIALS_FIX
        )
    fix = _FIXES.get(code)
    if code in THROTTLING:
        fix = "AWS is throttling these requests: wait a minute and run the command again"
    elif fix is None and code.endswith("LimitExceeded"):
        fix = _FIXES["LimitExceeded"]
    return CloudError(f"{code}: {_message(exc)}", resource=resource, fix=fix)


def _run(
    fn: Callable[[], T],
    resource: str,
    tolerate: Collection[str],
    retry_also: Callable[[BaseException], bool] | None,
    backoff: Backoff,
) -> tuple[T | None, str | None]:
    """The answer, or (None, code) for a tolerated error code."""

    def retryable(exc: BaseException) -> bool:
        return is_throttling(exc) or (retry_also is not None and retry_also(exc))

    try:
        return retry(fn, retryable=retryable, backoff=backoff), None
    except ClientError as exc:
        code = error_code(exc)
        if code in tolerate:
            return None, code
        raise cloud_error(exc, resource) from None
    except BotoCoreError as exc:
        raise cloud_error(exc, resource) from None


def call(
    fn: Callable[[], T],
    resource: str,
    *,
    retry_also: Callable[[BaseException], bool] | None = None,
    backoff: Backoff = API_BACKOFF,
) -> T:
    """Run one request, retrying throttling (and whatever ``retry_also`` accepts, e.g. a
    ``DependencyViolation`` while dependents go away); any other error is a one-line error."""
    return _run(fn, resource, (), retry_also, backoff)[0]  # type: ignore[return-value]


def tolerating(
    fn: Callable[[], T],
    resource: str,
    tolerate: Collection[str],
    *,
    retry_also: Callable[[BaseException], bool] | None = None,
    backoff: Backoff = API_BACKOFF,
) -> T | None:
    """:func:`call`, answering None when the error's code is in ``tolerate``."""
    return _run(fn, resource, tolerate, retry_also, backoff)[0]


def attempt(
    fn: Callable[[], T], resource: str, tolerate: Collection[str]
) -> tuple[T | None, str | None]:
    """:func:`tolerating` that also says which tolerated code answered (None on success)."""
    return _run(fn, resource, tolerate, None, API_BACKOFF)


def find(fn: Callable[[], T], resource: str) -> T | None:
    """A get that answers None for a resource that does not exist."""
    return _run(fn, resource, NOT_FOUND, None, API_BACKOFF)[0]


def codes(*names: str) -> Callable[[BaseException], bool]:
    """A ``retry_also`` predicate for the given error codes."""
    wanted = frozenset(names)
    return lambda exc: isinstance(exc, ClientError) and error_code(exc) in wanted
