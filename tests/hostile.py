"""Hostile YAML for the config loaders' tests."""

from __future__ import annotations


def laughs(levels: int, width: int = 9) -> str:
    """The "billion laughs": each level's list holds `width` aliases of the one before
    (9 levels of 9: 387 million strings once expanded)."""
    lines = ['l0: &l0 "lol"']
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    return "\n".join(lines) + "\n"
