"""--web.config.file: TLS and basic auth in the exporter-toolkit format that every
Prometheus exporter understands, reloadable on SIGHUP without dropping the listener.

    tls_server_config:
      cert_file: /etc/kubev/tls.crt
      key_file: /etc/kubev/tls.key
      client_auth_type: RequireAndVerifyClientCert   # mTLS; default NoClientCert
      client_ca_file: /etc/kubev/ca.crt
      min_version: TLS12                             # TLS10..TLS13; default TLS12
    basic_auth_users:
      prometheus: $2y$10$...                         # bcrypt hashes only
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import yaml
from aiohttp import web

from exporter import yamlload
from exporter.settings import ConfigError, choice, parse_section, setting

log = logging.getLogger("exporter.web")

VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_OPTIONAL,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}


def _str(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: must be a non-empty string, got {value!r}")
    return value


def _optional_str(value: object, where: str) -> str | None:
    return None if value is None else _str(value, where)


@dataclass(frozen=True)
class TLSSettings:
    cert_file: str = setting("", parse=_str, doc="server certificate (PEM)")
    key_file: str = setting("", parse=_str, doc="its private key (PEM)")
    client_auth_type: str = setting(
        "NoClientCert", parse=choice(tuple(CLIENT_AUTH)), doc="mTLS: RequireAndVerifyClientCert"
    )
    client_ca_file: str | None = setting(
        None, parse=_optional_str, doc="CA that signs client certificates"
    )
    min_version: str = setting("TLS12", parse=choice(tuple(VERSIONS)), doc="TLS10..TLS13")


def _tls(value: object, where: str) -> TLSSettings:
    tls = parse_section(TLSSettings, value, where, TLSSettings())
    for key in ("cert_file", "key_file"):
        if not getattr(tls, key):
            raise ConfigError(f"{where}.{key}: required")
    if tls.client_auth_type == "RequireAndVerifyClientCert" and not tls.client_ca_file:
        raise ConfigError(f"{where}.client_ca_file: required for RequireAndVerifyClientCert")
    return tls


def _users(value: object, where: str) -> Mapping[str, bytes]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: must be a mapping of user: bcrypt hash")
    users: dict[str, bytes] = {}
    for user, hashed in value.items():
        if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            raise ConfigError(f"{where}.{user}: must be a bcrypt hash ($2y$...)")
        users[str(user)] = hashed.encode()
    return users


@dataclass(frozen=True)
class WebConfig:
    tls_server_config: TLSSettings | None = setting(None, parse=_tls, doc="TLS; none: plain HTTP")
    basic_auth_users: Mapping[str, bytes] = setting(
        default_factory=dict, parse=_users, doc="user: bcrypt hash"
    )

    @property
    def tls(self) -> TLSSettings | None:
        return self.tls_server_config

    @property
    def users(self) -> Mapping[str, bytes]:
        return self.basic_auth_users


def load(path: Path) -> WebConfig:
    try:
        data = yamlload.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: {yamlload.describe(e)}") from None
    try:
        config = parse_section(WebConfig, data, "", WebConfig())
        if config.tls is not None:
            make_ssl_context(config.tls)  # fail now, naming the file, not on the first handshake
        return config
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def make_ssl_context(tls: TLSSettings, into: ssl.SSLContext | None = None) -> ssl.SSLContext:
    """A server context; `into` reconfigures a live one (new handshakes use the new files)."""
    context = into or ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
        context.minimum_version = VERSIONS[tls.min_version]
        context.verify_mode = CLIENT_AUTH[tls.client_auth_type]
        if tls.client_ca_file:
            context.load_verify_locations(cafile=tls.client_ca_file)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"tls_server_config: {e}") from None
    return context


class WebSecurity:
    """The live state: the SSL context the listeners use, and the users allowed in."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.config = load(path) if path else WebConfig()
        self.ssl_context = make_ssl_context(self.config.tls) if self.config.tls else None
        self._verified: set[bytes] = set()  # sha256 of "user:password" pairs bcrypt accepted

    def reload(self) -> None:
        """SIGHUP: re-read the file; a bad file keeps the running configuration."""
        if self.path is None:
            return
        try:
            new = load(self.path)
            if (new.tls is None) != (self.config.tls is None):
                raise ConfigError(f"{self.path}: turning TLS on or off needs a restart")
            if new.tls is not None and self.ssl_context is not None:
                make_ssl_context(new.tls, into=self.ssl_context)
        except ConfigError as e:
            log.error("web config not reloaded", extra={"kv": {"err": str(e)}})
            return
        self.config = new
        self._verified.clear()
        log.info("web config reloaded", extra={"kv": {"file": str(self.path)}})

    async def allowed(self, header: str) -> bool:
        users = self.config.users
        if not users:
            return True
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        hashed = users.get(user)
        if not sep or hashed is None:
            return False
        key = hashlib.sha256(hashed + b"\0" + f"{user}:{password}".encode()).digest()
        if key in self._verified:
            return True
        # bcrypt is slow on purpose: off the event loop, in the default executor
        ok = await asyncio.to_thread(bcrypt.checkpw, password.encode(), hashed)
        if ok:
            self._verified.add(key)
        return ok

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if self.config.users and not await self.allowed(request.headers.get("Authorization", "")):
            return web.Response(
                status=401,
                text="Unauthorized\n",
                headers={"WWW-Authenticate": 'Basic realm="kubev-node-exporter"'},
            )
        return await handler(request)
