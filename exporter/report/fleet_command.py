"""`kubev-node-exporter fleet --prometheus URL`: the fleet's readiness, read from Prometheus.

Exit codes as `check`: 0 every minimum met fleet-wide (the cluster's requirements
included), 1 one is not or something cannot be judged (a node without an exporter, a failing
check, kube-state-metrics or CDI not scraped), 2 bad usage, an unreachable or failing
Prometheus, or nothing to judge (a wrong URL or selector).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from exporter.report.fleet import DEFAULT_SELECTOR, FleetError, ask, assemble
from exporter.report.fleet_text import render_fleet
from exporter.report.promapi import HttpConfig, Prometheus, PrometheusError, load_http_config
from exporter.settings import ConfigError, parse_duration

DEFAULT_TIMEOUT = "30s"


def add_parser(sub: Any) -> None:
    """The `fleet` subcommand and its flags (`sub`: argparse's subparsers)."""
    fleet = sub.add_parser(
        "fleet",
        help="the fleet's readiness (every node, and the cluster) from Prometheus; exit 0 "
        "when every minimum is met, 1 when one is not or something cannot be judged, 2 on "
        "bad usage or an unreachable Prometheus",
        description="Reads the exporters' verdicts and the cluster's (recorded by the rules "
        "in alerts/kubev-node-exporter.rules.yml from kube-state-metrics and CDI) through "
        "Prometheus' HTTP API and prints one table: node x requirement, the cluster's "
        "verdicts above it.",
    )
    fleet.add_argument(
        "--prometheus",
        required=True,
        metavar="URL",
        help="Prometheus' base URL, e.g. http://prometheus.monitoring.svc:9090",
    )
    fleet.add_argument(
        "--output",
        choices=["table", "json"],
        default="table",
        help="table (for people) or json (schema: docs/fleet-output.schema.json)",
    )
    fleet.add_argument(
        "--selector",
        default=DEFAULT_SELECTOR,
        metavar="MATCHERS",
        help=f"label matchers of the exporters' series (default: {DEFAULT_SELECTOR})",
    )
    fleet.add_argument(
        "--timeout",
        default=DEFAULT_TIMEOUT,
        metavar="DURATION",
        help=f"for every question to Prometheus together (default: {DEFAULT_TIMEOUT})",
    )
    fleet.add_argument(
        "--http.config.file",
        dest="http_config",
        type=Path,
        metavar="FILE",
        help="basic auth, bearer token and TLS for Prometheus, in promtool's "
        "--http.config.file format",
    )


def run(args: argparse.Namespace) -> int:
    try:
        timeout = parse_duration(args.timeout, "--timeout")
        http = load_http_config(args.http_config) if args.http_config else HttpConfig()
        if not args.selector.strip() or "{" in args.selector or "}" in args.selector:
            raise ConfigError(f"--selector: label matchers without braces, got {args.selector!r}")
        api = Prometheus(args.prometheus, http, timeout)
        report = assemble(ask(api, args.selector))
    except (ConfigError, PrometheusError, FleetError) as e:
        print(f"kubev-node-exporter fleet: {e}", file=sys.stderr)
        return 2
    if args.output == "json":
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
    else:
        colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        sys.stdout.write(render_fleet(report, colour))
    sys.stdout.flush()
    return report.exit_code
