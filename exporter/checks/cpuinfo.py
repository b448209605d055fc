"""/proc/cpuinfo, parsed once into what the kvm and compute checks need."""

from __future__ import annotations

from dataclasses import dataclass

from exporter.model import CheckError


@dataclass(frozen=True)
class CpuInfo:
    logical: int
    #: distinct (physical id, core id) pairs; None when cpuinfo does not say
    physical: int | None
    #: None when cpuinfo has no flags line (truncated, or an architecture without one)
    flags: frozenset[str] | None


def parse_cpuinfo(text: str, where: str) -> CpuInfo:
    logical = 0
    cores: set[tuple[str, str]] = set()
    flags: frozenset[str] | None = None
    package = core = None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "processor":
            logical += 1
            package = core = None
        elif key == "physical id":
            package = value
        elif key == "core id":
            core = value
        elif key == "flags" and flags is None:
            flags = frozenset(value.split())
        if package is not None and core is not None:
            cores.add((package, core))
    if logical == 0:
        raise CheckError(f"{where}: no processor entries")
    return CpuInfo(
        logical=logical,
        physical=len(cores) or None,
        flags=flags,
    )
