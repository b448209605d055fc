"""The container image's install steps and the systemd unit, proven without a Docker engine:
the wheel is built and installed into a fresh venv with the Dockerfile's own commands, then
run as an unprivileged user against a fixture node; the unit passes systemd-analyze."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tarfile
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from docker.utils.build import tar

from deploy.chart import RUN_AS, VALUES_YAML
from exporter.web import DEFAULT_PORT
from tests.helpers import FIXTURES, ROOT, answers, free_port, http_get, value, wait_until

DOCKERFILE = (ROOT / "Dockerfile").read_text()
UNIT = ROOT / "deploy" / "systemd" / "kubev-node-exporter.service"
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's 3.11: a stand-in for the slim base image


def dockerfile_run(marker: str) -> list[list[str]]:
    """The commands of the RUN instruction that contains `marker`, split at &&."""
    for instruction in re.findall(r"^RUN (.+?)(?<!\\)$", DOCKERFILE, re.M | re.S):
        text = instruction.replace("\\\n", " ")
        if marker in text:
            return [shlex.split(part) for part in text.split("&&")]
    raise AssertionError(f"no RUN with {marker!r} in the Dockerfile")


@pytest.fixture(scope="module")
def host_root() -> Iterator[Path]:
    """A directory that plays the image's (and a host's) root: /opt/kubev is the venv."""
    top = Path(tempfile.mkdtemp(prefix="kubev-image-", dir="/tmp"))
    top.chmod(0o755)
    wheels = top / "wheels"
    try:
        # stage 1, as the Dockerfile runs it (python -m pip wheel ... /wheels .)
        (build,) = dockerfile_run("pip wheel")
        assert build[:4] == ["python", "-m", "pip", "wheel"]
        build = [SYSTEM_PYTHON if a == "python" else a for a in build]
        build = [str(wheels) if a == "/wheels" else a for a in build]
        subprocess.run(build, cwd=ROOT, check=True, capture_output=True)
        # stage 2: the venv at /opt/kubev
        steps = dockerfile_run("python -m venv")
        for step in steps:
            step = [SYSTEM_PYTHON if a == "python" else a for a in step]
            step = [a.replace("/opt/kubev", str(top / "opt" / "kubev")) for a in step]
            step = [
                str(p)
                for a in step
                for p in (sorted(wheels.glob("*.whl")) if a == "/wheels/*.whl" else [a])
            ]
            subprocess.run(step, check=True, capture_output=True)
        yield top
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_dockerfile_facts() -> None:
    assert f"EXPOSE {DEFAULT_PORT}" in DOCKERFILE
    # the image's user is the chart's (a uid of its own, not root, not nobody)
    assert re.search(rf"^USER {RUN_AS}:{RUN_AS}$", DOCKERFILE, re.M)
    assert "HEALTHCHECK" in DOCKERFILE and "/-/healthy" in DOCKERFILE
    assert DOCKERFILE.count("FROM ") == 3  # build, venv, runtime
    assert "org.opencontainers.image.version" in DOCKERFILE


def test_the_version_is_written_once() -> None:
    """pyproject.toml holds the version; the image takes it as a build argument (make
    image) and refuses to build without one, so no copy can drift."""
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert version not in DOCKERFILE
    assert re.search(r"^ARG VERSION$", DOCKERFILE, re.M)
    (guard,) = [line for line in DOCKERFILE.splitlines() if "test -n" in line]
    empty = subprocess.run(["sh", "-c", guard.removeprefix("RUN ").replace("${VERSION}", "")])
    assert empty.returncode != 0
    assert "--build-arg VERSION=$(VERSION)" in (ROOT / "Makefile").read_text()
    made = subprocess.run(
        ["make", "-s", "version"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert made.stdout.strip() == version


@pytest.mark.slow
def test_final_venv_has_no_build_tools(host_root: Path) -> None:
    bin_dir = host_root / "opt" / "kubev" / "bin"
    assert (bin_dir / "kubev-node-exporter").exists()
    assert not (bin_dir / "pip").exists()
    assert not list((host_root / "opt" / "kubev").rglob("setuptools/__init__.py"))


@pytest.mark.root
@pytest.mark.slow
def test_installed_console_script_runs_unprivileged(host_root: Path) -> None:
    tree = host_root / "node"
    shutil.copytree(FIXTURES / "compliant", tree)
    for path in [tree, *tree.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    (tree / "dev").mkdir()
    os.mknod(tree / "dev" / "kvm", 0o600 | 0o020000, os.makedev(10, 232))  # root's, 0600
    port = free_port()
    cmd = [
        str(host_root / "opt" / "kubev" / "bin" / "kubev-node-exporter"),
        f"--web.listen-address=127.0.0.1:{port}",
        f"--path.procfs={tree}/proc",
        f"--path.sysfs={tree}/sys",
        f"--path.rootfs={tree}/root",
        f"--path.dev={tree}/dev",
        "--no-collector.dns",
        "--no-collector.ports",
        "--no-collector.ovn",
    ]
    proc = subprocess.Popen(
        ["setpriv", f"--reuid={RUN_AS}", f"--regid={RUN_AS}", "--clear-groups", *cmd],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd="/",
    )
    try:

        def ready() -> bool:
            assert proc.poll() is None, f"exited {proc.returncode}"
            return answers(f"http://127.0.0.1:{port}/-/ready")

        wait_until(ready, "the installed exporter ready")
        uid = re.search(r"^Uid:\s+(\d+)", Path(f"/proc/{proc.pid}/status").read_text(), re.M)
        assert uid and int(uid.group(1)) == RUN_AS
        text = http_get(f"http://127.0.0.1:{port}/metrics").text
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert value(text, "kubev_cpu_logical_cores") == 32
    assert value(text, "kubev_kvm_device_present") == 1
    assert value(text, "kubev_kvm_usable") == 0  # its user may not open root's 0600 /dev/kvm
    assert "Permission denied" in err
    assert proc.returncode == 0


@pytest.mark.root
@pytest.mark.slow
def test_systemd_unit_verifies(host_root: Path) -> None:
    systemd = host_root / "usr" / "lib" / "systemd"
    systemd.mkdir(parents=True, exist_ok=True)
    shutil.copytree("/lib/systemd/system", systemd / "system", dirs_exist_ok=True, symlinks=True)
    shutil.copy(UNIT, systemd / "system" / UNIT.name)
    done = subprocess.run(
        ["systemd-analyze", "verify", f"--root={host_root}", UNIT.name],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and done.stdout + done.stderr == "", done.stdout + done.stderr
    security = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", f"--root={host_root}", UNIT.name],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    exposure = re.search(r"Overall exposure level for \S+: ([\d.]+)", security)
    assert exposure and float(exposure.group(1)) <= 2.5, security[-500:]


def test_the_units_memory_limit_is_the_pods() -> None:
    """One measured limit (docs/performance.md) for both ways to run the exporter."""
    (line,) = [x for x in UNIT.read_text().splitlines() if x.startswith("MemoryMax=")]
    unit = re.fullmatch(r"MemoryMax=(\d+)M", line)
    values = yaml.safe_load(VALUES_YAML)
    pod = re.fullmatch(r"(\d+)Mi", values["resources"]["limits"]["memory"])
    assert unit and pod and int(unit[1]) == int(pod[1])  # systemd's M is 1024-based


def test_a_typo_in_the_unit_is_caught(tmp_path: Path) -> None:
    broken = tmp_path / "broken.service"
    broken.write_text(UNIT.read_text().replace("ProtectSystem=", "ProtectSystm="))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(broken)], capture_output=True, text=True, check=False
    )
    assert "ProtectSystm" in done.stdout + done.stderr


def test_only_what_the_build_copies_enters_the_docker_context(tmp_path: Path) -> None:
    """The build context (.dockerignore applied as docker does, by docker-py's own
    implementation) holds what the Dockerfile COPYs, and nothing else: not the venv, the
    tests, bytecode, test artifacts or a stray file next to them."""
    context = tmp_path / "context"
    # the checkout as it is (not its history, not the venv: strays below stand for them)
    shutil.copytree(
        ROOT, context, ignore=shutil.ignore_patterns(".git", ".venv", "*_cache", "__pycache__")
    )
    strays = [
        ".venv/bin/python",
        "exporter/__pycache__/cli.cpython-311.pyc",
        "exporter/checks/__pycache__/kvm.cpython-311.pyc",
        "test-artifacts/report.png",
        "node-secrets.env",
    ]
    for stray in strays:
        (context / stray).parent.mkdir(parents=True, exist_ok=True)
        (context / stray).write_text("not for the image\n")
    # the patterns as docker-py reads .dockerignore (docker/api/build.py)
    patterns = [
        line.strip()
        for line in (context / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    with tempfile.TemporaryFile() as archive:
        tar(context, exclude=patterns, fileobj=archive)
        archive.seek(0)
        with tarfile.open(fileobj=archive) as tf:
            sent = {m.name for m in tf.getmembers() if m.isfile()}
    copied = {"pyproject.toml", "README.md"} | {
        str(path.relative_to(context))
        for path in (context / "exporter").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    # docker reads the Dockerfile and .dockerignore themselves, whatever they exclude
    assert sent == copied | {"Dockerfile", ".dockerignore"}
    copies = re.findall(r"^COPY (?!--from)(.+) \S+$", DOCKERFILE, re.M)
    assert {source for line in copies for source in line.split()} == {
        "pyproject.toml",
        "README.md",
        "exporter",
    }
