"""The active storage probe: how long a small synchronous write takes in a storage path.

The probe runs as whatever user the exporter runs as (root in the DaemonSet) in
directories other software writes to, so it must never write through a name someone else
could have planted there. It writes only in a directory of its own, <path>/PROBE_DIR,
which it creates (mode 0700), opens without following a symlink and checks is its own;
in there it writes an unnamed file (O_TMPFILE) or, where the filesystem has none, a file
of a fresh random name created exclusively (O_EXCL | O_NOFOLLOW). It never opens a name
outside that directory for writing.

The directory is removed after every probe: in etcd's data directory a stray entry makes
etcd warn at each start ("found invalid file under data directory", etcd-io/etcd
server/etcdmain/etcd.go identifyDataDirOrDie), and kubeadm's preflight refuses a data
directory that is not empty (kubernetes/kubernetes cmd/kubeadm/app/preflight/checks.go:
DirAvailableCheck{Path: cfg.Etcd.Local.DataDir}).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import time

PROBE_DIR = ".kubev-node-exporter"
PROBE_BYTES = 4096
#: named files (filesystems without O_TMPFILE) start so; a crash may leave one behind,
#: removed by the next probe
NAMED_PREFIX = "fsync-"
#: what open(O_TMPFILE) fails with where the filesystem (or kernel) has no O_TMPFILE
_NO_TMPFILE = frozenset({errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL})


class ProbeRefused(Exception):
    """The probe will not write here; the message says why."""


def fsync_probe(directory: str, samples: int, deadline: float, tmpfile: bool = True) -> list[float]:
    """Write and fsync PROBE_BYTES up to `samples` times (at least once; no new sample
    starts after the time.monotonic() `deadline`); seconds per sample. Raises OSError when
    the directory cannot be used, ProbeRefused when it must not be."""
    base = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        own = _own_directory(base)
        try:
            return _sample(own, samples, deadline, tmpfile)
        finally:
            _clear(own)
            os.close(own)
            with contextlib.suppress(OSError):
                os.rmdir(PROBE_DIR, dir_fd=base)
    finally:
        os.close(base)


def _own_directory(base: int) -> int:
    try:
        os.mkdir(PROBE_DIR, 0o700, dir_fd=base)
    except FileExistsError:
        pass
    except OSError as e:
        raise ProbeRefused(f"cannot create {PROBE_DIR}: {e.strerror or e}") from None
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(PROBE_DIR, flags, dir_fd=base)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise ProbeRefused(
                f"{PROBE_DIR} is a symlink or not a directory: refusing to write through it"
            ) from None
        raise
    st = os.fstat(fd)
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        os.close(fd)
        raise ProbeRefused(
            f"{PROBE_DIR} belongs to uid {st.st_uid} (not {os.geteuid()}) or others may "
            f"write to it (mode {st.st_mode & 0o777:o}): refusing to use it"
        )
    return fd


def _sample(own: int, samples: int, deadline: float, tmpfile: bool) -> list[float]:
    fd, name = _open_file(own, tmpfile)
    payload = b"\0" * PROBE_BYTES
    latencies: list[float] = []
    try:
        for i in range(samples):
            if i and time.monotonic() > deadline:
                break
            start = time.perf_counter()
            os.pwrite(fd, payload, 0)
            os.fsync(fd)
            latencies.append(time.perf_counter() - start)
    finally:
        os.close(fd)
        if name is not None:
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=own)
    return latencies


def _open_file(own: int, tmpfile: bool) -> tuple[int, str | None]:
    """An unnamed file in the directory, else a new one of a random name (never a name
    that exists: O_EXCL also refuses a symlink, dangling or not)."""
    if tmpfile:
        try:
            flags = os.O_WRONLY | os.O_TMPFILE | os.O_CLOEXEC
            return os.open(".", flags, 0o600, dir_fd=own), None
        except OSError as e:
            if e.errno not in _NO_TMPFILE:
                raise
    name = f"{NAMED_PREFIX}{secrets.token_hex(8)}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    return os.open(name, flags, 0o600, dir_fd=own), name


def _clear(own: int) -> None:
    """Files a crashed probe left behind (unlink removes a name, never what it points to)."""
    with contextlib.suppress(OSError):
        for entry in os.listdir(own):
            if entry.startswith(NAMED_PREFIX):
                with contextlib.suppress(OSError):
                    os.unlink(entry, dir_fd=own)
