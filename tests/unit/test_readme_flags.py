"""The README's flags table and the command line agree: every flag `serve` and `check`
take is in the table, and every flag in the table is one they take."""

from __future__ import annotations

import argparse
import re

from exporter import cli
from tools.docs import README


def parser_flags() -> set[str]:
    parser = cli.build_parser()
    flags = {"--version"}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name in ("serve", "check"):
                for sub_action in action.choices[name]._actions:
                    flags.update(o for o in sub_action.option_strings if o.startswith("--"))
    flags.discard("--help")
    return flags


def readme_flags() -> set[str]:
    section = README.read_text().split("\n## Flags\n", 1)[1].split("\n## ", 1)[0]
    flags: set[str] = set()
    for line in section.splitlines():
        cell = re.match(r"^\| (.*?) \| ", line)
        if cell is None or not cell.group(1).startswith("`--"):
            continue
        text = cell.group(1)
        if text.startswith("`--[no-]collector."):
            first = text.removeprefix("`--[no-]collector.").split("`")[0]
            for name in [first, *re.findall(r"`\.(\w+)`", text)]:
                flags |= {f"--collector.{name}", f"--no-collector.{name}"}
        else:
            flags.add(re.match(r"`(--[\w.-]+)", text).group(1))  # type: ignore[union-attr]
    return flags


def test_the_flags_table_matches_the_command_line() -> None:
    documented, taken = readme_flags(), parser_flags()
    assert "--web.max-connections" in documented  # the parse found the table
    assert documented - taken == set(), "in the README, not taken"
    assert taken - documented == set(), "taken, not in the README"


def test_the_commands_line_names_every_command() -> None:
    usage = re.search(r"`kubev-node-exporter \[([a-z|]+)\] \[flags\]`", README.read_text())
    assert usage is not None
    assert usage.group(1).split("|") == list(cli.COMMANDS)
