"""Command line: `kubev-node-exporter [serve]`, flags in node_exporter's style.

Exit codes: 0 clean shutdown, 1 runtime failure (e.g. the port is taken), 2 bad usage or
config (always before anything serves).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import os
import resource
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from aiohttp import web

from exporter import __version__, config, gctune, healthcheck, logs, process
from exporter.checks import CHECKS, Check
from exporter.checks.peerlist import parse_peer_list
from exporter.checks.peers import one_shot
from exporter.looplag import LoopLag
from exporter.paths import Paths
from exporter.report import command, fleet_command
from exporter.runtime import Runtime
from exporter.settings import ConfigError, parse_duration
from exporter.spec import Profile, Role
from exporter.web import DEFAULT_PORT
from exporter.web.guard import Guard, Limits
from exporter.web.listener import GuardedSite
from exporter.web.security import WebSecurity
from exporter.web.server import RESERVED_PATHS, make_app

COMMANDS = ("serve", "check", "fleet", "healthcheck")

log = logging.getLogger("exporter")


class UsageError(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config.file",
        dest="config_file",
        type=Path,
        metavar="FILE",
        help="YAML configuration; every key optional (default: embedded)",
    )
    common.add_argument(
        "--profile",
        choices=[p.value for p in Profile],
        help="requirement profile to judge by (overrides the config file)",
    )
    common.add_argument(
        "--role", choices=[r.value for r in Role], help="node role (overrides the config file)"
    )
    for name, default in (("procfs", "/proc"), ("sysfs", "/sys"), ("rootfs", "/"), ("dev", "/dev")):
        common.add_argument(
            f"--path.{name}",
            dest=f"path_{name}",
            type=Path,
            default=Path(default),
            metavar="PATH",
            help=f"{name} mount point (default: {default})",
        )
    for name in CHECKS:
        common.add_argument(
            f"--collector.{name}",
            dest=f"collector_{name}",
            action=argparse.BooleanOptionalAction,
            default=None,
            help=f"enable or disable the {name} check (overrides the config)",
        )
    common.add_argument(
        "--log.level",
        dest="log_level",
        choices=list(logs.LEVELS),
        default=None,
        help="least severe level logged (default: info; for check: error)",
    )
    common.add_argument(
        "--log.format",
        dest="log_format",
        choices=["logfmt", "json"],
        default="logfmt",
        help="log line format on stderr (default: logfmt)",
    )

    parser = argparse.ArgumentParser(
        prog="kubev-node-exporter",
        description="Prometheus exporter: does this node meet the Kube-V requirements?",
        epilog="Without a command, serve runs. Its flags: kubev-node-exporter serve --help",
    )
    parser.add_argument("--version", action="version", version=f"kubev-node-exporter {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = sub.add_parser("serve", parents=[common], help="run the exporter (default)")
    serve.add_argument(
        "--web.listen-address",
        dest="listen",
        action="append",
        metavar="ADDR",
        help=f"address to listen on, repeatable (default: ${healthcheck.LISTEN_ENV}, "
        f"else :{DEFAULT_PORT})",
    )
    serve.add_argument(
        "--web.config.file",
        dest="web_config",
        type=Path,
        metavar="FILE",
        help="TLS and basic auth, exporter-toolkit format; re-read on SIGHUP "
        f"(default: ${healthcheck.WEB_CONFIG_ENV})",
    )
    serve.add_argument(
        "--web.max-requests",
        dest="max_requests",
        type=int,
        default=Limits.max_requests,
        metavar="N",
        help=f"requests handled at once; more wait, then get 503 (default: {Limits.max_requests})",
    )
    serve.add_argument(
        "--web.max-connections",
        dest="max_connections",
        type=int,
        default=Limits.max_connections,
        metavar="N",
        help="open connections at once, counted from accept; when full, the busiest client "
        f"gives way to a newcomer (default: {Limits.max_connections})",
    )
    serve.add_argument(
        "--web.max-connections-per-client",
        dest="max_connections_per_client",
        type=int,
        default=Limits.max_connections_per_client,
        metavar="N",
        help="open connections from one client address, IPv6: one /64 "
        f"(default: {Limits.max_connections_per_client})",
    )
    serve.add_argument(
        "--web.read-header-timeout",
        dest="read_header_timeout",
        default=f"{Limits.read_header_timeout:g}s",
        metavar="DURATION",
        help=f"time a client has to send a request head (default: {Limits.read_header_timeout:g}s)",
    )
    serve.add_argument(
        "--web.telemetry-path",
        dest="telemetry_path",
        default="/metrics",
        metavar="PATH",
        help="path under which to expose metrics",
    )
    sub.add_parser(
        "healthcheck",
        help="exit 0 if the exporter serving on this host answers /-/healthy (the image's "
        "HEALTHCHECK); takes serve's --web.listen-address and --web.config.file",
        add_help=False,
    )
    check = sub.add_parser(
        "check",
        parents=[common],
        help="run every enabled check once and print the readiness report; exit 0 when every "
        "minimum is met, 1 when one is not or a check fails, 2 on bad usage or config",
    )
    check.add_argument(
        "--output",
        choices=["table", "json"],
        default="table",
        help="table (for people) or json (schema: docs/check-output.schema.json)",
    )
    check.add_argument(
        "--peers",
        action="append",
        metavar="ADDR[=ROLE],...",
        help="before install: can this node reach the ports these nodes will serve? ROLE: "
        "control-plane, worker (+ovn-central for OVN's databases); none: what every node "
        "serves. Turns the ports and ovn checks off unless --collector.ports/ovn asks "
        "(nothing listens yet). docs/peers.md",
    )
    check.add_argument(
        "--peers-file",
        dest="peers_file",
        type=Path,
        metavar="FILE",
        help="as --peers, from a file: ADDR[=ROLE] lines, or file_sd style YAML/JSON",
    )
    fleet_command.add_parser(sub)
    return parser


def parse_listen_address(text: str) -> tuple[str | None, int]:
    """':9100', '0.0.0.0:9100', '[::1]:9100', 'localhost:9100' -> (host or None, port)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise UsageError(f"--web.listen-address: {text!r} is not HOST:PORT or :PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise UsageError(f"--web.listen-address: {text!r} has a bad IPv6 address") from None
    return (host or None), int(port_text)


def raise_fd_limit() -> int:
    """Every connection is a file descriptor: allow as many as the hard limit does.
    Returns the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def check_telemetry_path(path: str) -> None:
    if not path.startswith("/") or path in RESERVED_PATHS:
        taken = ", ".join(RESERVED_PATHS[:-1]) + f" or {RESERVED_PATHS[-1]}"
        raise UsageError(f"--web.telemetry-path: {path!r} must start with / and not be {taken}")


def resolve_config(args: argparse.Namespace) -> config.Config:
    cfg = config.load(args.config_file) if args.config_file else config.Config()
    if args.profile:
        cfg = replace(cfg, profile=Profile(args.profile))
    if args.role:
        cfg = replace(cfg, role=Role(args.role))
    for name in CHECKS:
        enabled = getattr(args, f"collector_{name}")
        if enabled is not None:
            cfg = cfg.with_check(name, enabled=enabled)
    if args.command == "check":
        cfg = check_peers(cfg, args)
    return cfg


def check_peers(cfg: config.Config, args: argparse.Namespace) -> config.Config:
    """`check --peers/--peers-file`: the peers check in preflight, the checks of what
    listens (ports, ovn) off unless asked for; any `check` run probes every pair once."""
    static = tuple(p for text in args.peers or [] for p in parse_peer_list(text, "--peers"))
    if static or args.peers_file:
        file = args.peers_file
        if file is not None and not file.is_file():
            raise UsageError(f"--peers-file: {file}: no such file")
        cfg = cfg.with_check(
            "peers",
            enabled=True,
            static=static,
            file=str(file.absolute()) if file else None,
            preflight=True,
        )
        for name in ("ports", "ovn"):
            if getattr(args, f"collector_{name}") is None:
                cfg = cfg.with_check(name, enabled=False)
    return one_shot(cfg)


def build_checks(cfg: config.Config, paths: Paths) -> list[Check[Any]]:
    return [cls(cfg, paths) for name, cls in CHECKS.items() if cfg.check(name).enabled]


async def serve(
    args: argparse.Namespace,
    cfg: config.Config,
    paths: Paths,
    addresses: list[tuple[str | None, int]],
    security: WebSecurity,
) -> int:
    loop = asyncio.get_running_loop()
    # the loop's own errors (accept() failing, a task's lost exception) as one-liners
    loop.set_exception_handler(logs.loop_exception_handler)
    runtime = Runtime(cfg, build_checks(cfg, paths))
    limits = Limits(
        max_requests=args.max_requests,
        read_header_timeout=args.read_header_timeout,
        max_connections=args.max_connections,
        max_connections_per_client=args.max_connections_per_client,
    ).within_fd_limit(raise_fd_limit())
    if limits.max_connections < args.max_connections:
        log.warning(
            "connection limit lowered to fit the file descriptor limit",
            extra={"kv": {"max_connections": limits.max_connections}},
        )
    guard = Guard(limits)
    lag = LoopLag()
    app = make_app(
        runtime,
        args.telemetry_path,
        # deadlines outermost; authentication before a request takes a request slot
        [guard.deadlines, security.middleware, guard.slots],
        extra=lambda: [*lag.samples(), *process.samples()],
    )
    handler_args: dict[str, Any] = {
        "access_log": None,
        "keepalive_timeout": limits.idle_timeout,
        **limits.handler_args(),
    }
    runner = web.AppRunner(app, handle_signals=False, **handler_args)
    await runner.setup()
    assert runner.server is not None
    # the listener asks for the current SSL context at every accept (a reload swaps it)
    factory = guard.protocol_factory(runner.server, handler_args, lambda: security.ssl_context)
    scheme = "https" if security.ssl_context is not None else "http"
    try:
        for host, port in addresses:
            await GuardedSite(runner, host, port, factory, scheme).start()
    except OSError as e:
        log.error("cannot listen", extra={"kv": {"err": e.strerror or str(e)}})
        await runner.cleanup()
        return 1
    # CPU-bound work in check threads hands the GIL back to the event loop sooner
    sys.setswitchinterval(0.001)
    gctune.tune(runtime)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # the file is read in a thread: the loop serves on, whatever the file holds
    loop.add_signal_handler(signal.SIGHUP, security.reload_in_background, loop)

    runtime.start()
    lag_task = asyncio.create_task(lag.run(), name="loop-lag")
    log.info(
        "serving",
        extra={
            "kv": {
                "version": __version__,
                "config": cfg.source,
                "profile": cfg.profile.value,
                "role": cfg.role.value,
                "node": cfg.node(),
                "listen": ",".join(str(s.name) for s in runner.sites),
                "checks": ",".join(c.name for c in runtime.checks),
            }
        },
    )
    await stop.wait()
    log.info("shutting down")
    lag_task.cancel()
    await runtime.stop()
    await runner.cleanup()
    guard.connections.abort_all()
    security.close()
    logs.flush()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["healthcheck"]:
        return healthcheck.main(argv[1:])
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help", "--version")):
        argv.insert(0, "serve")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits 2 on bad usage, 0 on --help
        return int(e.code or 0)
    if args.command == "fleet":  # reads Prometheus: no node config, no checks, no log
        return fleet_command.run(args)
    # check's report says everything: its log keeps to real trouble unless asked.
    # (Not set_defaults on the subparser: argparse shares the parent's actions, and the
    # default would change for serve too.)
    logs.setup(args.log_level or ("error" if args.command == "check" else "info"), args.log_format)
    try:
        cfg = resolve_config(args)
        paths = Paths(args.path_procfs, args.path_sysfs, args.path_rootfs, args.path_dev)
        if args.command == "check":
            return command.run(cfg, build_checks(cfg, paths), args.output)
        listen = args.listen or [os.environ.get(healthcheck.LISTEN_ENV) or f":{DEFAULT_PORT}"]
        addresses = [parse_listen_address(a) for a in listen]
        check_telemetry_path(args.telemetry_path)
        for flag, number in (
            ("--web.max-requests", args.max_requests),
            ("--web.max-connections", args.max_connections),
            ("--web.max-connections-per-client", args.max_connections_per_client),
        ):
            if number < 1:
                raise UsageError(f"{flag}: must be at least 1, got {number}")
        if args.max_connections_per_client > args.max_connections:
            raise UsageError(
                "--web.max-connections-per-client: must not exceed --web.max-connections "
                f"({args.max_connections}), got {args.max_connections_per_client}"
            )
        if args.web_config is None and os.environ.get(healthcheck.WEB_CONFIG_ENV):
            args.web_config = Path(os.environ[healthcheck.WEB_CONFIG_ENV])
        args.read_header_timeout = parse_duration(
            args.read_header_timeout, "--web.read-header-timeout"
        )
        security = WebSecurity(args.web_config)
    except (ConfigError, UsageError) as e:
        print(f"kubev-node-exporter: {e}", file=sys.stderr)
        return 2
    return asyncio.run(serve(args, cfg, paths, addresses, security))
