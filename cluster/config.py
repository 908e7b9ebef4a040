"""Loading, merging and validating kube-up's configuration, before any cloud call.

``KUBERNETES_PROVIDER`` (``local``, the default; ``gce``; ``aws``) picks the provider's
``config_default`` module. Its ``DEFAULTS`` are then overridden by environment variables, which
are overridden by the optional ``--config FILE`` (YAML), in that fixed order. The file uses the
same names as the environment; its keys are case-insensitive (``num_nodes`` is ``NUM_NODES``),
a key the provider does not know is an error (with a "did you mean"), and so is a key given
twice. An empty environment variable counts as unset, as ``${VAR:-default}`` did in the shell
scripts. An alias (``NUM_MINIONS`` for ``NUM_NODES``...) and its setting given in the same place
with different values is an error.

Every problem raises :class:`~cluster.errors.ConfigError` with one line naming the setting, the
value, where it came from and what is allowed. Nothing else escapes :func:`load_config` or
:func:`build_config`, whatever the input.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import ipaddress
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cluster import config_schema as schema
from cluster.errors import ConfigError, show_value

# Provider name -> the module holding its DEFAULTS, FORMATS and ALIASES.
PROVIDERS: dict[str, str] = {
    "local": "localcloud.config_default",
    "gce": "gce.config_default",
    "aws": "aws.config_default",
}
DEFAULT_PROVIDER = "local"
PROVIDER_SETTING = "KUBERNETES_PROVIDER"
# Addresses a cloud may keep for itself in a subnet (GCE keeps 4, AWS 5).
SUBNET_RESERVED = 5
POD_CIDR_PREFIX = 24


@dataclass(frozen=True)
class ProviderDefaults:
    """What a provider's ``config_default`` module declares."""

    name: str
    defaults: Mapping[str, object]
    formats: Mapping[str, tuple[str, str]]
    aliases: Mapping[str, tuple[str, ...]]

    @classmethod
    def load(cls, name: str) -> ProviderDefaults:
        module = importlib.import_module(PROVIDERS[name])
        return cls(name, module.DEFAULTS, module.FORMATS, getattr(module, "ALIASES", {}))

    def settings(self) -> tuple[schema.Setting, ...]:
        """Common settings, then those whose format is the provider's."""
        formatted = tuple(
            schema.Setting(name, schema.pattern(regex, what, max_len=255), what)
            for name, (regex, what) in self.formats.items()
            if name in schema.PROVIDER_FORMATTED
        )
        return schema.COMMON_SETTINGS + formatted

    def known_names(self) -> frozenset[str]:
        names = {s.name for s in self.settings()} | set(self.aliases) | {PROVIDER_SETTING}
        return frozenset(names)


