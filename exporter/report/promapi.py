"""A small client of Prometheus' HTTP API for the `fleet` command: instant queries and the
list of loaded rules. Every request shares one deadline, every answer a size cap; a
redirect is refused (it would carry the credentials elsewhere); each failure is one
PrometheusError whose message says what went wrong and where.

Reaching a protected Prometheus takes promtool's --http.config.file format (Prometheus'
HTTP client configuration), of which this reads:

    basic_auth: {username: u, password: p}         # or password_file
    authorization: {type: Bearer, credentials: t}  # or credentials_file
    bearer_token_file: /path                       # the older form; or bearer_token
    tls_config: {ca_file: ca.crt, cert_file: c.crt, key_file: c.key, insecure_skip_verify: false}
"""

from __future__ import annotations

import base64
import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from exporter import yamlload
from exporter.settings import ConfigError, parse_bool, parse_section, setting, shown

#: the largest answer read: a fleet of thousands of nodes answers each query in a few MiB
MAX_RESPONSE_BYTES = 32 * 1024 * 1024


class PrometheusError(Exception):
    """Prometheus could not be asked, or did not answer as its API does."""


# --- --http.config.file ------------------------------------------------------------------


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: must be a non-empty string, got {shown(value)}")
    return value


def _optional_text(value: object, where: str) -> str | None:
    return None if value is None else _text(value, where)


def _secret_file(value: object, where: str) -> str | None:
    """A file holding a secret: read now, so a missing file is a usage error before any
    request; the field then holds the secret (surrounding whitespace trimmed, as
    Prometheus does)."""
    path = _optional_text(value, where)
    if path is None:
        return None
    try:
        secret = Path(path).read_text(encoding="utf-8").strip()
    except OSError as e:
        raise ConfigError(f"{where}: cannot read {path}: {e.strerror or e}") from None
    if not secret:
        raise ConfigError(f"{where}: {path} is empty")
    return secret


def _readable(value: object, where: str) -> str | None:
    path = _optional_text(value, where)
    if path is not None and not Path(path).is_file():
        raise ConfigError(f"{where}: no such file: {path}")
    return path


@dataclass(frozen=True)
class BasicAuth:
    username: str = setting("", parse=_text, doc="user name")
    password: str | None = setting(None, parse=_optional_text, doc="password")
    password_file: str | None = setting(None, parse=_secret_file, doc="file with the password")


@dataclass(frozen=True)
class Authorization:
    type: str = setting("Bearer", parse=_text, doc="the scheme of the Authorization header")
    credentials: str | None = setting(None, parse=_optional_text, doc="the credentials")
    credentials_file: str | None = setting(
        None, parse=_secret_file, doc="file with the credentials"
    )


@dataclass(frozen=True)
class ClientTLS:
    ca_file: str | None = setting(
        None, parse=_readable, doc="CA that signs Prometheus' certificate"
    )
    cert_file: str | None = setting(None, parse=_readable, doc="client certificate (mTLS)")
    key_file: str | None = setting(None, parse=_readable, doc="its private key")
    insecure_skip_verify: bool = setting(False, parse=parse_bool, doc="no certificate check")


def _basic_auth(value: object, where: str) -> BasicAuth:
    auth = parse_section(BasicAuth, value, where, BasicAuth())
    if not auth.username:
        raise ConfigError(f"{where}.username: required")
    if auth.password is not None and auth.password_file is not None:
        raise ConfigError(f"{where}: password and password_file are mutually exclusive")
    return auth


def _authorization(value: object, where: str) -> Authorization:
    auth = parse_section(Authorization, value, where, Authorization())
    if (auth.credentials is None) == (auth.credentials_file is None):
        raise ConfigError(f"{where}: give one of credentials and credentials_file")
    return auth


def _tls(value: object, where: str) -> ClientTLS:
    tls = parse_section(ClientTLS, value, where, ClientTLS())
    if (tls.cert_file is None) != (tls.key_file is None):
        raise ConfigError(f"{where}: cert_file and key_file go together")
    return tls


@dataclass(frozen=True)
class HttpConfig:
    basic_auth: BasicAuth | None = setting(None, parse=_basic_auth, doc="HTTP basic auth")
    authorization: Authorization | None = setting(
        None, parse=_authorization, doc="the Authorization header"
    )
    bearer_token: str | None = setting(None, parse=_optional_text, doc="a bearer token")
    bearer_token_file: str | None = setting(
        None, parse=_secret_file, doc="file with a bearer token"
    )
    tls_config: ClientTLS = setting(default_factory=ClientTLS, parse=_tls, doc="TLS")

    def authorization_header(self) -> str | None:
        if self.basic_auth is not None:
            password = self.basic_auth.password_file or self.basic_auth.password or ""
            pair = f"{self.basic_auth.username}:{password}".encode()
            return "Basic " + base64.b64encode(pair).decode()
        if self.authorization is not None:
            secret = self.authorization.credentials_file or self.authorization.credentials
            return f"{self.authorization.type} {secret}"
        token = self.bearer_token_file or self.bearer_token
        return f"Bearer {token}" if token else None


def load_http_config(path: Path) -> HttpConfig:
    """The file, or a ConfigError naming it and the key."""
    try:
        data = yamlload.load_file(path)  # bounded in size, depth and alias expansion
    except yamlload.FileError as e:
        raise ConfigError(f"{path}: {e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: {yamlload.describe(e)}") from None
    try:
        config = parse_section(HttpConfig, data, "", HttpConfig())
        given = [
            name
            for name in ("basic_auth", "authorization", "bearer_token", "bearer_token_file")
            if getattr(config, name) is not None
        ]
        if len(given) > 1:
            raise ConfigError(f"at most one of {', '.join(given)} may be given")
        return config
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


