"""What a compromised exporter would try, run inside the simulated container with the
pod's identity (tests/deploy/podsim.py): read the node's secrets, write kubelet's state
or anything else under the host mounts, reach a runtime or kubelet socket. Prints what
worked, as JSON.

    python -m tests.deploy.attacker MARKER [PATH...]

MARKER is the text the planted secrets contain; PATHs are files to try to overwrite.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import socket
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

HOST = Path("/host")
#: huge and never where a planted file is; their submounts are tried as mounts below
SKIP = (HOST / "proc", HOST / "sys")
PROBE_NAME = "kubev-attacker-was-here"


def files(top: Path) -> Iterator[Path]:
    for directory, dirs, names in os.walk(top, onerror=lambda e: None):
        here = Path(directory)
        dirs[:] = [d for d in dirs if here / d not in SKIP]
        for name in names:
            yield here / name


def mount_options() -> dict[str, str]:
    """Each mount under /host and its per-mount options (mountinfo's sixth field)."""
    found = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        point = Path(fields[4].replace("\\040", " "))
        if point == HOST or HOST in point.parents:
            found[str(point)] = fields[5]
    return found


def mount_points() -> list[Path]:
    return [Path(p) for p in mount_options()]


def secrets_read(marker: str) -> list[str]:
    found = []
    for path in files(HOST):
        with contextlib.suppress(OSError):
            st = path.lstat()
            # a planted secret is small; kernel modules and the like are not read
            small = stat.S_ISREG(st.st_mode) and st.st_size < 65536
            if small and marker in path.read_text(errors="replace"):
                found.append(str(path))
    # the host's root through its procfs: another process's root directory
    for path in (HOST / "proc/1/root/etc/shadow", HOST / "proc/1/environ"):
        with contextlib.suppress(OSError):
            path.read_bytes()
            found.append(str(path))
    return found


def writable() -> list[str]:
    """Every mount under /host, and every directory of them, in which a file could be
    created (removed again at once)."""
    written = []
    for point in mount_points():
        if point in SKIP:
            continue
        below = (p for p in point.rglob("*") if _is_dir(p))
        for directory in [point, *itertools.islice(below, 200)]:
            target = directory / PROBE_NAME
            try:
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except OSError:
                continue
            os.close(fd)
            os.unlink(target)
            written.append(str(directory))
    return sorted(set(written))


def _is_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(path.lstat().st_mode)
    except OSError:
        return False


def overwritten(paths: list[str]) -> list[str]:
    done = []
    for path in paths:
        try:
            with open(path, "a") as f:
                f.write("# attacker\n")
            done.append(path)
        except OSError:
            pass
    return done


def sockets() -> tuple[list[str], list[str]]:
    seen, connected = [], []
    for path in files(HOST):
        if not _is_socket(path):
            continue
        seen.append(str(path))
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(1)
            try:
                s.connect(str(path))
                connected.append(str(path))
            except OSError:
                pass
    return seen, connected


def _is_socket(path: Path) -> bool:
    try:
        return stat.S_ISSOCK(path.lstat().st_mode)
    except OSError:
        return False


def main(argv: list[str]) -> None:
    marker, targets = argv[0], argv[1:]
    seen, connected = sockets()
    print(
        json.dumps(
            {
                "uid": os.getuid(),
                "secrets_read": secrets_read(marker),
                "overwritten": overwritten(targets),
                "writable": writable(),
                "sockets_seen": seen,
                "sockets_connected": connected,
                "mounts": mount_options(),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