@dataclass(frozen=True)
class ClusterConfig:
    """The validated configuration of one cluster, with the names and ranges derived from it."""

    provider: str
    num_nodes: int
    instance_prefix: str
    zone: str
    region: str
    project: str
    master_size: str
    node_size: str
    master_image: str
    node_image: str
    master_disk_size_gb: int
    node_disk_size_gb: int
    network: str
    subnet_range: ipaddress.IPv4Network
    cluster_ip_range: ipaddress.IPv4Network
    service_cluster_ip_range: ipaddress.IPv4Network
    kube_version: str
    poll_interval: float
    timeout: float
    master_tag: str
    node_tag: str
    # STAGING_BUCKET as given; '' means derived, see staging_bucket().
    staging_bucket_setting: str
    enable_cluster_dns: bool = True
    dns_domain: str = "cluster.local"

    @property
    def cluster_name(self) -> str:
        return self.instance_prefix

    @property
    def master_name(self) -> str:
        return f"{self.instance_prefix}-master"

    @property
    def node_base_name(self) -> str:
        return f"{self.instance_prefix}-minion"

    def node_name(self, index: int) -> str:
        """Name of node ``index`` (1-based, as the original ``<prefix>-minion-1`` ...)."""
        if not 1 <= index <= self.num_nodes:
            raise ValueError(f"node index {index} is outside 1..{self.num_nodes}")
        return f"{self.node_base_name}-{index}"

    @property
    def node_names(self) -> tuple[str, ...]:
        return tuple(self.node_name(i) for i in range(1, self.num_nodes + 1))

    @property
    def max_nodes(self) -> int:
        """The most nodes these ranges can hold (one /24 of pods each, one kept for the master)."""
        return max_nodes_for(self.cluster_ip_range, self.subnet_range)

    def pod_cidr_for(self, index: int) -> ipaddress.IPv4Network:
        """The /24 of pod addresses of VM ``index``: 0 is the master, 1..NUM_NODES the nodes."""
        if not 0 <= index <= self.num_nodes:
            raise ValueError(f"pod CIDR index {index} is outside 0..{self.num_nodes}")
        size = 1 << (32 - POD_CIDR_PREFIX)
        start = int(self.cluster_ip_range.network_address) + index * size
        return ipaddress.IPv4Network((start, POD_CIDR_PREFIX))

    @property
    def kubernetes_service_ip(self) -> ipaddress.IPv4Address:
        """The ``kubernetes`` service's cluster IP: the first address of the service range."""
        return self.service_cluster_ip_range.network_address + 1

    @property
    def dns_service_ip(self) -> ipaddress.IPv4Address:
        """The cluster DNS service IP, by convention the tenth address of the service range."""
        return self.service_cluster_ip_range.network_address + 10

    def staging_bucket(self, owner: str) -> str:
        """Bucket for release tarballs: STAGING_BUCKET, else ``<prefix>-staging-<hash>`` where the
        hash covers provider, ``owner`` (GCE project id or AWS account id) and region, since
        bucket names are global."""
        if self.staging_bucket_setting:
            return self.staging_bucket_setting
        digest = hashlib.sha256(f"{self.provider}/{owner}/{self.region}".encode()).hexdigest()
        return f"{self.instance_prefix}-staging-{digest[:10]}"


def max_nodes_for(cluster_range: ipaddress.IPv4Network, subnet: ipaddress.IPv4Network) -> int:
    pod_blocks = 1 << max(0, POD_CIDR_PREFIX - cluster_range.prefixlen)
    subnet_hosts = subnet.num_addresses - SUBNET_RESERVED
    return max(0, min(schema.MAX_NODES, pod_blocks - 1, subnet_hosts - 1))


@dataclass(frozen=True)
class _Raw:
    """A raw value, where it came from, and the name it was given under (maybe an alias)."""

    value: object
    source: str
    written_as: str
    # Precedence of the source: 0 defaults, 1 environment, 2 file.
    rank: int = 0


Layer = dict[str, _Raw]


def load_config(
    env: Mapping[str, str] | None = None, config_file: str | os.PathLike[str] | None = None
) -> ClusterConfig:
    """Merge provider defaults, ``env`` (default ``os.environ``) and ``config_file``; validate."""
    file_values: dict[str, object] = {}
    source = ""
    if config_file is not None:
        source = os.fspath(config_file)
        file_values = parse_config_yaml(_read_config_file(source), source)
    return build_config(os.environ if env is None else env, file_values, source)


def _read_config_file(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigError(
            f"--config {show_value(path)}: cannot read it ({reason})",
            fix="pass a readable UTF-8 YAML file",
        ) from None


def parse_config_yaml(text: str, source: str) -> dict[str, object]:
    """The YAML mapping in ``text`` with upper-cased keys; malformed input is a ConfigError."""
    where = f"--config {show_value(source)}"
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            if node is not None and isinstance(node, yaml.MappingNode):
                _reject_duplicate_keys(node, where)
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except (yaml.YAMLError, ValueError, TypeError, RecursionError, OverflowError) as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc) or type(exc).__name__
        if isinstance(exc, RecursionError):
            problem = "nested too deeply"
        raise ConfigError(
            f"{where}: not valid YAML{at}: {problem}",
            fix="write one 'SETTING: value' per line",
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{where}: expected a mapping of SETTING: value, got a YAML {type(data).__name__}"
        )
    values: dict[str, object] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise ConfigError(f"{where}: key {show_value(key)} is not a setting name")
        values[key.strip().upper()] = value
    return values


