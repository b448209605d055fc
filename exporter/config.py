"""The exporter's configuration: embedded defaults, the YAML file, validation.

Every key is optional. A bad file is refused before anything serves, with a message that
names the file, the key and the reason (the CLI turns it into exit code 2).
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import yaml

from exporter import yamlload
from exporter.spec import PORTS, Expectation, PortRange, Profile, Role

T = TypeVar("T")

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)(ms|s|m|h))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class ConfigError(Exception):
    """A configuration value is wrong; the message names where and why."""


@dataclass(frozen=True)
class NameFilter:
    """Select names by an include and an exclude regular expression ("" matches all / none)."""

    include: str = ""
    exclude: str = ""

    @cached_property
    def _include(self) -> re.Pattern[str] | None:
        return re.compile(self.include) if self.include else None

    @cached_property
    def _exclude(self) -> re.Pattern[str] | None:
        return re.compile(self.exclude) if self.exclude else None

    def matches(self, name: str) -> bool:
        if self._include is not None and not self._include.search(name):
            return False
        return not (self._exclude is not None and self._exclude.search(name))


@dataclass(frozen=True, kw_only=True)
class CheckSettings:
    enabled: bool = True
    interval: float = 15.0
    timeout: float = 5.0
    #: on failure, keep serving the last good values instead of dropping them
    keep_last_good: bool = False
    #: cardinality cap: at most this many devices / interfaces / ports / names per run;
    #: the rest is dropped and counted in kubev_check_items_dropped
    max_items: int = 256


@dataclass(frozen=True, kw_only=True)
class DiskSettings(CheckSettings):
    devices: NameFilter = NameFilter(exclude="^(loop|ram|zram|fd|sr)")
    storage_paths: tuple[str, ...] = ("/var/lib/kubelet",)
    #: fsyncs per storage path per run; the verdict takes their median
    fsync_samples: int = 3


@dataclass(frozen=True, kw_only=True)
class NetworkSettings(CheckSettings):
    interfaces: NameFilter = NameFilter(
        exclude="^(lo|veth|br|docker|cali|flannel|cni|ovn|genev|vxlan|tun|tap|virbr|kube-ipvs|ifb)"
    )
    #: skip interfaces without a device behind them (bridges, veth, tunnels, dummies)
    physical_only: bool = True
    #: auto: netlink for the live host, the sysfs tree when --path.sysfs points elsewhere
    source: str = "auto"


@dataclass(frozen=True)
class ExtraPort:
    """A port the spec table does not list, probed like the others."""

    component: str
    first: int
    last: int
    protocol: str
    expectation: Expectation


@dataclass(frozen=True, kw_only=True)
class PortsSettings(CheckSettings):
    #: per port; the check's timeout bounds the whole sweep
    connect_timeout: float = 1.0
    #: connects in flight at once
    concurrency: int = 256
    #: component -> expectation, overriding what the spec table says for this node's role
    expectations: Mapping[str, Expectation] = field(default_factory=dict)
    extra: tuple[ExtraPort, ...] = ()


@dataclass(frozen=True, kw_only=True)
class OvnSettings(CheckSettings):
    scheme: str = "http"
    bearer_token_file: str | None = None
    ca_file: str | None = None
    insecure_skip_verify: bool = False
    #: a larger body is cut off and the endpoint counts as down
    max_body_bytes: int = 4 * 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class DnsSettings(CheckSettings):
    #: names to resolve; empty: the node's own host name
    names: tuple[str, ...] = ()
    #: when set, kubernetes.default.svc.<cluster_domain> is resolved too
    cluster_domain: str | None = None
    lookup_timeout: float = 2.0


@dataclass(frozen=True)
class Config:
    profile: Profile = Profile.PRODUCTION
    role: Role = Role.SINGLE_NODE
    #: "" means the NODE_NAME environment variable, else the host name
    node_name: str = ""
    #: "auto": NODE_IP environment variable, else the default-route interface's address
    node_address: str = "auto"
    kvm: CheckSettings = CheckSettings(interval=60.0, timeout=5.0)
    compute: CheckSettings = CheckSettings(interval=15.0, timeout=5.0)
    disk: DiskSettings = DiskSettings(interval=15.0, timeout=10.0, max_items=256)
    network: NetworkSettings = NetworkSettings(interval=15.0, timeout=5.0, max_items=512)
    ports: PortsSettings = PortsSettings(interval=15.0, timeout=10.0, max_items=4096)
    ovn: OvnSettings = OvnSettings(interval=30.0, timeout=5.0)
    dns: DnsSettings = DnsSettings(interval=30.0, timeout=5.0, max_items=64)
    source: str = field(default="embedded defaults", compare=False)

    def port_expectation(self, row: PortRange) -> Expectation:
        """What this node expects of a port-table row: the config's word, else the role's."""
        return self.ports.expectations.get(row.component, row.expectation(self.role))

    def check(self, name: str) -> CheckSettings:
        settings: CheckSettings = getattr(self, name)
        return settings

    def with_check(self, name: str, **changes: Any) -> Config:
        updated: dict[str, Any] = {name: replace(self.check(name), **changes)}
        return replace(self, **updated)


def parse_duration(value: object, where: str) -> float:
    """Prometheus-style durations (500ms, 15s, 1m30s) or plain seconds; must be > 0."""
    seconds: float
    if isinstance(value, bool):
        raise ConfigError(f"{where}: must be a duration such as 15s or 500ms, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and _DURATION.match(value.strip()):
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(value.strip()))
    else:
        raise ConfigError(f"{where}: must be a duration such as 15s or 500ms, got {value!r}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"{where}: must be greater than zero, got {value!r}")
    return seconds


class _Section:
    """One mapping of the file: typed reads by key, unknown keys refused."""

    def __init__(self, data: object, where: str) -> None:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where or 'top level'}: must be a mapping, got {_kind(data)}")
        self.data: Mapping[str, object] = data
        self.where = where
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def get(self, name: str, parse: Callable[[object, str], T], default: T) -> T:
        self.used.add(name)
        if name not in self.data:
            return default
        return parse(self.data[name], self.key(name))

    def section(self, name: str) -> _Section:
        self.used.add(name)
        return _Section(self.data.get(name), self.key(name))

    def finish(self) -> None:
        for name in self.data:
            if name not in self.used:
                known = ", ".join(sorted(self.used))
                raise ConfigError(f"{self.key(str(name))}: unknown key (known keys: {known})")


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def _bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: must be true or false, got {value!r}")
    return value


def _str(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: must be a string, got {_kind(value)}")
    return value


def _positive_int(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: must be a whole number of at least 1, got {value!r}")
    return value


def _regex(value: object, where: str) -> str:
    text = _str(value, where)
    try:
        re.compile(text)
    except re.error as e:
        raise ConfigError(f"{where}: not a valid regular expression: {e}") from None
    return text


def _choice(choices: tuple[str, ...]) -> Callable[[object, str], str]:
    def parse(value: object, where: str) -> str:
        if value not in choices:
            raise ConfigError(f"{where}: must be one of {', '.join(choices)}, got {value!r}")
        return str(value)

    return parse


def _node_address(value: object, where: str) -> str:
    text = _str(value, where)
    if text == "auto":
        return text
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise ConfigError(f"{where}: must be auto or an IP address, got {text!r}") from None
    return text


def _abs_paths(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"{where}: must be a list of absolute paths, got {_kind(value)}")
    paths = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.startswith("/"):
            raise ConfigError(f"{where}[{i}]: must be an absolute path, got {item!r}")
        paths.append(item)
    return tuple(paths)


_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.?)+$")


def _hostname(value: object, where: str) -> str:
    text = _str(value, where)
    if not _HOSTNAME.match(text) or ".." in text:
        raise ConfigError(f"{where}: not a valid DNS name, got {text!r}")
    return text


def _optional_hostname(value: object, where: str) -> str | None:
    return None if value is None else _hostname(value, where)


def _hostnames(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"{where}: must be a list of DNS names, got {_kind(value)}")
    return tuple(_hostname(item, f"{where}[{i}]") for i, item in enumerate(value))


def _optional_abs_path(value: object, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith("/"):
        raise ConfigError(f"{where}: must be an absolute path, got {value!r}")
    return value


_EXPECTATIONS = tuple(e.value for e in Expectation)


def _expectation(value: object, where: str) -> Expectation:
    return Expectation(_choice(_EXPECTATIONS)(value, where))


def _expectations(value: object, where: str) -> dict[str, Expectation]:
    section = _Section(value, where)
    components = {p.component for p in PORTS}
    result = {}
    for name in list(section.data):
        if name not in components:
            known = ", ".join(sorted(components))
            raise ConfigError(f"{section.key(str(name))}: unknown component (known: {known})")
        result[str(name)] = section.get(str(name), _expectation, Expectation.REQUIRED)
    return result


def _port_range(value: object, where: str) -> tuple[int, int]:
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if isinstance(text, str):
        first, _, last = text.partition("-")
        if first.isdigit() and (not last or last.isdigit()):
            low, high = int(first), int(last or first)
            if 1 <= low <= high <= 65535:
                return low, high
    raise ConfigError(
        f"{where}: must be a port (1-65535) or a range like 61000-61009, got {value!r}"
    )


def _extra_ports(value: object, where: str) -> tuple[ExtraPort, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"{where}: must be a list, got {_kind(value)}")
    ports = []
    for i, item in enumerate(value):
        section = _Section(item, f"{where}[{i}]")
        component = section.get("component", _str, "")
        if not component:
            raise ConfigError(f"{section.key('component')}: required")
        if "port" not in section.data:
            raise ConfigError(f"{section.key('port')}: required")
        first, last = section.get("port", _port_range, (0, 0))
        ports.append(
            ExtraPort(
                component=component,
                first=first,
                last=last,
                protocol=section.get("protocol", _choice(("tcp", "udp")), "tcp"),
                expectation=section.get("expectation", _expectation, Expectation.REQUIRED),
            )
        )
        section.finish()
    return tuple(ports)


def _filter(section: _Section, name: str, default: NameFilter) -> NameFilter:
    sub = section.section(name)
    result = NameFilter(
        include=sub.get("include", _regex, default.include),
        exclude=sub.get("exclude", _regex, default.exclude),
    )
    sub.finish()
    return result


def _check_common(section: _Section, default: CheckSettings) -> dict[str, Any]:
    interval = section.get("interval", parse_duration, default.interval)
    common = {
        "enabled": section.get("enabled", _bool, default.enabled),
        "interval": interval,
        # a shorter interval alone pulls the default timeout down with it
        "timeout": section.get("timeout", parse_duration, min(default.timeout, interval)),
        "keep_last_good": section.get("keep_last_good", _bool, default.keep_last_good),
        "max_items": section.get("max_items", _positive_int, default.max_items),
    }
    if common["timeout"] > common["interval"]:
        raise ConfigError(
            f"{section.key('timeout')}: must not exceed the interval "
            f"({common['interval']:g}s), got {common['timeout']:g}s"
        )
    return common


def from_mapping(data: object, source: str = "config") -> Config:
    """Build a Config from parsed YAML; raise ConfigError naming the first bad key."""
    base = Config()
    top = _Section(data, "")
    profile = Profile(top.get("profile", _choice(tuple(Profile)), base.profile.value))
    role = Role(top.get("role", _choice(tuple(Role)), base.role.value))
    node_name = top.get("node_name", _str, base.node_name)
    node_address = top.get("node_address", _node_address, base.node_address)

    checks = top.section("checks")
    kvm_s = checks.section("kvm")
    kvm = CheckSettings(**_check_common(kvm_s, base.kvm))
    kvm_s.finish()

    compute_s = checks.section("compute")
    compute = CheckSettings(**_check_common(compute_s, base.compute))
    compute_s.finish()

    disk_s = checks.section("disk")
    disk = DiskSettings(
        **_check_common(disk_s, base.disk),
        devices=_filter(disk_s, "devices", base.disk.devices),
        storage_paths=disk_s.get("storage_paths", _abs_paths, base.disk.storage_paths),
        fsync_samples=disk_s.get("fsync_samples", _positive_int, base.disk.fsync_samples),
    )
    disk_s.finish()

    net_s = checks.section("network")
    network = NetworkSettings(
        **_check_common(net_s, base.network),
        interfaces=_filter(net_s, "interfaces", base.network.interfaces),
        physical_only=net_s.get("physical_only", _bool, base.network.physical_only),
        source=net_s.get("source", _choice(("auto", "netlink", "sysfs")), base.network.source),
    )
    net_s.finish()

    ports_s = checks.section("ports")
    ports = PortsSettings(
        **_check_common(ports_s, base.ports),
        connect_timeout=ports_s.get("connect_timeout", parse_duration, base.ports.connect_timeout),
        concurrency=ports_s.get("concurrency", _positive_int, base.ports.concurrency),
        expectations=ports_s.get("expectations", _expectations, base.ports.expectations),
        extra=ports_s.get("extra", _extra_ports, base.ports.extra),
    )
    ports_s.finish()

    ovn_s = checks.section("ovn")
    tls_s = ovn_s.section("tls")
    ovn = OvnSettings(
        **_check_common(ovn_s, base.ovn),
        scheme=ovn_s.get("scheme", _choice(("http", "https")), base.ovn.scheme),
        bearer_token_file=ovn_s.get("bearer_token_file", _optional_abs_path, None),
        ca_file=tls_s.get("ca_file", _optional_abs_path, None),
        insecure_skip_verify=tls_s.get("insecure_skip_verify", _bool, False),
        max_body_bytes=ovn_s.get("max_body_bytes", _positive_int, base.ovn.max_body_bytes),
    )
    tls_s.finish()
    ovn_s.finish()

    dns_s = checks.section("dns")
    dns = DnsSettings(
        **_check_common(dns_s, base.dns),
        names=dns_s.get("names", _hostnames, base.dns.names),
        cluster_domain=dns_s.get("cluster_domain", _optional_hostname, None),
        lookup_timeout=dns_s.get("lookup_timeout", parse_duration, base.dns.lookup_timeout),
    )
    dns_s.finish()
    checks.finish()
    top.finish()
    return Config(
        profile=profile,
        role=role,
        node_name=node_name,
        node_address=node_address,
        kvm=kvm,
        compute=compute,
        disk=disk,
        network=network,
        ports=ports,
        ovn=ovn,
        dns=dns,
        source=source,
    )


def load(path: Path) -> Config:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    try:
        data = yamlload.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: {yamlload.describe(e)}") from None
    try:
        return from_mapping(data, source=str(path))
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
