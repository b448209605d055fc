"""The exporter's configuration: embedded defaults, the YAML file, validation.

Every key is optional. A bad file is refused before anything serves, with a message that
names the file, the key and the reason (the CLI turns it into exit code 2). The keys are
declared once, as settings fields (exporter/settings.py): the top-level ones here, each
check's beside its code; `checks:` holds one section per registered check.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

import yaml

from exporter import yamlload
from exporter.checks import CHECKS
from exporter.settings import (
    CheckSettings,
    ConfigError,
    choice,
    key_of,
    mapping,
    parse_node_address,
    parse_section,
    parse_str,
    setting,
    shown,
)
from exporter.spec import Profile, Role

S = TypeVar("S", bound=CheckSettings)

#: Where every runbook link points ({alert} is the alert's name): the alert rules, the
#: `check` report and the page at / all use this one template (or the config's).
DEFAULT_RUNBOOK_URL = (
    "https://github.com/kubev/kubev-node-exporter/blob/main/docs/runbooks/{alert}.md"
)


def _runbook_template(value: object, where: str) -> str:
    text = parse_str(value, where)
    if "{alert}" not in text or text.replace("{alert}", "").count("{") > 0:
        raise ConfigError(f"{where}: must contain {{alert}} and no other braces, got {shown(text)}")
    return text


def _default_checks() -> Mapping[str, CheckSettings]:
    return MappingProxyType({name: cls.defaults for name, cls in CHECKS.items()})


def _parse_checks(data: object, where: str) -> Mapping[str, CheckSettings]:
    """`checks:`, one section per registered check; a check left out keeps its defaults."""
    given = mapping(data, where)
    checks = {
        name: parse_section(cls.settings_type, given.get(name), key_of(where, name), cls.defaults)
        for name, cls in CHECKS.items()
    }
    for name in given:
        if name not in CHECKS:
            known = ", ".join(sorted(CHECKS))
            raise ConfigError(f"{key_of(where, str(name))}: unknown key (known keys: {known})")
    return MappingProxyType(checks)


@dataclass(frozen=True)
class Config:
    profile: Profile = setting(
        Profile.PRODUCTION,
        parse=lambda v, w: Profile(choice(tuple(Profile))(v, w)),
        doc="requirement profile: testing | production",
    )
    role: Role = setting(
        Role.SINGLE_NODE,
        parse=lambda v, w: Role(choice(tuple(Role))(v, w)),
        doc="node role: single-node | control-plane | worker",
    )
    node_name: str = setting("", parse=parse_str, doc='"": $NODE_NAME, else the host name')
    node_address: str = setting(
        "auto",
        parse=parse_node_address,
        doc="auto ($NODE_IP, else the default route's address) or an IP; the port probes' target",
    )
    runbook_url_template: str = setting(
        DEFAULT_RUNBOOK_URL,
        parse=_runbook_template,
        doc="where the report's runbook links point; {alert} is the alert's name",
    )
    checks: Mapping[str, CheckSettings] = setting(
        default_factory=_default_checks,
        parse=_parse_checks,
        doc="one section per check (exporter/checks/__init__.py lists them)",
    )
    source: str = field(default="embedded defaults", compare=False)

    def check(self, name: str) -> CheckSettings:
        return self.checks[name]

    def settings(self, cls: type[S]) -> S:
        """A check's settings by their class: `cfg.settings(DiskSettings).storage_paths`."""
        for settings in self.checks.values():
            if type(settings) is cls:
                return settings
        raise KeyError(cls.__name__)

    def with_check(self, name: str, **changes: Any) -> Config:
        checks = dict(self.checks)
        checks[name] = replace(checks[name], **changes)
        return replace(self, checks=MappingProxyType(checks))

    def node(self) -> str:
        """The node's name: the config's, else $NODE_NAME (the DaemonSet sets it from the
        downward API), else the host name."""
        return self.node_name or os.environ.get("NODE_NAME") or socket.gethostname()


def from_mapping(data: object, source: str = "config") -> Config:
    """Build a Config from parsed YAML; raise ConfigError naming the first bad key."""
    return replace(parse_section(Config, data, "", Config()), source=source)


def load(path: Path) -> Config:
    try:
        data = yamlload.load_file(path)  # bounded in size, depth and alias expansion
    except yamlload.FileError as e:
        raise ConfigError(f"{path}: {e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: {yamlload.describe(e)}") from None
    try:
        return from_mapping(data, source=str(path))
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
