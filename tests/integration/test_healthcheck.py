"""`kubev-node-exporter healthcheck` (the image's HEALTHCHECK) against a real exporter: it
follows the listen address and the web config (TLS, basic auth, mTLS) from flags or from
the environment, and fails when nothing answers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import bcrypt
import pytest

from tests.helpers import (
    ONLY_COMPUTE,
    ROOT,
    Exporter,
    NodeTree,
    fixture_args,
    free_port,
    running,
    wait_until,
)


def healthcheck(
    *args: str, env: dict[str, str] | None = None, module: bool = True
) -> subprocess.CompletedProcess[str]:
    command = ["-m", "exporter.healthcheck"] if module else ["-m", "exporter", "healthcheck"]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KUBEV_WEB_")}
    return subprocess.run(
        [sys.executable, *command, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        env={**clean, **(env or {})},
        check=False,
    )


def test_plain_http_by_flag_and_by_environment(node_tree: NodeTree) -> None:
    with running([*fixture_args(node_tree("undersized")), *ONLY_COMPUTE]) as exporter:
        address = f"127.0.0.1:{exporter.port}"
        assert healthcheck(f"--web.listen-address={address}").returncode == 0
        assert healthcheck("--web.listen-address", address, module=False).returncode == 0
        assert healthcheck(env={"KUBEV_WEB_LISTEN_ADDRESS": address}).returncode == 0


def test_nothing_listening_is_unhealthy() -> None:
    done = healthcheck(f"--web.listen-address=127.0.0.1:{free_port()}")
    assert done.returncode == 1
    assert done.stderr.startswith("kubev-node-exporter healthcheck: unhealthy: 127.0.0.1:")


@pytest.mark.parametrize("client_auth", [None, "RequireAndVerifyClientCert"])
def test_tls_with_basic_auth(
    tmp_path: Path, node_tree: NodeTree, pki: Path, client_auth: str | None
) -> None:
    """Over TLS, with basic auth on (the probe path needs none) and with mTLS (the server's
    refusal of a client without a certificate is an answer)."""
    hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=4)).decode()
    config = tmp_path / "web.yml"
    lines = [
        "tls_server_config:",
        f"  cert_file: {pki / 'server.crt'}",
        f"  key_file: {pki / 'server.key'}",
    ]
    if client_auth:
        lines += [f"  client_auth_type: {client_auth}", f"  client_ca_file: {pki / 'ca.crt'}"]
    config.write_text("\n".join([*lines, "basic_auth_users:", f"  prometheus: '{hashed}'"]))
    exporter = Exporter(
        [
            *fixture_args(node_tree("undersized")),
            *ONLY_COMPUTE,
            f"--web.config.file={config}",
        ]
    )
    try:
        exporter.wait_listening()
        address = f"127.0.0.1:{exporter.port}"
        done = healthcheck(f"--web.listen-address={address}", f"--web.config.file={config}")
        assert done.returncode == 0, done.stderr
        env = {"KUBEV_WEB_LISTEN_ADDRESS": address, "KUBEV_WEB_CONFIG_FILE": str(config)}
        assert healthcheck(env=env).returncode == 0
        # without the web config it speaks plain HTTP to a TLS port: not healthy
        assert healthcheck(f"--web.listen-address={address}").returncode == 1
    finally:
        exporter.stop()


def test_serve_reads_the_environment_too(node_tree: NodeTree) -> None:
    """serve takes its listen address from KUBEV_WEB_LISTEN_ADDRESS when no flag says."""
    port = free_port()
    env = {**os.environ, "KUBEV_WEB_LISTEN_ADDRESS": f"127.0.0.1:{port}", "NODE_IP": "127.0.0.1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "exporter",
            *fixture_args(node_tree("undersized")),
            *ONLY_COMPUTE,
            "--no-collector.dns",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:

        def healthy() -> bool:
            assert proc.poll() is None, "serve exited"
            probe = healthcheck(env={"KUBEV_WEB_LISTEN_ADDRESS": f"127.0.0.1:{port}"})
            return probe.returncode == 0

        wait_until(healthy, "healthcheck passing")
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert f"listen=http://127.0.0.1:{port}" in err.decode()