def _reject_duplicate_keys(node: yaml.MappingNode, where: str) -> None:
    seen: set[str] = set()
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode):
            key = str(key_node.value).strip().upper()
            if key in seen:
                raise ConfigError(
                    f"{where}: {show_value(key)} is set more than once (keys are case-insensitive)",
                    fix="keep one",
                )
            seen.add(key)


def build_config(
    env: Mapping[str, str], file_values: Mapping[str, object], file_source: str = ""
) -> ClusterConfig:
    """Validate the merge of the provider's defaults, ``env`` and ``file_values``."""
    provider = _provider(env, file_values, file_source)
    spec = ProviderDefaults.load(provider)
    known = spec.known_names()
    settings = {s.name: s for s in spec.settings()}

    defaults: Layer = {
        name: _Raw(value, f"the {provider} defaults", name) for name, value in spec.defaults.items()
    }
    env_layer: Layer = {
        name: _Raw(env[name], "the environment", name, rank=1)
        for name in sorted(known)
        if isinstance(env.get(name), str) and env[name] != "" and name != PROVIDER_SETTING
    }
    file_layer: Layer = {}
    for name, value in file_values.items():
        if name not in known:
            raise _unknown_setting(name, known, file_source)
        if name != PROVIDER_SETTING:
            file_layer[name] = _Raw(value, file_source or "--config", name, rank=2)

    merged: Layer = {}
    for layer in (defaults, env_layer, file_layer):
        merged.update(_resolve_aliases(layer, spec, settings))

    values: dict[str, Any] = {}
    for name, setting in settings.items():
        raw = merged.get(name)
        if raw is None:
            raise ConfigError(
                f"{name} has no value: the {provider} defaults lack it",
                fix=f"set {name} in the environment or the --config file",
            )
        values[name] = _parse(setting, raw)
    return _assemble(provider, spec, values, merged)


def _provider(env: Mapping[str, str], file_values: Mapping[str, object], source: str) -> str:
    raw = _Raw(DEFAULT_PROVIDER, "the built-in default", PROVIDER_SETTING)
    if env.get(PROVIDER_SETTING):
        raw = _Raw(env[PROVIDER_SETTING], "the environment", PROVIDER_SETTING)
    if PROVIDER_SETTING in file_values:
        raw = _Raw(file_values[PROVIDER_SETTING], source or "--config", PROVIDER_SETTING)
    value = raw.value.strip().lower() if isinstance(raw.value, str) else raw.value
    if not isinstance(value, str) or value not in PROVIDERS:
        raise ConfigError.for_setting(
            PROVIDER_SETTING,
            raw.value,
            f"expected one of {', '.join(PROVIDERS)}",
            source=raw.source,
        )
    return value


def _unknown_setting(name: str, known: frozenset[str], source: str) -> ConfigError:
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}?" if close else f"known settings: {', '.join(sorted(known))}"
    return ConfigError(f"--config {show_value(source)}: unknown setting {show_value(name)}; {hint}")


def _resolve_aliases(
    layer: Layer, spec: ProviderDefaults, settings: Mapping[str, schema.Setting]
) -> Layer:
    """Replace aliases by the settings they stand for; an alias and its setting set to
    different values in the same place is an error."""
    resolved = {name: raw for name, raw in layer.items() if name not in spec.aliases}
    for alias, targets in spec.aliases.items():
        raw = layer.get(alias)
        if raw is None:
            continue
        for target in targets:
            other = resolved.get(target)
            if other is not None and _parse(settings[target], other) != _parse(
                settings[target], raw
            ):
                raise ConfigError(
                    f"{alias}={show_value(raw.value)} and {target}={show_value(other.value)} "
                    f"(both from {raw.source}) disagree: {alias} is another name for {target}",
                    fix=f"set only {target}",
                )
            resolved.setdefault(target, raw)
    return resolved


def _parse(setting: schema.Setting, raw: _Raw) -> Any:
    try:
        return setting.parse(raw.value)
    except schema.Invalid as exc:
        raise ConfigError.for_setting(
            raw.written_as, raw.value, str(exc), source=raw.source
        ) from None


