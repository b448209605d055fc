"""`kubev-node-exporter healthcheck` (and `python -m exporter.healthcheck`, the image's
HEALTHCHECK): is the exporter on this host serving? Exit 0 if GET /-/healthy answers 200,
1 if not.

It finds the exporter where `serve` listens, with the same settings:
1. its own flags, as serve's: --web.listen-address (the first) and --web.config.file;
2. else the environment: KUBEV_WEB_LISTEN_ADDRESS, KUBEV_WEB_CONFIG_FILE (serve reads
   them too, as the defaults of those flags);
3. else the command line of the container's first process, when that is the exporter
   (`docker run IMAGE serve --web.listen-address=:9443 ...`: the HEALTHCHECK runs beside
   it and sees neither its flags nor a file of them);
4. else serve's defaults (:19100, plain HTTP).
With tls_server_config in the web config it speaks TLS without verifying the certificate
(it checks liveness on this host, not identity, as the kubelet's HTTPS probes do). When
the server requires a client certificate, which this command does not have, a completed
TLS handshake counts as alive: the server answered the ClientHello with its whole side of
the handshake, signed with its key, before it refused the client.
/-/healthy needs no basic auth (exporter/web/security.py).

Standard library and PyYAML only, so that a probe every few seconds costs ~20 MB for a
moment, not the ~45 MB of the whole exporter.
"""

from __future__ import annotations

import http.client
import os
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path

from exporter import yamlload
from exporter.web import DEFAULT_PORT  # the package's __init__ only: no aiohttp

LISTEN_ENV = "KUBEV_WEB_LISTEN_ADDRESS"
WEB_CONFIG_ENV = "KUBEV_WEB_CONFIG_FILE"
TIMEOUT = 4.0
FLAGS = ("--web.listen-address", "--web.config.file")


def _flags(argv: Sequence[str]) -> dict[str, str]:
    """--flag=value and --flag value, first occurrence of each of FLAGS."""
    found: dict[str, str] = {}
    args = list(argv)
    for i, arg in enumerate(args):
        name, eq, value = arg.partition("=")
        if name in FLAGS and name not in found:
            if eq:
                found[name] = value
            elif i + 1 < len(args):
                found[name] = args[i + 1]
    return found


def _first_process_flags() -> dict[str, str]:
    try:
        argv = Path("/proc/1/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return {}
    is_exporter = any(a.endswith("kubev-node-exporter") for a in argv[:2]) or (
        "-m" in argv[:3] and "exporter" in argv[:4]
    )
    return _flags(argv) if is_exporter else {}


def settings(argv: Sequence[str]) -> tuple[str, str | None]:
    """(listen address, web config file or None) by the order in the module's docstring."""
    given = _flags(argv)
    env = {
        FLAGS[0]: os.environ.get(LISTEN_ENV, ""),
        FLAGS[1]: os.environ.get(WEB_CONFIG_ENV, ""),
    }
    first = _first_process_flags() if not any(given.values()) and not any(env.values()) else {}
    listen = given.get(FLAGS[0]) or env[FLAGS[0]] or first.get(FLAGS[0]) or f":{DEFAULT_PORT}"
    config = given.get(FLAGS[1]) or env[FLAGS[1]] or first.get(FLAGS[1]) or None
    return listen, config


def target(listen: str) -> tuple[str, int]:
    """Where to connect for a listen address: a wildcard means this host's loopback."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return host, int(port)


def tls_of(config_file: str | None) -> dict[str, object] | None:
    """The web config's tls_server_config (a mapping), or None for plain HTTP."""
    if not config_file:
        return None
    data = yamlload.load_file(Path(config_file))
    tls = data.get("tls_server_config") if isinstance(data, dict) else None
    return tls if isinstance(tls, dict) else None


def probe(host: str, port: int, tls: dict[str, object] | None) -> str | None:
    """None if healthy, else why not."""
    wants_cert = str(tls.get("client_auth_type", "")).startswith("Require") if tls else False
    if tls is None:
        conn: http.client.HTTPConnection = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    else:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(host, port, timeout=TIMEOUT, context=context)
    handshake_done = False
    try:
        conn.connect()
        handshake_done = True
        conn.request("GET", "/-/healthy")
        response = conn.getresponse()
        response.read(1024)
        return None if response.status == 200 else f"/-/healthy answered {response.status}"
    except OSError as e:  # ssl.SSLError included
        if wants_cert and handshake_done:
            # TLS 1.3: the server finished its side of the handshake (it answered, with
            # its key), then refused this client for having no certificate
            return None
        return f"{host}:{port}: {e.strerror or e}"
    finally:
        conn.close()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    listen, config_file = settings(argv)
    try:
        host, port = target(listen)
        tls = tls_of(config_file)
    except (ValueError, OSError, yamlload.FileError) as e:
        print(f"kubev-node-exporter healthcheck: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # a web config that serve would refuse too
        print(f"kubev-node-exporter healthcheck: {config_file}: {e}", file=sys.stderr)
        return 1
    problem = probe(host, port, tls)
    if problem is not None:
        print(f"kubev-node-exporter healthcheck: unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
