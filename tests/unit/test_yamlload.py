"""The config loader's bounds: size, nesting, alias expansion. A hostile file is refused
with a message that names the problem (and the command exits 2:
tests/integration/test_hostile_config.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from exporter import yamlload
from exporter.config import load
from exporter.settings import ConfigError
from tests.hostile import laughs


def test_ordinary_aliases_still_load() -> None:
    data = yamlload.safe_load("a: &x {interval: 10s}\nb: *x\nc: [*x, *x]\n")
    assert data == {"a": {"interval": "10s"}, "b": {"interval": "10s"}, "c": [data["a"]] * 2}


def test_billion_laughs_is_refused_before_it_expands() -> None:
    with pytest.raises(yaml.YAMLError) as error:
        yamlload.safe_load(laughs(9))
    assert f"more than {yamlload.MAX_NODES} values (an alias counts as a copy)" in str(error.value)


def test_long_text_through_aliases_is_refused() -> None:
    text = 'a: &a "' + "x" * 60_000 + '"\nb: [*a, *a, *a, *a, *a]\n'
    with pytest.raises(yaml.YAMLError, match="characters"):
        yamlload.safe_load(text)


def test_an_alias_to_its_own_anchor_is_refused() -> None:
    with pytest.raises(yaml.YAMLError, match="refers to its own anchor"):
        yamlload.safe_load("a: &a [1, *a]\n")


@pytest.mark.parametrize("depth", [yamlload.MAX_DEPTH + 1, 100_000])
def test_deep_nesting_is_refused_without_recursion_error(depth: int) -> None:
    with pytest.raises(yaml.YAMLError) as error:
        yamlload.safe_load("[" * depth + "]" * depth)
    assert yamlload.describe(error.value) == (
        f"not valid YAML at line 1, column {yamlload.MAX_DEPTH + 1}: "
        f"nested deeper than {yamlload.MAX_DEPTH} levels"
    )


def test_nesting_up_to_the_limit_loads() -> None:
    depth = yamlload.MAX_DEPTH
    data = yamlload.safe_load("[" * depth + "]" * depth)
    for _ in range(depth - 1):
        data = data[0]
    assert data == []


def test_a_big_file_is_not_read_past_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    with path.open("wb") as f:
        f.truncate(1 << 30)  # 1 GiB, sparse: reading it all would take a while
    with pytest.raises(ConfigError, match=r"big.yaml: larger than 256 KiB: not a config file"):
        load(path)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"node_name: n\xe9\n")
    with pytest.raises(ConfigError, match=r"latin1\.yaml: not UTF-8 text"):
        load(path)


def test_a_huge_value_is_quoted_short_in_the_error(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("profile: " + "x" * 200_000 + "\n")
    with pytest.raises(ConfigError) as error:
        load(path)
    assert len(str(error.value)) < 300
    assert "profile: must be one of testing, production, got 'xxx" in str(error.value)