def _assemble(
    provider: str, spec: ProviderDefaults, values: dict[str, Any], merged: Layer
) -> ClusterConfig:
    """Cross-setting checks, derived values, and the typed result."""
    # The provider's ZONE format names the region part of a zone (validated above: it matches).
    region = re.fullmatch(spec.formats["ZONE"][0], values["ZONE"], re.ASCII)["region"]
    if values["REGION"] and values["REGION"] != region:
        raw = merged["REGION"]
        raise ConfigError.for_setting(
            raw.written_as,
            raw.value,
            f"ZONE={values['ZONE']} is in region {region}; leave REGION unset, it follows ZONE",
            source=raw.source,
        )
    _check_ranges(values, merged)
    prefix = values["INSTANCE_PREFIX"]
    return ClusterConfig(
        provider=provider,
        num_nodes=values["NUM_NODES"],
        instance_prefix=prefix,
        zone=values["ZONE"],
        region=region,
        project=values["PROJECT"],
        master_size=values["MASTER_SIZE"],
        node_size=values["NODE_SIZE"],
        master_image=values["MASTER_IMAGE"],
        node_image=values["NODE_IMAGE"],
        master_disk_size_gb=values["MASTER_DISK_SIZE"],
        node_disk_size_gb=values["NODE_DISK_SIZE"],
        network=values["NETWORK"],
        subnet_range=values["SUBNET_RANGE"],
        cluster_ip_range=values["CLUSTER_IP_RANGE"],
        service_cluster_ip_range=values["SERVICE_CLUSTER_IP_RANGE"],
        kube_version=values["KUBE_VERSION"],
        poll_interval=values["KUBE_UP_POLL_INTERVAL"],
        timeout=values["KUBE_UP_TIMEOUT"],
        master_tag=values["MASTER_TAG"] or f"{prefix}-master",
        node_tag=values["NODE_TAG"] or f"{prefix}-minion",
        staging_bucket_setting=values["STAGING_BUCKET"],
        enable_cluster_dns=values["ENABLE_CLUSTER_DNS"],
        dns_domain=values["DNS_DOMAIN"],
    )


_RANGES = ("SUBNET_RANGE", "CLUSTER_IP_RANGE", "SERVICE_CLUSTER_IP_RANGE")


def _check_ranges(values: dict[str, Any], merged: Layer) -> None:
    """The three ranges must not overlap, and must have room for NUM_NODES VMs."""
    for i, first in enumerate(_RANGES):
        for second in _RANGES[i + 1 :]:
            if values[first].overlaps(values[second]):
                # Blame the one set last (file > environment > defaults).
                blamed, other = (second, first)
                if merged[first].rank > merged[second].rank:
                    blamed, other = (first, second)
                raw = merged[blamed]
                raise ConfigError.for_setting(
                    raw.written_as,
                    raw.value,
                    f"it overlaps {other}={values[other]}; the VM subnet, pod range and "
                    "service range must be disjoint",
                    source=raw.source,
                )
    nodes = values["NUM_NODES"]
    pods, subnet = values["CLUSTER_IP_RANGE"], values["SUBNET_RANGE"]
    if nodes <= max_nodes_for(pods, subnet):
        return
    # One /24 of pods per VM (the master too); subnet: one address per VM plus reserved ones.
    if (1 << max(0, POD_CIDR_PREFIX - pods.prefixlen)) < nodes + 1:
        prefix = POD_CIDR_PREFIX - math.ceil(math.log2(nodes + 1))
        room = (
            f"CLUSTER_IP_RANGE={pods} has room for {max_nodes_for(pods, pods)} nodes "
            f"(a /{POD_CIDR_PREFIX} of pods per VM, the master's included); "
            f"use a /{prefix} CLUSTER_IP_RANGE or fewer nodes"
        )
    else:
        prefix = 32 - math.ceil(math.log2(nodes + 1 + SUBNET_RESERVED))
        room = (
            f"SUBNET_RANGE={subnet} has room for {max_nodes_for(pods, subnet)} nodes "
            f"(an address per VM, {SUBNET_RESERVED} kept by the cloud); "
            f"use a /{prefix} SUBNET_RANGE or fewer nodes"
        )
    raw = merged["NUM_NODES"]
    raise ConfigError.for_setting(raw.written_as, raw.value, room, source=raw.source)
