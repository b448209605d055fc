"""Settings declared once: every field of a settings dataclass says how it is read from the
config file (its parser), what it means (its doc) and its default. The loader, its error
messages (which name the key) and the documented default configuration are all derived
from these declarations (see exporter/config.py and tools/docs.py).

A check declares its own settings class beside its code (a subclass of CheckSettings);
the registry in exporter/checks/__init__.py puts them under `checks:` in the file.
"""

from __future__ import annotations

import ipaddress
import math
import re
import reprlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields, replace
from functools import cached_property
from typing import Any, TypeVar

from exporter import regexcost

T = TypeVar("T")
Parser = Callable[[object, str], Any]
Shower = Callable[[Any], str]

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)(ms|s|m|h))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class ConfigError(Exception):
    """A configuration value is wrong; the message names where and why."""


_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxstring, _SHOWN.maxother = 2, 60, 60
_SHOWN.maxlist = _SHOWN.maxtuple = _SHOWN.maxdict = _SHOWN.maxset = 4


def shown(value: object) -> str:
    """A value quoted in an error message: its repr, cut short. A config value can be a
    long string or a big (even alias-shared) structure; its whole repr is never built."""
    return _SHOWN.repr(value)


# --- declaring fields -------------------------------------------------------------------


def setting(
    default: Any = MISSING,
    *,
    parse: Parser,
    doc: str,
    show: Shower | None = None,
    default_factory: Callable[[], Any] | Any = MISSING,
) -> Any:
    """A field read from the config file with `parse(value, key)`; `show` renders the
    default for the documentation (YAML-ish by default)."""
    metadata = {"parse": parse, "doc": doc, "show": show or show_yaml}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def section(cls: type[Any], doc: str, default: Any = MISSING) -> Any:
    """A nested mapping read into the settings dataclass `cls` (keys it leaves out keep
    the default's values)."""
    metadata = {"section": cls, "doc": doc}
    if default is MISSING:
        return field(default_factory=cls, metadata=metadata)
    return field(default_factory=lambda: default, metadata=metadata)


def declared(cls: type[Any]) -> Iterator[Field[Any]]:
    """The fields of a settings dataclass that the config file can set, in order."""
    for f in fields(cls):
        if "parse" in f.metadata or "section" in f.metadata:
            yield f


def key_of(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def mapping(data: object, where: str) -> Mapping[str, object]:
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or 'top level'}: must be a mapping, got {kind(data)}")
    return data


def parse_section(cls: type[T], data: object, where: str, default: T) -> T:
    """Read `data` into a copy of `default`: every key parsed by its declared parser,
    unknown keys refused (after the known ones are read, naming the known keys)."""
    given = mapping(data, where)
    values: dict[str, Any] = {}
    known = []
    for f in declared(cls):
        known.append(f.name)
        if f.name not in given:
            continue
        key = key_of(where, f.name)
        nested = f.metadata.get("section")
        if nested is not None:
            values[f.name] = parse_section(nested, given[f.name], key, getattr(default, f.name))
        else:
            values[f.name] = f.metadata["parse"](given[f.name], key)
    for name in given:
        if name not in known:
            raise ConfigError(
                f"{key_of(where, str(name))}: unknown key (known keys: {', '.join(sorted(known))})"
            )
    result = replace(default, **values)  # type: ignore[type-var]
    settle = getattr(result, "settle", None)
    if settle is not None:
        result = settle(set(values), where)
    return result


# --- parsers: each raises ConfigError naming the key ------------------------------------


