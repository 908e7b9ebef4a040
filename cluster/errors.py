"""The errors kube-up expects, each with a one-line message and its own exit code.

Anything raised from kube-up, kube-push, kube-down or validate-cluster that is a
:class:`KubeUpError` is an expected failure: the CLI prints ``str(error)`` as a single red line
and exits with ``error.exit_code``, without a traceback. Any other exception is a bug: it exits 1
and shows its traceback only with ``-v``.

Exit codes:

====  ==================  ======================================================================
code  error               meaning
====  ==================  ======================================================================
0                         success
1                         unexpected error (a bug; rerun with -v for the traceback)
2     ConfigError         a setting is wrong; nothing was changed in any cloud
3     PrereqError         a tool, credential or local file kube-up needs is missing or unusable
4     CloudError          the cloud refused or failed a request (quota, permission, not found...)
5     ClusterTimeout      something did not happen within its deadline (VM boot, apiserver...)
6     ValidationFailed    the cluster came up but does not pass validation
====  ==================  ======================================================================
"""

from __future__ import annotations

from typing import ClassVar


def one_line(text: str) -> str:
    """Collapse whitespace (newlines included) so a message can never span lines."""
    return " ".join(text.split())


class KubeUpError(Exception):
    """An expected failure: one line saying what is wrong and how to fix it."""

    exit_code: ClassVar[int] = 1

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        text = one_line(message)
        if fix:
            text = f"{text}; {one_line(fix)}"
        super().__init__(text)
        self.message = text


class ConfigError(KubeUpError):
    """A setting is wrong; raised before any cloud call."""

    exit_code: ClassVar[int] = 2

    @classmethod
    def for_setting(
        cls, setting: str, value: object, allowed: str, *, source: str = ""
    ) -> ConfigError:
        """``NUM_NODES=0 (from the environment) is not allowed: <allowed>`` in one line."""
        where = f" (from {source})" if source else ""
        return cls(f"{setting}={show_value(value)}{where} is not allowed: {allowed}")


class PrereqError(KubeUpError):
    """A tool, credential or local file kube-up needs is missing or unusable."""

    exit_code: ClassVar[int] = 3


class CloudError(KubeUpError):
    """The cloud refused or failed a request; the message names the resource and the cause."""

    exit_code: ClassVar[int] = 4

    def __init__(self, message: str, *, resource: str | None = None, fix: str | None = None):
        super().__init__(f"{resource}: {message}" if resource else message, fix=fix)
        self.resource = resource


class ClusterTimeout(KubeUpError):
    """Something did not happen before its deadline."""

    exit_code: ClassVar[int] = 5


class ValidationFailed(KubeUpError):
    """The cluster exists but does not pass validation (apiserver, nodes Ready)."""

    exit_code: ClassVar[int] = 6


def show_value(value: object, limit: int = 60) -> str:
    """A short, single-line rendering of a user-supplied value for error messages."""
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text
