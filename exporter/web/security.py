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

A reload builds a new SSL context (as exporter-toolkit does): the listener asks for the
current one at every accept, so new connections use the new certificate and CA and a
removed CA is trusted no more. The file is read and parsed in a thread: the event loop
keeps serving (and SIGTERM keeps working) whatever the file holds.

Basic auth, and what it costs whoever can reach the port:
- bcrypt runs in a pool of BCRYPT_WORKERS threads; at most BCRYPT_QUEUE checks are in
  flight (running or waiting), at most BCRYPT_PER_CLIENT of them for one client address;
  beyond that a request gets 503 at once. Authentication happens before a request takes
  one of the request slots (exporter/web/guard.py), so wrong passwords never hold them;
- a user:password that bcrypt accepted is remembered (a SHA-256 of it and the hash), so
  Prometheus's scrapes never wait behind bcrypt, whatever a flood of wrong passwords does;
- an unknown user costs a bcrypt too (against a hash of the configured users' cost), so
  the answer's timing does not tell which user names exist;
- a password longer than bcrypt's 72 bytes is refused (401), after the same bcrypt.
/-/healthy and /-/ready answer without basic auth (still over TLS): they say only OK or
which checks have not run yet, and the kubelet's probes cannot carry a password.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import enum
import hashlib
import logging
import re
import ssl
import threading
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import bcrypt
import yaml
from aiohttp import web

from exporter import yamlload
from exporter.settings import ConfigError, choice, parse_section, setting, shown
from exporter.web.guard import client_of
from exporter.web.server import HEALTHY, READY

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
#: paths that answer without basic auth: the probes (they reveal nothing about the node)
OPEN_PATHS = frozenset((HEALTHY, READY))

BCRYPT_WORKERS = 2
BCRYPT_QUEUE = 8
BCRYPT_PER_CLIENT = 2
#: user:password pairs remembered after bcrypt accepted them
VERIFIED_CACHE = 64
#: bcrypt reads at most this many bytes of a password
BCRYPT_MAX_PASSWORD = 72

_BCRYPT_HASH = re.compile(r"^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")


def _str(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: must be a non-empty string, got {shown(value)}")
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


def _name(user: object) -> str:
    return yamlload.shorten(str(user), 60)


def _users(value: object, where: str) -> Mapping[str, bytes]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: must be a mapping of user: bcrypt hash")
    users: dict[str, bytes] = {}
    for user, hashed in value.items():
        if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            raise ConfigError(f"{where}.{_name(user)}: must be a bcrypt hash ($2y$...)")
        if not _BCRYPT_HASH.match(hashed):
            raise ConfigError(
                f"{where}.{_name(user)}: not a whole bcrypt hash ($2y$, a cost of 04 to 31, "
                "$ and 53 characters)"
            )
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

    @cached_property
    def unknown_user_hash(self) -> bytes:
        """What an unknown user's password is checked against: a hash that matches no
        password, at the cost most of the configured users' hashes have."""
        costs = Counter(hashed[4:6] for hashed in self.users.values())
        cost = max(costs.items(), key=lambda item: (item[1], item[0]))[0] if costs else b"10"
        return b"$2b$" + cost + b"$" + b"." * 53


def _load(path: Path) -> tuple[WebConfig, ssl.SSLContext | None]:
    try:
        data = yamlload.load_file(path)  # bounded in size, depth and alias expansion
    except yamlload.FileError as e:
        raise ConfigError(f"{path}: {e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: {yamlload.describe(e)}") from None
    try:
        config = parse_section(WebConfig, data, "", WebConfig())
        # made now: a bad certificate fails here, naming the file, not on a handshake
        context = make_ssl_context(config.tls) if config.tls is not None else None
        return config, context
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def load(path: Path) -> WebConfig:
    return _load(path)[0]


def make_ssl_context(tls: TLSSettings) -> ssl.SSLContext:
    """A new server context from the files (never a reconfigured live one: loading a CA
    into a live context adds to what it trusts, and the removed CA would stay trusted)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
        context.minimum_version = VERSIONS[tls.min_version]
        context.verify_mode = CLIENT_AUTH[tls.client_auth_type]
        if tls.client_ca_file:
            context.load_verify_locations(cafile=tls.client_ca_file)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"tls_server_config: {e}") from None
    return context


class Verdict(enum.Enum):
    ALLOWED = "allowed"
    DENIED = "denied"
    BUSY = "busy"  # too many password checks in flight: try again


def _checkpw(password: bytes, hashed: bytes) -> bool:
    # bcrypt reads 72 bytes and bcrypt 5 raises above that: check the first 72 (the same
    # work as any other password) and refuse a longer one
    try:
        ok = bcrypt.checkpw(password[:BCRYPT_MAX_PASSWORD], hashed)
    except ValueError:
        return False
    return ok and len(password) <= BCRYPT_MAX_PASSWORD


class PasswordChecks:
    """bcrypt in a small pool of its own, with bounded admission (see the module)."""

    def __init__(
        self,
        workers: int = BCRYPT_WORKERS,
        queue: int = BCRYPT_QUEUE,
        per_client: int = BCRYPT_PER_CLIENT,
    ) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bcrypt")
        self._queue = queue
        self._per_client = per_client
        self._in_flight = 0
        self._by_client: Counter[str] = Counter()

    async def check(self, password: bytes, hashed: bytes, client: str) -> bool | None:
        """bcrypt's answer, or None when too many checks are in flight."""
        if self._in_flight >= self._queue or self._by_client[client] >= self._per_client:
            return None
        self._in_flight += 1
        self._by_client[client] += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, _checkpw, password, hashed)
        finally:
            self._in_flight -= 1
            self._by_client[client] -= 1
            if not self._by_client[client]:
                del self._by_client[client]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class WebSecurity:
    """The live state: the SSL context for new connections, and the users allowed in."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.config, self.ssl_context = _load(path) if path else (WebConfig(), None)
        self.passwords = PasswordChecks()
        # SHA-256 of hash + "user:password" pairs that bcrypt accepted, least recent first
        self._verified: OrderedDict[bytes, None] = OrderedDict()
        self._reloading = False
        self._reload_again = False

    # --- reload ---------------------------------------------------------------------

    def prepare(self) -> tuple[WebConfig, ssl.SSLContext | None]:
        """Read the file and build what it says (blocking: files, YAML, certificates);
        changes nothing. ConfigError if it cannot be used."""
        assert self.path is not None
        config, context = _load(self.path)
        if (config.tls is None) != (self.config.tls is None):
            raise ConfigError(f"{self.path}: turning TLS on or off needs a restart")
        return config, context

    def apply(self, config: WebConfig, context: ssl.SSLContext | None) -> None:
        # remembered passwords stay valid: their keys include the hash, so a changed or
        # removed user's entries never match again
        self.config, self.ssl_context = config, context
        log.info("web config reloaded", extra={"kv": {"file": str(self.path)}})

    def reload(self) -> None:
        """Re-read the file now (blocking); a bad file keeps the running configuration."""
        if self.path is None:
            return
        try:
            prepared = self.prepare()
        except ConfigError as e:
            log.error("web config not reloaded", extra={"kv": {"err": str(e)}})
            return
        self.apply(*prepared)

    def reload_in_background(self, loop: asyncio.AbstractEventLoop) -> None:
        """SIGHUP: re-read the file in a thread and apply it on the event loop. Another
        SIGHUP meanwhile reads the file once more after this one."""
        if self.path is None:
            return
        if self._reloading:
            self._reload_again = True
            return
        self._reloading = True

        def work() -> None:
            result: tuple[WebConfig, ssl.SSLContext | None] | ConfigError
            try:
                result = self.prepare()
            except ConfigError as e:
                result = e
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: shutdown
                loop.call_soon_threadsafe(self._reloaded, result, loop)

        # a daemon thread: shutdown never waits for a file being read
        threading.Thread(target=work, name="web-config-reload", daemon=True).start()

    def _reloaded(
        self,
        result: tuple[WebConfig, ssl.SSLContext | None] | ConfigError,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._reloading = False
        if isinstance(result, ConfigError):
            log.error("web config not reloaded", extra={"kv": {"err": str(result)}})
        else:
            self.apply(*result)
        if self._reload_again:
            self._reload_again = False
            self.reload_in_background(loop)

    # --- basic auth -----------------------------------------------------------------

    async def check(self, header: str, client: str = "") -> Verdict:
        config = self.config
        users = config.users
        if not users:
            return Verdict.ALLOWED
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return Verdict.DENIED
        try:
            decoded = base64.b64decode(encoded, validate=True)
            user, sep, password = decoded.decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return Verdict.DENIED
        if not sep:
            return Verdict.DENIED
        hashed = users.get(user)
        secret = password.encode()
        key = None
        if hashed is not None:
            key = hashlib.sha256(hashed + b"\0" + f"{user}:".encode() + secret).digest()
            if key in self._verified:
                self._verified.move_to_end(key)
                return Verdict.ALLOWED
        # an unknown user costs the same bcrypt as a known one (timing tells nothing)
        ok = await self.passwords.check(secret, hashed or config.unknown_user_hash, client)
        if ok is None:
            return Verdict.BUSY
        if not ok or key is None:
            return Verdict.DENIED
        self._verified[key] = None
        while len(self._verified) > VERIFIED_CACHE:
            self._verified.popitem(last=False)
        return Verdict.ALLOWED

    async def allowed(self, header: str) -> bool:
        return await self.check(header) is Verdict.ALLOWED

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if not self.config.users or request.path in OPEN_PATHS:
            return await handler(request)
        transport = request.transport
        client = client_of(transport.get_extra_info("peername") if transport else None)
        verdict = await self.check(request.headers.get("Authorization", ""), client)
        if verdict is Verdict.ALLOWED:
            return await handler(request)
        if verdict is Verdict.BUSY:
            return web.Response(
                status=503,
                text="too many password checks at once\n",
                headers={"Retry-After": "1"},
            )
        return web.Response(
            status=401,
            text="Unauthorized\n",
            headers={"WWW-Authenticate": 'Basic realm="kubev-node-exporter"'},
        )

    def close(self) -> None:
        self.passwords.close()
