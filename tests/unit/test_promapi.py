"""`fleet --http.config.file` (promtool's format) and --prometheus: what is read, and a clear
error naming the file and the key for what is not."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from exporter.report.promapi import PrometheusError, check_url, load_http_config
from exporter.settings import ConfigError


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "http.yml"
    path.write_text(text)
    return path


def test_basic_auth_with_a_password_file(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("  s3cret\n")
    http = load_http_config(
        config(tmp_path, f"basic_auth:\n  username: fleet\n  password_file: {tmp_path / 'pw'}\n")
    )
    expected = base64.b64encode(b"fleet:s3cret").decode()
    assert http.authorization_header() == f"Basic {expected}"


def test_authorization_and_the_older_bearer_token(tmp_path: Path) -> None:
    http = load_http_config(config(tmp_path, "authorization:\n  credentials: abc\n"))
    assert http.authorization_header() == "Bearer abc"
    http = load_http_config(config(tmp_path, "authorization: {type: Token, credentials: abc}\n"))
    assert http.authorization_header() == "Token abc"
    http = load_http_config(config(tmp_path, "bearer_token: xyz\n"))
    assert http.authorization_header() == "Bearer xyz"
    assert load_http_config(config(tmp_path, "{}\n")).authorization_header() is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("basic_auth: {password: x}\n", "basic_auth.username: required"),
        (
            "basic_auth: {username: u, password: x}\nbearer_token: t\n",
            "at most one of basic_auth, bearer_token may be given",
        ),
        ("authorization: {type: Bearer}\n", "authorization: give one of credentials"),
        ("bearer_token_file: /nonexistent/token\n", "bearer_token_file: cannot read"),
        (
            "tls_config: {cert_file: /etc/hostname}\n",
            "tls_config: cert_file and key_file go together",
        ),
        ("tls_config: {ca_file: /nonexistent/ca.crt}\n", "tls_config.ca_file: no such file"),
        ("tls_config: {server_name: x}\n", "tls_config.server_name: unknown key"),
        ("proxy_url: http://proxy:3128\n", "proxy_url: unknown key"),
        ("basic_auth: [u, p]\n", "basic_auth: must be a mapping"),
        ("a: 1\na: 2\n", "key 'a' is given twice"),
    ],
)
def test_a_bad_http_config_names_the_file_and_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = config(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_http_config(path)
    assert str(error.value).startswith(f"{path}: ")
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("prometheus:9090", "is not an http:// or https:// URL"),
        ("ftp://prometheus", "is not an http:// or https:// URL"),
        ("http://", "is not an http:// or https:// URL"),
        ("http://prometheus:9090/?x=1", "give the base URL"),
    ],
)
def test_a_bad_prometheus_url_is_refused(url: str, message: str) -> None:
    with pytest.raises(PrometheusError, match=message):
        check_url(url)


def test_a_base_url_with_a_path_is_kept() -> None:
    assert check_url("https://gw.example/prometheus/") == "https://gw.example/prometheus"
