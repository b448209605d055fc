"""Name filters: a pattern that could backtrack for long is refused when the config loads;
the filters' own defaults and ordinary patterns pass."""

from __future__ import annotations

import re
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter import regexcost
from exporter.checks.disk import DiskSettings
from exporter.checks.network import NetworkSettings
from exporter.config import from_mapping
from exporter.settings import ConfigError, NameFilter

ACCEPTED = [
    "",
    r"^(loop|ram|zram|fd|sr)",
    r"sd[a-z]+",
    r"^nvme\d+n\d+$",
    r"(sd|vd|xvd)[a-z]+[0-9]*",
    r"^(eth|ens)[0-9]+(s[0-9]+)?$",
    r"(?i)^ETH\d+",
    r".*foo.*bar.*",
    r"\w+\.\w+",
    r"(\d+\.)+x",
    r"^bond[0-9]+\.[0-9]{1,4}$",
    r"(?:a|b|c|d|e){5}x",
]
REFUSED = [
    r"(a+)+$",
    r"(a|a)*$",
    r"(a|aa)+$",
    r"(\w+\d*)+$",
    r"(.*)*",
    r"(ab|a)*c",
    r"\d*\d*\d*\d*x",
    r".*a.*a.*b",
    r"(x?){30}x{30}",
    r"(a|a){13}b",
]


@pytest.mark.parametrize("pattern", ACCEPTED)
def test_ordinary_patterns_are_accepted(pattern: str) -> None:
    regexcost.check(pattern)


@pytest.mark.parametrize("pattern", REFUSED)
def test_backtracking_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(regexcost.PatternTooCostly, match="could backtrack too long"):
        regexcost.check(pattern)


def test_backreferences_are_refused() -> None:
    with pytest.raises(regexcost.PatternTooCostly, match="backreferences"):
        regexcost.check(r"(a)\1")


def test_the_defaults_pass() -> None:
    for name_filter in (DiskSettings().devices, NetworkSettings().interfaces):
        for pattern in (name_filter.include, name_filter.exclude):
            regexcost.check(pattern)


@pytest.mark.parametrize(("check", "key"), [("disk", "devices"), ("network", "interfaces")])
def test_config_refuses_a_pathological_filter(check: str, key: str) -> None:
    with pytest.raises(ConfigError) as error:
        from_mapping({"checks": {check: {key: {"include": "^(a+)+$"}}}})
    assert str(error.value).startswith(
        f"checks.{check}.{key}.include: '^(a+)+$' could backtrack too long on some names"
    )


def test_long_names_are_never_selected() -> None:
    name_filter = NameFilter(exclude="^loop")
    assert name_filter.matches("a" * regexcost.NAME_LIMIT)
    assert not name_filter.matches("a" * (regexcost.NAME_LIMIT + 1))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab()|*+?.[]^$\\d{}1,", max_size=20))
def test_any_pattern_is_accepted_or_refused_with_its_error(pattern: str) -> None:
    """Whatever a config holds: the bound is computed, or the pattern refused, never a
    crash (patterns that do not compile never reach the bound)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            re.compile(pattern)
    except (re.error, FutureWarning):
        return
    try:
        regexcost.check(pattern)
    except regexcost.PatternTooCostly:
        return
    assert regexcost.ways(pattern) <= regexcost.MAX_WAYS
