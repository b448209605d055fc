"""NICs: link speed, duplex, state, MTU and carrier changes of the node's physical links.

The live host is read over netlink and the ethtool API (pyroute2), never by shelling
out. A tree given by --path.sysfs (a fixture, or a host mount) is read from class/net.
A link that reports no speed (-1, empty, EINVAL: down, or a virtual NIC) gets no speed
sample and a log line saying why; a negative speed is never exported. An interface name
that is not UTF-8 is reported under an escaped label (exporter/names.py), never dropping
the other interfaces or the scrape.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from dataclasses import dataclass, replace

from exporter import names
from exporter.checks.base import BlockingCheck, RequirementRow, samples_of
from exporter.fsread import read_attr_errno, read_optional
from exporter.metrics import MetricGroup
from exporter.model import CheckError, CheckOutput, OutputBuilder
from exporter.paths import Paths
from exporter.settings import CheckSettings, NameFilter, choice, parse_bool, section, setting
from exporter.spec import MBPS, PROFILES, Level, Profile, Req
from exporter.verdicts import Outcome

IFF_LOOPBACK = 0x8
#: Link kinds that aggregate physical NICs: they count as physical.
AGGREGATE_KINDS = frozenset({"bond", "team"})


METRICS = MetricGroup("network")
NET_SPEED = METRICS.gauge(
    "kubev_network_speed_bytes",
    "Link speed in bytes per second (Mb/s x 125000). Absent when the link reports no speed "
    "(-1, an empty file, EINVAL: a down link or a virtual NIC); never negative.",
    ("interface",),
)
NET_UP = METRICS.gauge(
    "kubev_network_up",
    "1 if the interface's operstate is up. In every network metric, the interface label writes "
    "a byte of the name that is not UTF-8 as \\xNN.",
    ("interface",),
)
NET_FULL_DUPLEX = METRICS.gauge(
    "kubev_network_full_duplex",
    "1 if the link runs full duplex, 0 if half. Absent when unknown.",
    ("interface",),
)
NET_MTU = METRICS.gauge(
    "kubev_network_mtu_bytes",
    "MTU of the interface.",
    ("interface",),
)
NET_CARRIER_CHANGES = METRICS.counter(
    "kubev_network_carrier_changes_total",
    "Times the link's carrier went up or down since the interface appeared.",
    ("interface",),
)


@dataclass(frozen=True, kw_only=True)
class NetworkSettings(CheckSettings):
    interfaces: NameFilter = section(
        NameFilter,
        "interfaces to report",
        NameFilter(
            exclude="^(lo|veth|br|docker|cali|flannel|cni|ovn|genev|vxlan|tun|tap|virbr|"
            "kube-ipvs|ifb)"
        ),
    )
    physical_only: bool = setting(
        True,
        parse=parse_bool,
        doc="skip links with no device behind them (bridges, veth, tunnels)",
    )
    source: str = setting(
        "auto",
        parse=choice(("auto", "netlink", "sysfs")),
        doc="netlink | sysfs; auto: netlink unless --path.sysfs is re-rooted",
    )


@dataclass(frozen=True)
class Link:
    #: as the os functions take it (surrogate escapes for bytes that are not UTF-8)
    name: str
    operstate: str  # lower case, as sysfs spells it: up, down, unknown, ...
    mtu: int | None
    carrier_changes: int | None
    physical: bool
    speed_mbps: int | None
    no_speed_reason: str | None
    duplex: str | None  # full, half, or None when unknown

    @property
    def label(self) -> str:
        return names.label(self.name)


def _speed_from_text(text: str | None, reason: str | None) -> tuple[int | None, str | None]:
    if text is None:
        return None, reason or "no speed attribute"
    if not text:
        return None, "speed is empty (a down link, or one that reports none)"
    try:
        mbps = int(text)
    except ValueError:
        return None, f"speed is not a number: {text[:20]!r}"
    if mbps <= 0 or mbps == 0xFFFFFFFF:  # -1 / SPEED_UNKNOWN
        return None, f"speed is unknown ({mbps})"
    return mbps, None


def read_sysfs_links(paths: Paths) -> tuple[list[Link], list[str]]:
    """Every link of class/net with what filtering needs (name, physical), and a note for
    each entry that is not a link; the rest is read by with_sysfs_details for the links the
    check reports: a node's pod and VM veths cost a directory entry and two lookups each,
    not seven attribute reads."""
    base = paths.sys("class", "net")
    try:
        entries = sorted(base.iterdir())
    except OSError as e:
        raise CheckError(f"{base}: {e.strerror}") from None
    links, notes = [], []
    for entry in entries:
        # A link is a directory (a symlink to one on a live sysfs). The bonding driver
        # keeps a regular file here, bonding_masters, that lists the bonds: not a link.
        if not entry.is_dir():
            notes.append(
                f"{names.label(str(base))}/{names.label(entry.name)}: not a directory, "
                "so not an interface (bonding_masters is the bonding driver's "
                "control file): skipped"
            )
            continue
        links.append(
            Link(
                name=entry.name,
                operstate="unknown",
                mtu=None,
                carrier_changes=None,
                physical=(entry / "device").exists() or (entry / "bonding").is_dir(),
                speed_mbps=None,
                no_speed_reason="not asked",
                duplex=None,
            )
        )
    return links, notes


def with_sysfs_details(paths: Paths, links: Sequence[Link]) -> list[Link]:
    """The links with state, MTU, carrier changes, speed and duplex from class/net."""
    result = []
    for link in links:
        d = paths.sys("class", "net", link.name)
        speed, reason = _speed_from_text(*read_attr_errno(d / "speed"))
        duplex = read_optional(d / "duplex")
        result.append(
            replace(
                link,
                operstate=(read_optional(d / "operstate") or "unknown").lower(),
                mtu=_int_or_none(read_optional(d / "mtu")),
                carrier_changes=_int_or_none(read_optional(d / "carrier_changes")),
                speed_mbps=speed,
                no_speed_reason=reason,
                duplex=duplex if duplex in ("full", "half") else None,
            )
        )
    return result


def read_netlink_links() -> list[Link]:
    """Every link from one netlink dump. Speed and duplex are left unknown here: they
    cost an ethtool request per link (see with_ethtool), asked only for reported links."""
    from pyroute2 import IPRoute

    links = []
    with IPRoute() as ipr:
        dump = list(ipr.get_links())
    for msg in dump:
        kind = msg.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND")
        loopback = bool(msg["flags"] & IFF_LOOPBACK)
        # pyroute2 decodes IFLA_IFNAME as UTF-8 and hands over bytes when it is not
        ifname = msg.get("ifname")
        if not isinstance(ifname, str | bytes):
            continue
        links.append(
            Link(
                name=names.local(ifname),
                operstate=str(msg.get("operstate") or "unknown").lower(),
                mtu=msg.get("mtu"),
                carrier_changes=msg.get("carrier_changes"),
                physical=not loopback and (kind is None or kind in AGGREGATE_KINDS),
                speed_mbps=None,
                no_speed_reason="not asked",
                duplex=None,
            )
        )
    return sorted(links, key=lambda link: link.name)


def with_ethtool(links: Sequence[Link]) -> list[Link]:
    """The links with speed and duplex from the ethtool API. A KubeVirt node has a veth
    or tap per pod and VM; asking ethtool about each of those (~1 ms of pyroute2 parsing
    apiece) would make this check the heaviest of all, so only reported links get here."""
    if not links:
        return []
    from pyroute2.ethtool import Ethtool

    with Ethtool() as ethtool:
        result = []
        for link in links:
            speed, duplex, reason = _ethtool_link(ethtool, link.name)
            result.append(replace(link, speed_mbps=speed, duplex=duplex, no_speed_reason=reason))
        return result


def _ethtool_link(ethtool: object, name: str) -> tuple[int | None, str | None, str | None]:
    # the netlink ethtool API takes a name that is not UTF-8 as its bytes
    asked: str | bytes = name if names.is_utf8(name) else names.raw(name)
    try:
        mode = ethtool.get_link_mode(asked)  # type: ignore[attr-defined]
    except OSError as e:
        label = errno.errorcode.get(e.errno or 0, "error")
        return None, None, f"ethtool: {label}"
    except Exception as e:  # pyroute2 raises its own NotSupportedError for links without it
        return None, None, f"ethtool: {type(e).__name__}"
    speed, reason = _speed_from_text(
        None if mode.speed is None else str(mode.speed), "ethtool reports no speed"
    )
    duplex = str(mode.duplex).lower() if mode.duplex else None
    return speed, duplex if duplex in ("full", "half") else None, reason


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


#: the speed the hint suggests: the highest any profile recommends
_RECOMMENDED_SPEED = PROFILES[Profile.PRODUCTION][Req.NIC_SPEED].format(
    max(reqs[Req.NIC_SPEED].thresholds[Level.RECOMMENDED] for reqs in PROFILES.values())
)


class NetworkCheck(BlockingCheck[NetworkSettings]):
    name = "network"
    area = ("network", "Network")
    settings_type = NetworkSettings
    defaults = NetworkSettings(interval=15.0, timeout=5.0, max_items=512)
    metrics = METRICS
    rows = (
        RequirementRow(
            Req.NIC_SPEED,
            "KubevNICSpeedInsufficient",
            "Check cabling, switch port and auto-negotiation (ethtool IFACE); use a "
            f"{_RECOMMENDED_SPEED} NIC for VM traffic.",
        ),
    )

    @classmethod
    def detail(cls, requirement: Req, output: CheckOutput, outcome: Outcome) -> str:
        if outcome is not Outcome.UNKNOWN:
            up = {s.labels[0] for s in samples_of(output, NET_UP) if s.value == 1}
            speeds = [
                (s.value, s.labels[0]) for s in samples_of(output, NET_SPEED) if s.labels[0] in up
            ]
            if speeds:
                return f"fastest link up: {max(speeds)[1]}"
        return super().detail(requirement, output, outcome)

    def source(self) -> str:
        source = self.settings.source
        if source == "auto":
            return "netlink" if self.paths.sysfs_is_live else "sysfs"
        return source

    def collect(self) -> CheckOutput:
        settings = self.settings
        netlink = self.source() == "netlink"
        out = self.output()
        if netlink:
            links = read_netlink_links()
        else:
            links, skipped = read_sysfs_links(self.paths)
            out.notes(skipped)
        best: int | None = None
        selected = [
            link
            for link in unique_labels(out, links)
            if settings.interfaces.matches(link.label)
            and (link.physical or not settings.physical_only)
        ]
        reported = out.cap(selected, settings.max_items, "network", "interfaces")
        details = with_ethtool(reported) if netlink else with_sysfs_details(self.paths, reported)
        for link in details:
            name = link.label
            up = link.operstate == "up"
            out.add(NET_UP, up, interface=name)
            if link.mtu is not None:
                out.add(NET_MTU, link.mtu, interface=name)
            if link.carrier_changes is not None:
                out.add(NET_CARRIER_CHANGES, link.carrier_changes, interface=name)
            if link.duplex is not None:
                out.add(NET_FULL_DUPLEX, link.duplex == "full", interface=name)
            if link.speed_mbps is None:
                out.note(f"{name}: no speed sample: {link.no_speed_reason}", Req.NIC_SPEED)
                continue
            speed = link.speed_mbps * MBPS
            out.add(NET_SPEED, speed, interface=name)
            if up:
                best = speed if best is None else max(best, speed)
        out.observe(Req.NIC_SPEED, best)
        return out.build()


def unique_labels(out: OutputBuilder, links: Sequence[Link]) -> list[Link]:
    """The links, each with a note when its name is not UTF-8. Should an escaped name read
    like another link's real one (kv\\xff0 beside kv<0xff>0), the later one is left out
    with a note: two series of one name would spoil the whole scrape."""
    seen: set[str] = set()
    result = []
    for link in links:
        if not names.is_utf8(link.name):
            out.note(names.odd_name_note("interface", link.name))
        if link.label in seen:
            out.note(f"interface {link.label}: another interface has this label: left out")
            continue
        seen.add(link.label)
        result.append(link)
    return result
