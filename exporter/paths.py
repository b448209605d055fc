"""Where the checks read the host: re-rootable like node_exporter's --path.* flags."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Paths:
    procfs: Path = Path("/proc")
    sysfs: Path = Path("/sys")
    rootfs: Path = Path("/")
    dev: Path = Path("/dev")

    def proc(self, *parts: str) -> Path:
        return self.procfs.joinpath(*parts)

    def sys(self, *parts: str) -> Path:
        return self.sysfs.joinpath(*parts)

    def root(self, host_path: str) -> Path:
        """A host path (as the config names it) under --path.rootfs."""
        return self.rootfs / os.path.relpath(host_path, "/")

    @property
    def sysfs_is_live(self) -> bool:
        """True when sysfs is this process's own /sys, not a fixture tree or a host mount."""
        return self.sysfs == Path("/sys")
