"""Test certificates by openssl: two CAs, a server certificate for 127.0.0.1 and a client
certificate from each CA (the second CA is for rotating client_ca_file)."""

from __future__ import annotations

import subprocess
from pathlib import Path

EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _ca(d: Path, name: str) -> None:
    openssl(
        "req", "-x509", *EC, "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.crt"),
        "-days", "2", "-subj", f"/CN=kubev-test-{name}",
    )  # fmt: skip


def _signed(d: Path, name: str, ca: str, ext: str) -> None:
    openssl(
        "req", *EC, "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.csr"),
        "-subj", f"/CN={name}",
    )  # fmt: skip
    (d / f"{name}.ext").write_text(ext + "\n")
    openssl(
        "x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / f"{ca}.crt"),
        "-CAkey", str(d / f"{ca}.key"), "-CAcreateserial", "-out", str(d / f"{name}.crt"),
        "-days", "2", "-extfile", str(d / f"{name}.ext"),
    )  # fmt: skip


def make_pki(d: Path) -> Path:
    """ca, server (for IP 127.0.0.1) and client from ca; ca2 and client2 from ca2."""
    _ca(d, "ca")
    _ca(d, "ca2")
    _signed(d, "server", "ca", "subjectAltName=IP:127.0.0.1")
    _signed(d, "client", "ca", "extendedKeyUsage=clientAuth")
    _signed(d, "client2", "ca2", "extendedKeyUsage=clientAuth")
    return d