def kind(value: object) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def parse_duration(value: object, where: str) -> float:
    """Prometheus-style durations (500ms, 15s, 1m30s) or plain seconds; must be > 0."""
    seconds: float
    if isinstance(value, bool):
        raise ConfigError(f"{where}: must be a duration such as 15s or 500ms, got {shown(value)}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and _DURATION.match(value.strip()):
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(value.strip()))
    else:
        raise ConfigError(f"{where}: must be a duration such as 15s or 500ms, got {shown(value)}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"{where}: must be greater than zero, got {shown(value)}")
    return seconds


def show_duration(seconds: float) -> str:
    """15.0 -> 15s, 0.5 -> 500ms, 90.0 -> 1m30s."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    minutes, rest = divmod(seconds, 60)
    if minutes and rest:
        return f"{minutes:g}m{rest:g}s"
    return f"{minutes:g}m" if minutes else f"{rest:g}s"


def parse_bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: must be true or false, got {shown(value)}")
    return value


def parse_str(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: must be a string, got {kind(value)}")
    return value


def parse_positive_int(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: must be a whole number of at least 1, got {shown(value)}")
    return value


def parse_regex(value: object, where: str) -> str:
    """A regular expression that filters names; refused if it could backtrack for long on
    a name (exporter/regexcost.py says how that is bounded)."""
    text = parse_str(value, where)
    if len(text) > regexcost.MAX_PATTERN:
        raise ConfigError(f"{where}: longer than {regexcost.MAX_PATTERN} characters")
    try:
        re.compile(text)
    except re.error as e:
        raise ConfigError(f"{where}: not a valid regular expression: {e}") from None
    try:
        regexcost.check(text)
    except regexcost.PatternTooCostly as e:
        raise ConfigError(f"{where}: {shown(text)} {e}") from None
    return text


def choice(choices: tuple[str, ...]) -> Parser:
    def parse(value: object, where: str) -> str:
        if value not in choices:
            raise ConfigError(f"{where}: must be one of {', '.join(choices)}, got {shown(value)}")
        return str(value)

    return parse


def parse_node_address(value: object, where: str) -> str:
    text = parse_str(value, where)
    if text == "auto":
        return text
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise ConfigError(f"{where}: must be auto or an IP address, got {shown(text)}") from None
    return text


def parse_abs_paths(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"{where}: must be a list of absolute paths, got {kind(value)}")
    paths = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.startswith("/"):
            raise ConfigError(f"{where}[{i}]: must be an absolute path, got {shown(item)}")
        paths.append(item)
    return tuple(paths)


def parse_optional_abs_path(value: object, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith("/"):
        raise ConfigError(f"{where}: must be an absolute path, got {shown(value)}")
    return value


_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.?)+$")


def parse_hostname(value: object, where: str) -> str:
    text = parse_str(value, where)
    if not _HOSTNAME.match(text) or ".." in text:
        raise ConfigError(f"{where}: not a valid DNS name, got {shown(text)}")
    return text


def parse_optional_hostname(value: object, where: str) -> str | None:
    return None if value is None else parse_hostname(value, where)


def parse_hostnames(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"{where}: must be a list of DNS names, got {kind(value)}")
    return tuple(parse_hostname(item, f"{where}[{i}]") for i, item in enumerate(value))


def show_yaml(value: Any) -> str:
    """A default as it would be written in the file (flow style)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        plain = re.fullmatch(r"[A-Za-z0-9_./-]+", value) and value not in ("null", "true", "no")
        return value if plain else '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, tuple | list):
        return "[" + ", ".join(show_yaml(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {show_yaml(v)}" for k, v in value.items()) + "}"
    return f"{value:g}" if isinstance(value, float) else str(value)


# --- shared settings shapes -------------------------------------------------------------


@dataclass(frozen=True)
class NameFilter:
    """Select names by an include and an exclude regular expression ("" matches all / none).
    Names longer than regexcost.NAME_LIMIT characters are never selected."""

    include: str = setting("", parse=parse_regex, doc='names must match ("": all)')
    exclude: str = setting("", parse=parse_regex, doc='names must not match ("": none)')

    @cached_property
    def _include(self) -> re.Pattern[str] | None:
        return re.compile(self.include) if self.include else None

    @cached_property
    def _exclude(self) -> re.Pattern[str] | None:
        return re.compile(self.exclude) if self.exclude else None

    def matches(self, name: str) -> bool:
        # the patterns' cost is bounded for names this long (exporter/regexcost.py); the
        # kernel's are shorter (interfaces 15 characters, block devices 31)
        if len(name) > regexcost.NAME_LIMIT:
            return False
        if self._include is not None and not self._include.search(name):
            return False
        return not (self._exclude is not None and self._exclude.search(name))


@dataclass(frozen=True, kw_only=True)
class CheckSettings:
    """What every check takes. A check's own settings class adds its fields."""

    enabled: bool = setting(True, parse=parse_bool, doc="run this check")
    interval: float = setting(
        15.0, parse=parse_duration, show=show_duration, doc="time between two runs"
    )
    timeout: float = setting(
        5.0,
        parse=parse_duration,
        show=show_duration,
        doc="a run that takes longer fails (at most the interval)",
    )
    keep_last_good: bool = setting(
        False,
        parse=parse_bool,
        doc="on failure, keep serving the last good values (kubev_check_success still 0)",
    )
    max_items: int = setting(
        256,
        parse=parse_positive_int,
        doc="cap on items per run; the rest is counted in kubev_check_items_dropped",
    )

    def settle(self, given: set[str], where: str) -> CheckSettings:
        """Rules between fields, once the file's values are in."""
        settled = self
        if "interval" in given and "timeout" not in given:
            # a shorter interval alone pulls the default timeout down with it
            settled = replace(self, timeout=min(self.timeout, self.interval))
        if settled.timeout > settled.interval:
            raise ConfigError(
                f"{key_of(where, 'timeout')}: must not exceed the interval "
                f"({settled.interval:g}s), got {settled.timeout:g}s"
            )
        return settled
