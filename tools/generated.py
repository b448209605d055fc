"""Files made by `make generate`, written or checked the same way by every generator.

python -m <generator> write    # part of make generate
python -m <generator> check    # fails, naming each stale file, when a copy differs
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def sync(
    files: Mapping[Path, str], argv: Sequence[str], what: str, owned: Iterable[Path] = ()
) -> int:
    """Write `files` or check them (the default); `owned` are files of a generated
    directory: those no longer generated are removed on write and stale on check."""
    mode = argv[0] if argv else "check"
    if mode not in ("write", "check"):
        print(f"usage: write | check (got {mode!r})", file=sys.stderr)
        return 2
    orphans = [path for path in owned if path not in files]
    if mode == "write":
        for path, text in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        for path in orphans:
            path.unlink()
        for directory in {path.parent for path in orphans}:
            if directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()  # an overlay no longer generated leaves no empty folder
        return 0
    stale = [
        path
        for path, text in files.items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]
    if stale or orphans:
        names = ", ".join(_shown(p) for p in [*stale, *orphans])
        print(f"stale {what} (run `make generate`): {names}", file=sys.stderr)
        return 1
    return 0


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