# --- the client ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One element of an instant vector."""

    labels: dict[str, str]
    value: float


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(
        self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> None:
        raise PrometheusError(
            f"{req.full_url} answered with a redirect (HTTP {code}) to {newurl}: give that "
            "address (credentials are not sent on)"
        )


def check_url(url: str) -> str:
    """The base URL without a trailing slash; a UsageError-worthy PrometheusError if it is
    not http(s)://host[:port][/path]."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PrometheusError(f"--prometheus: {url!r} is not an http:// or https:// URL")
    if parts.query or parts.fragment:
        raise PrometheusError(f"--prometheus: {url!r}: give the base URL, without ? or #")
    return url.rstrip("/")


class Prometheus:
    def __init__(
        self,
        url: str,
        http: HttpConfig | None = None,
        timeout: float = 30.0,
        max_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        self.url = check_url(url)
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.max_bytes = max_bytes
        http = http or HttpConfig()
        self.headers = {"Accept": "application/json", "User-Agent": "kubev-node-exporter-fleet"}
        header = http.authorization_header()
        if header is not None:
            self.headers["Authorization"] = header
        handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
        if self.url.startswith("https://"):
            handlers.append(urllib.request.HTTPSHandler(context=self._tls(http.tls_config)))
        self.opener = urllib.request.build_opener(*handlers)

    @staticmethod
    def _tls(tls: ClientTLS) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=tls.ca_file)
        if tls.cert_file and tls.key_file:
            context.load_cert_chain(tls.cert_file, tls.key_file)
        if tls.insecure_skip_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def query(self, expr: str) -> list[Sample]:
        """An instant query's vector."""
        data = self._get("/api/v1/query", {"query": expr}, what=f"the query {expr}")
        if not isinstance(data, dict) or data.get("resultType") != "vector":
            raise PrometheusError(f"{self.url}: the query {expr} did not answer a vector")
        samples = []
        for item in data.get("result") or []:
            try:
                labels = {str(k): str(v) for k, v in item["metric"].items()}
                samples.append(Sample(labels, float(item["value"][1])))
            except (KeyError, IndexError, TypeError, ValueError, AttributeError):
                raise PrometheusError(
                    f"{self.url}: the query {expr} answered a malformed sample: {item!r:.200}"
                ) from None
        return samples

    def recording_rules(self) -> set[str] | None:
        """The names every loaded recording rule records; None where the rules API is not
        served (a query front end without it)."""
        try:
            data = self._get("/api/v1/rules", {"type": "record"}, what="the rules")
        except PrometheusError as e:
            if "HTTP 404" in str(e):
                return None
            raise
        names = set()
        for group in (data or {}).get("groups") or []:
            for rule in group.get("rules") or []:
                if rule.get("type") == "recording" and isinstance(rule.get("name"), str):
                    names.add(rule["name"])
        return names

    def _get(self, path: str, params: dict[str, str], what: str) -> Any:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise PrometheusError(f"{self.url}: no answer within {self.timeout:g}s")
        request = urllib.request.Request(url, headers=self.headers)
        try:
            with self.opener.open(request, timeout=remaining) as response:
                body = self._read(response)
        except urllib.error.HTTPError as e:
            raise PrometheusError(self._refusal(e, what)) from None
        except urllib.error.URLError as e:
            reason = e.reason
            if isinstance(reason, TimeoutError):
                raise PrometheusError(f"{self.url}: no answer within {self.timeout:g}s") from None
            if isinstance(reason, ssl.SSLError):
                raise PrometheusError(f"{self.url}: TLS failed: {reason}") from None
            text = getattr(reason, "strerror", None) or str(reason)
            raise PrometheusError(f"cannot reach Prometheus at {self.url}: {text}") from None
        except TimeoutError:
            raise PrometheusError(f"{self.url}: no answer within {self.timeout:g}s") from None
        except OSError as e:
            raise PrometheusError(f"{self.url}: {e.strerror or e}") from None
        payload = self._json(body, what)
        if payload.get("status") != "success":
            raise PrometheusError(f"{self.url}: {what} failed: {payload.get('error', payload)}")
        return payload.get("data")

    def _read(self, response: Any) -> bytes:
        body: bytes = response.read(self.max_bytes + 1)
        if len(body) > self.max_bytes:
            raise PrometheusError(
                f"{self.url}: the answer is larger than {self.max_bytes} bytes: not read"
            )
        return body

    def _json(self, body: bytes, what: str) -> dict[str, Any]:
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise PrometheusError(
                f"{self.url} is not Prometheus' API: {what} answered {body[:80]!r}"
            ) from None
        if not isinstance(payload, dict) or "status" not in payload:
            raise PrometheusError(
                f"{self.url} is not Prometheus' API: {what} answered {body[:80]!r}"
            )
        return payload

    def _refusal(self, error: urllib.error.HTTPError, what: str) -> str:
        try:
            body = error.read(64 * 1024)
        except OSError:
            body = b""
        if error.code in (401, 403):
            return (
                f"{self.url} refused access (HTTP {error.code}): give credentials with "
                "--http.config.file"
            )
        try:
            payload = json.loads(body)
            detail = f"{payload.get('errorType', 'error')}: {payload['error']}"
        except (ValueError, KeyError, TypeError, AttributeError):
            detail = body[:200].decode("utf-8", "replace").strip() or error.reason
        return f"{self.url}: {what} failed (HTTP {error.code}): {detail}"
