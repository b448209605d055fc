"""Bounded, explicit reads of /proc and /sys files.

Every read has a size cap (a garbled or huge file must not eat memory) and every error
becomes a CheckError that names the file, so a broken file fails one check with a reason.
"""

from __future__ import annotations

import errno
from pathlib import Path

from exporter.model import CheckError

#: No procfs or sysfs file the checks read is near this; larger means garbage.
MAX_FILE_BYTES = 4 * 1024 * 1024


def read_text(path: Path, limit: int = MAX_FILE_BYTES, errors: str = "replace") -> str:
    """The file's text; bytes that are not UTF-8 become U+FFFD, or with
    errors="surrogateescape" the escapes os.listdir uses (to match names read there)."""
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise CheckError(f"{path}: file not found") from None
    except PermissionError:
        raise CheckError(f"{path}: permission denied") from None
    except OSError as e:
        raise CheckError(f"{path}: {e.strerror or e}") from None
    if len(data) > limit:
        raise CheckError(f"{path}: larger than {limit} bytes, refusing to parse")
    return data.decode("utf-8", errors=errors)


def read_optional(path: Path, limit: int = 4096) -> str | None:
    """A small attribute file that may be absent or refuse reads (EINVAL): None then."""
    return read_attr_errno(path, limit)[0]


def read_attr_errno(path: Path, limit: int = 4096) -> tuple[str | None, str | None]:
    """Read a sysfs attribute; return (value, None) or (None, reason)."""
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        name = errno.errorcode.get(e.errno or 0, "error")
        return None, f"{path}: {name} ({e.strerror})"
    if len(data) > limit:
        return None, f"{path}: larger than {limit} bytes"
    return data.decode("utf-8", errors="replace").strip(), None
