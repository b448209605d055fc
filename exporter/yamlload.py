"""YAML for config files (--config.file and --web.config.file): safe types only, a key given
twice is an error, and the file's cost is bounded before it is paid.

Values PyYAML's constructors cannot build (an impossible date such as 2001-13-01) and
nesting deep enough to exhaust its recursive parser become YAMLErrors too, so a caller's
one `except yaml.YAMLError` names the file instead of a traceback.

PyYAML's safe_load keeps the last of two equal keys without a word; in a config that is
nearly always a mistake (two `interval:` lines, a pasted section), and Prometheus's own
loader refuses it too.

Bounds (a config file is a few KiB; these are far above any real one and far below harm):
- the file: at most MAX_BYTES, read no further;
- nesting: at most MAX_DEPTH levels (the composer recurses per level, so 100k levels of
  `[[[...` would otherwise end in a RecursionError);
- size after alias expansion: at most MAX_NODES nodes and MAX_TEXT characters of scalars,
  every use of an alias counted as a copy. PyYAML shares an aliased node instead of
  copying it, so a "billion laughs" file loads small, but anything that walks the result
  (a parser, a repr() in an error message) walks every copy: 9 levels of 9 aliases are
  387 million nodes. An alias to its own anchor (a cycle) is refused for the same reason.
A file that is not a config file but is parsed as YAML all the same (a peer list in
file_sd style, exporter/checks/peerlist.py) passes its own Bounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.events import AliasEvent
from yaml.nodes import Node, ScalarNode

MAX_BYTES = 256 * 1024
MAX_DEPTH = 32
MAX_NODES = 10_000
MAX_TEXT = 256 * 1024


@dataclass(frozen=True)
class Bounds:
    """What one document may cost: characters of input, levels of nesting, nodes and
    characters of scalars after alias expansion."""

    max_bytes: int = MAX_BYTES
    max_depth: int = MAX_DEPTH
    max_nodes: int = MAX_NODES
    max_text: int = MAX_TEXT


#: the bounds of a config file
CONFIG = Bounds()


class FileError(Exception):
    """The file cannot be read as a config file (unreadable, too big, not UTF-8)."""


class _Loader(yaml.SafeLoader):
    def __init__(self, stream: str, bounds: Bounds = CONFIG) -> None:
        super().__init__(stream)
        self._bounds = bounds
        self._depth = 0
        self._nodes = 0
        self._text = 0
        # expanded size of each composed node, for the aliases that repeat it
        self._sizes: dict[int, tuple[int, int]] = {}

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
        if self.check_event(AliasEvent):
            node = super().compose_node(parent, index)
            size = self._sizes.get(id(node))
            if size is None:
                raise ComposerError(None, None, "an alias refers to its own anchor", mark)
            self._add(size, mark)
            return node
        self._depth += 1
        if self._depth > self._bounds.max_depth:
            raise ComposerError(
                None, None, f"nested deeper than {self._bounds.max_depth} levels", mark
            )
        nodes, text = self._nodes, self._text
        node = super().compose_node(parent, index)
        self._depth -= 1
        own_text = len(node.value) if isinstance(node, ScalarNode) else 0
        self._add((1, own_text), mark)
        # what this node expands to: itself and everything composed inside it
        self._sizes[id(node)] = (self._nodes - nodes, self._text - text)
        return node

    def _add(self, size: tuple[int, int], mark: yaml.Mark) -> None:
        self._nodes += size[0]
        self._text += size[1]
        if self._nodes > self._bounds.max_nodes:
            raise ComposerError(
                None,
                None,
                f"more than {self._bounds.max_nodes} values (an alias counts as a copy)",
                mark,
            )
        if self._text > self._bounds.max_text:
            raise ComposerError(
                None,
                None,
                f"more than {self._bounds.max_text} characters (an alias counts as a copy)",
                mark,
            )


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
                f"key {shorten(repr(key))} is given twice",
                key_node.start_mark,
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def shorten(text: str, limit: int = 80) -> str:
    """At most `limit` characters of `text`, for messages that quote what they refuse."""
    return text if len(text) <= limit else text[: limit - 15] + f"... ({len(text)} chars)"


def describe(error: yaml.YAMLError) -> str:
    """`not valid YAML at line L, column C: problem`, for a message that names the file."""
    mark = getattr(error, "problem_mark", None)
    at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(error, "problem", None) or str(error)
    return f"not valid YAML{at}: {shorten(problem, 200)}"


def safe_load(text: str, bounds: Bounds = CONFIG) -> Any:
    if len(text) > bounds.max_bytes:
        raise yaml.YAMLError(f"longer than {bounds.max_bytes} characters: not a config file")
    loader = _Loader(text, bounds)  # what yaml.load does, with the bounds passed on
    try:
        return loader.get_single_data()
    except ValueError as e:  # datetime/int constructors on a malformed scalar
        raise yaml.YAMLError(f"a value that cannot be read: {shorten(str(e), 200)}") from None
    except RecursionError:  # a backstop: the depth bound refuses deep nesting first
        raise yaml.YAMLError("nested too deeply") from None
    finally:
        loader.dispose()


def read_file(path: Path) -> str:
    """The file's text: at most MAX_BYTES are read (a 10 GiB file, or /dev/zero, costs no
    more than that), UTF-8 only."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise FileError(f"cannot read: {e.strerror or e}") from None
    if len(data) > MAX_BYTES:
        raise FileError(f"larger than {MAX_BYTES // 1024} KiB: not a config file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise FileError("not UTF-8 text") from None


def load_file(path: Path) -> Any:
    """Read and parse a config file; FileError or yaml.YAMLError (see describe())."""
    return safe_load(read_file(path))
