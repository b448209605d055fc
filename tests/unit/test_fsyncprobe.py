"""The fsync probe writes only in a directory of its own and never through a planted name.

As root (the DaemonSet's user) the old probe opened <path>/.kubev-node-exporter-fsync-probe
with O_CREAT | O_TRUNC and followed a symlink planted there: it overwrote a file outside
the storage path. These tests plant such links and check the files outside keep their
content, and that the probe says why it did not run.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from exporter.checks.fsyncprobe import (
    NAMED_PREFIX,
    PROBE_BYTES,
    PROBE_DIR,
    ProbeRefused,
    fsync_probe,
)
from exporter.config import Config
from tests.checkrun import make, observed, run, values
from tests.helpers import make_node_tree

#: the fixed name the old probe wrote through
OLD_PROBE_FILE = ".kubev-node-exporter-fsync-probe"
SECRET = "root:$6$not-to-be-touched:19000:0:99999:7:::\n"


def later() -> float:
    return time.monotonic() + 60


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    path = tmp_path / "storage"
    path.mkdir()
    return path


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file outside the storage path, as /etc/shadow would be."""
    target = tmp_path / "elsewhere" / "shadow"
    target.parent.mkdir()
    target.write_text(SECRET)
    return target


@pytest.mark.parametrize("tmpfile", [True, False], ids=["O_TMPFILE", "named"])
def test_probe_leaves_the_path_as_it_found_it(storage: Path, tmpfile: bool) -> None:
    (storage / "pods").mkdir()
    latencies = fsync_probe(str(storage), 5, later(), tmpfile=tmpfile)
    assert len(latencies) == 5 and all(s > 0 for s in latencies)
    assert os.listdir(storage) == ["pods"]


@pytest.mark.root
def test_a_symlink_at_the_old_name_is_never_followed(storage: Path, outside: Path) -> None:
    (storage / OLD_PROBE_FILE).symlink_to(outside)
    out = run(make("disk", config=Config().with_check("disk", storage_paths=(str(storage),))))
    assert outside.read_text() == SECRET
    assert values(out)[("kubev_storage_probe_success", (str(storage),))] == 1
    assert observed(out)["disk_latency"] is not None
    assert (storage / OLD_PROBE_FILE).is_symlink()  # not ours to remove either


@pytest.mark.root
@pytest.mark.parametrize("points_at", ["file", "directory"])
def test_a_symlink_as_the_probe_directory_stops_the_probe(
    storage: Path, outside: Path, points_at: str
) -> None:
    target = outside if points_at == "file" else outside.parent
    (storage / PROBE_DIR).symlink_to(target)
    listing = sorted(os.listdir(outside.parent))
    out = run(make("disk", config=Config().with_check("disk", storage_paths=(str(storage),))))
    assert outside.read_text() == SECRET
    assert sorted(os.listdir(outside.parent)) == listing  # nothing written beside it
    assert values(out)[("kubev_storage_probe_success", (str(storage),))] == 0
    assert observed(out)["disk_latency"] is None
    assert (
        f"storage path {storage}: fsync probe failed: {PROBE_DIR} is a symlink or not a "
        "directory: refusing to write through it"
    ) in [n.text for n in out.notes]
    assert (storage / PROBE_DIR).is_symlink()


@pytest.mark.root
@pytest.mark.parametrize("tmpfile", [True, False], ids=["O_TMPFILE", "named"])
def test_a_probe_directory_of_another_user_is_refused(
    storage: Path, outside: Path, tmpfile: bool
) -> None:
    """Someone who could create the directory first could swap names inside it."""
    own = storage / PROBE_DIR
    own.mkdir(mode=0o700)
    os.chown(own, 65534, 65534)
    with pytest.raises(ProbeRefused, match="belongs to uid 65534"):
        fsync_probe(str(storage), 3, later(), tmpfile=tmpfile)
    assert own.is_dir() and os.listdir(own) == []  # not removed: it is not ours
    own.chmod(0o777)
    os.chown(own, os.geteuid(), os.getegid())
    with pytest.raises(ProbeRefused, match="others may write to it"):
        fsync_probe(str(storage), 3, later(), tmpfile=tmpfile)
    assert outside.read_text() == SECRET


def test_a_file_a_crashed_probe_left_is_removed(storage: Path) -> None:
    own = storage / PROBE_DIR
    own.mkdir(mode=0o700)
    (own / f"{NAMED_PREFIX}0123456789abcdef").write_bytes(b"\0" * PROBE_BYTES)
    fsync_probe(str(storage), 1, later(), tmpfile=False)
    assert os.listdir(storage) == []


@pytest.mark.root
def test_a_read_only_path_fails_the_probe_with_the_reason(tmp_path: Path) -> None:
    """A read-only mount (the DaemonSet mounts the host's / read-only) takes no directory."""
    storage = tmp_path / "ro"
    storage.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(storage)], check=True)
    try:
        out = run(make("disk", config=Config().with_check("disk", storage_paths=(str(storage),))))
    finally:
        subprocess.run(["umount", str(storage)], check=True)
    assert values(out)[("kubev_storage_probe_success", (str(storage),))] == 0
    assert values(out)[("kubev_filesystem_size_bytes", (str(storage),))] == 1024 * 1024
    assert (
        f"storage path {storage}: fsync probe failed: cannot create {PROBE_DIR}: "
        "Read-only file system" in [n.text for n in out.notes]
    )


def test_a_slow_disk_yields_fewer_samples_not_none(storage: Path) -> None:
    """No sample starts after the deadline, but the first always runs."""
    assert len(fsync_probe(str(storage), 50, time.monotonic() - 1)) == 1


def test_the_probe_directory_is_refused_when_it_is_a_file(storage: Path) -> None:
    (storage / PROBE_DIR).write_text("not a directory\n")
    with pytest.raises(ProbeRefused, match="not a directory"):
        fsync_probe(str(storage), 1, later())
    assert (storage / PROBE_DIR).read_text() == "not a directory\n"


def test_fixture_tree_probe(tmp_path: Path) -> None:
    """Through the check on a fixture node: the storage path under --path.rootfs."""
    tree = make_node_tree("compliant", tmp_path, kvm_device=False)
    out = run(make("disk", tree))
    assert values(out)[("kubev_storage_probe_success", ("/var/lib/kubelet",))] == 1
    assert not (tree / "root" / "var" / "lib" / "kubelet" / PROBE_DIR).exists()
