"""The address the network probes target: the node's own IP, not 127.0.0.1.

Components such as Kube-OVN bind the node IP, so a probe of loopback would miss them.
Order: the config's node_address, else NODE_IP (a DaemonSet sets it from the downward
API), else the address of the interface that holds the default route, else loopback.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class NodeAddress:
    address: str
    source: str  # config, env, default-route, fallback
    note: str | None = None


def resolve(configured: str) -> NodeAddress:
    """Blocking (netlink); call it from a thread."""
    if configured != "auto":
        return NodeAddress(configured, "config")
    env = os.environ.get("NODE_IP", "").strip()
    if env:
        try:
            return NodeAddress(str(ipaddress.ip_address(env)), "env")
        except ValueError:
            note = f"NODE_IP={env!r} is not an IP address; ignored"
            found = _default_route_address()
            if found:
                return NodeAddress(found, "default-route", note)
            return NodeAddress("127.0.0.1", "fallback", note)
    found = _default_route_address()
    if found:
        return NodeAddress(found, "default-route")
    return NodeAddress(
        "127.0.0.1", "fallback", "no default route: probing 127.0.0.1 (set node_address)"
    )


def _default_route_address() -> str | None:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        for family in (socket.AF_INET, socket.AF_INET6):
            for route in ipr.get_default_routes(family=family):
                source = route.get("RTA_PREFSRC")
                if source:
                    return str(source)
                oif = route.get("RTA_OIF")
                for addr in ipr.get_addr(family=family, index=oif):
                    if addr.get("IFA_ADDRESS"):
                        return str(addr.get("IFA_ADDRESS"))
    return None
