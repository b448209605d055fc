"""YAML for config files: safe types only, and a key given twice is an error.

Values PyYAML's constructors cannot build (an impossible date such as 2001-13-01) and
nesting deep enough to exhaust its recursive parser become YAMLErrors too, so a caller's
one `except yaml.YAMLError` names the file instead of a traceback.

PyYAML's safe_load keeps the last of two equal keys without a word; in a config that is
nearly always a mistake (two `interval:` lines, a pasted section), and Prometheus's own
loader refuses it too.
"""

from __future__ import annotations

from typing import Any

import yaml


class _Loader(yaml.SafeLoader):
    pass


def _mapping(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
        except TypeError:  # an unhashable key: construct_mapping says so below
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping",
                node.start_mark,
                f"key {key!r} is given twice",
                key_node.start_mark,
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def describe(error: yaml.YAMLError) -> str:
    """`not valid YAML at line L, column C: problem`, for a message that names the file."""
    mark = getattr(error, "problem_mark", None)
    at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(error, "problem", None) or str(error)
    return f"not valid YAML{at}: {problem}"


def safe_load(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)
    except ValueError as e:  # datetime/int constructors on a malformed scalar
        raise yaml.YAMLError(f"a value that cannot be read: {e}") from None
    except RecursionError:
        raise yaml.YAMLError("nested too deeply") from None
