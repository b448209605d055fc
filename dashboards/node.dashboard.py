"""Node detail: KVM, CPU and memory headroom, disks and fsync, NICs, ports, OVN, DNS.

A panel that shows what an alert judges links to that alert's runbook."""

from __future__ import annotations

from collections.abc import Sequence

from grafanalib.core import Dashboard, RowPanel, Stat, StateTimeline, Table, Threshold, TimeSeries

from alerts.catalog import RECORDING_RULES
from dashboards.common import (
    DATASOURCE,
    GREEN,
    NODE_UID,
    RED,
    SEL,
    YELLOW,
    Layout,
    runbook_links,
    steps,
    target,
    yes_no,
)
from dashboards.common import (
    dashboard as common_dashboard,
)
from exporter.checks import ROWS
from exporter.spec import (
    DISK_IO_LATENCY_WARNING_SECONDS,
    DNS_SLOW_SECONDS,
    FSYNC_CRITICAL_SECONDS,
    FSYNC_MINIMUM_SECONDS,
    FSYNC_RECOMMENDED_SECONDS,
    GENEVE_OVERHEAD_BYTES,
    MBPS,
    MEMORY_AVAILABLE_MIN_RATIO,
    MIN_POD_MTU_BYTES,
    Req,
)

UP_MAPPING = [
    {
        "type": "value",
        "options": {"1": {"text": "up", "color": GREEN}, "0": {"text": "DOWN", "color": RED}},
    }
]


def series(
    title: str,
    expr: str,
    legend: str,
    unit: str,
    thresholds: list[Threshold] | None = None,
    description: str = "",
    alerts: Sequence[str] = (),
) -> TimeSeries:
    extra = {}
    if thresholds:
        extra = {"fieldConfig": {"defaults": {"custom": {"thresholdsStyle": {"mode": "line"}}}}}
    return TimeSeries(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=[target(expr, legend)],
        unit=unit,
        thresholds=thresholds or steps((GREEN, None)),
        links=runbook_links(*alerts),
        extraJson=extra,
    )


def headroom(title: str, expr: str, unit: str, alert: str) -> Stat:
    return Stat(
        title=title,
        links=runbook_links(alert),
        dataSource=DATASOURCE,
        targets=[target(expr, instant=True)],
        format=unit,
        colorMode="background",
        graphMode="area",
        reduceCalc="lastNotNull",
        thresholds=steps((RED, None), (GREEN, 0)),
        description="Above the profile's minimum (negative: short of it).",
    )


def disk_latency(op: str) -> TimeSeries:
    """Mean time per read or write of each disk, as KubevDiskLatencyHigh judges it: the
    recording rule over the same 5 minutes, with the alert's threshold as a line."""
    record = f"kubev:disk_{op}_latency_seconds:rate5m"
    if record not in {rule.record for rule in RECORDING_RULES}:
        raise ValueError(f"{record} is not a recording rule of alerts/catalog/recording.py")
    return series(
        f"Disk {op} latency (mean per I/O, 5m)",
        f"{record}{{{SEL}}}",
        "{{device}}",
        "s",
        steps((GREEN, None), (YELLOW, DISK_IO_LATENCY_WARNING_SECONDS)),
        f"The recording rule {record} (alerts/kubev-node-exporter.rules.yml: load the rules "
        "with the dashboards). KubevDiskLatencyHigh warns above "
        f"{DISK_IO_LATENCY_WARNING_SECONDS * 1000:g} ms.",
        alerts=("KubevDiskLatencyHigh",),
    )


def dashboard() -> Dashboard:
    layout = Layout()
    layout.add(RowPanel(title="KVM and CPU"), 24, 1)
    layout.row(
        [
            yes_no("KVM usable", f"kubev_kvm_usable{{{SEL}}}", alerts=("KubevKVMUnusable",)),
            yes_no(
                "VT-x / AMD-V flag",
                f"kubev_cpu_virtualization_extensions_present{{{SEL}}}",
                alerts=("KubevVirtualizationExtensionsMissing",),
            ),
            yes_no("Nested KVM", f"kubev_kvm_nested_enabled{{{SEL}}}"),
            yes_no("Host is a VM", f"kubev_host_is_virtual_machine{{{SEL}}}", good=0),
        ],
        h=4,
    )
    layout.row(
        [
            headroom(
                "CPU headroom (cores)",
                f'kubev_cpu_headroom_cores{{{SEL}, level="minimum"}}',
                "none",
                "KubevCPUCoresInsufficient",
            ),
            headroom(
                "Memory headroom",
                f'kubev_memory_headroom_bytes{{{SEL}, level="minimum"}}',
                "bytes",
                "KubevMemoryInsufficient",
            ),
            Stat(
                title="Logical cores",
                dataSource=DATASOURCE,
                targets=[target(f"kubev_cpu_logical_cores{{{SEL}}}", instant=True)],
                graphMode="none",
                reduceCalc="lastNotNull",
            ),
        ],
        h=4,
    )
    layout.row(
        [
            series("Idle CPU (cores)", f"kubev_cpu_idle_cores{{{SEL}}}", "idle", "none"),
            series(
                "Memory available",
                f"kubev_memory_available_bytes{{{SEL}}} / kubev_memory_total_bytes{{{SEL}}}",
                "available",
                "percentunit",
                steps((RED, None), (GREEN, MEMORY_AVAILABLE_MIN_RATIO)),
                f"Warning below {MEMORY_AVAILABLE_MIN_RATIO:.0%}.",
                alerts=("KubevMemoryAvailableLow",),
            ),
        ],
        h=7,
    )
    layout.add(RowPanel(title="VM devices and kernel"), 24, 1)
    layout.row(
        [
            yes_no(
                title,
                f'kubev_requirement_met{{{SEL}, requirement="{req.value}", level="minimum"}}',
                alerts=(ROWS[req].alert,),
            )
            for title, req in (
                ("/dev/net/tun", Req.TUN),
                ("/dev/vhost-net", Req.VHOST_NET),
                ("x86-64-v2 CPU baseline", Req.CPU_BASELINE),
                ("Kernel modules", Req.KERNEL_MODULES),
                ("cgroup controllers", Req.CGROUP_CONTROLLERS),
                ("Peers' ports reachable", Req.PEER_REACHABILITY),
            )
        ],
        h=4,
    )
    layout.add(RowPanel(title="Storage"), 24, 1)
    layout.row(
        [
            disk_latency("read"),
            disk_latency("write"),
            series(
                "fsync probe p99",
                "histogram_quantile(0.99, sum by (path, le) "
                f"(rate(kubev_storage_fsync_latency_seconds_bucket{{{SEL}}}[$__rate_interval])))",
                "{{path}}",
                "s",
                # past the recommendation, past the minimum (KubevStorageFsyncSlow warns),
                # far beyond it (it pages)
                steps(
                    (GREEN, None),
                    (YELLOW, FSYNC_RECOMMENDED_SECONDS),
                    ("orange", FSYNC_MINIMUM_SECONDS),
                    (RED, FSYNC_CRITICAL_SECONDS),
                ),
                alerts=("KubevStorageFsyncSlow",),
            ),
        ],
        h=7,
    )
    layout.add(
        Table(
            title="Disks",
            dataSource=DATASOURCE,
            links=runbook_links("KubevStorageNotSolidState"),
            targets=[target(f"kubev_disk_info{{{SEL}}}", instant=True, fmt="table")],
            transformations=[
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {
                            "Time": True,
                            "Value": True,
                            "__name__": True,
                            "job": True,
                        }
                    },
                }
            ],
        ),
        12,
        6,
    )
    layout.add(
        series(
            "Filesystem available",
            f"kubev_filesystem_avail_bytes{{{SEL}}}",
            "{{path}}",
            "bytes",
            alerts=("KubevFilesystemFillingUp",),
        ),
        12,
        6,
    )
    layout.add(RowPanel(title="Network"), 24, 1)
    layout.row(
        [
            Table(
                title="Links",
                dataSource=DATASOURCE,
                links=runbook_links(
                    "KubevNICSpeedInsufficient", "KubevNetworkLinkDown", "KubevNetworkMTUTooSmall"
                ),
                targets=[
                    target(
                        f"kubev_network_speed_bytes{{{SEL}}}", instant=True, fmt="table", ref="A"
                    ),
                    target(f"kubev_network_mtu_bytes{{{SEL}}}", instant=True, fmt="table", ref="B"),
                    target(f"kubev_network_up{{{SEL}}}", instant=True, fmt="table", ref="C"),
                ],
                transformations=[
                    {"id": "merge", "options": {}},
                    {
                        "id": "organize",
                        "options": {
                            "excludeByName": {"Time": True, "job": True, "instance": True},
                            "renameByName": {
                                "Value #A": "speed (bytes/s)",
                                "Value #B": "MTU",
                                "Value #C": "up",
                            },
                        },
                    },
                ],
                overrides=[
                    {
                        "matcher": {"id": "byName", "options": "speed (bytes/s)"},
                        "properties": [
                            {
                                "id": "thresholds",
                                "value": {
                                    "mode": "absolute",
                                    "steps": [
                                        {"color": RED, "value": None},
                                        {"color": YELLOW, "value": 1000 * MBPS},
                                        {"color": GREEN, "value": 10_000 * MBPS},
                                    ],
                                },
                            },
                            {"id": "custom.cellOptions", "value": {"type": "color-background"}},
                        ],
                    },
                    {
                        "matcher": {"id": "byName", "options": "MTU"},
                        "properties": [
                            {
                                "id": "thresholds",
                                "value": {
                                    "mode": "absolute",
                                    "steps": [
                                        {"color": YELLOW, "value": None},
                                        {
                                            "color": GREEN,
                                            "value": MIN_POD_MTU_BYTES + GENEVE_OVERHEAD_BYTES,
                                        },
                                    ],
                                },
                            },
                            {"id": "custom.cellOptions", "value": {"type": "color-background"}},
                        ],
                    },
                ],
            ),
            series(
                "Carrier changes (15m)",
                f"increase(kubev_network_carrier_changes_total{{{SEL}}}[15m])",
                "{{interface}}",
                "none",
                alerts=("KubevNetworkLinkFlapping",),
            ),
        ],
        h=7,
    )
    layout.add(RowPanel(title="Ports, OVN, DNS"), 24, 1)
    layout.add(
        StateTimeline(
            title="Ports (required ones)",
            dataSource=DATASOURCE,
            links=runbook_links("KubevPortDown", "KubevGeneveNotBound"),
            targets=[
                target(
                    f"kubev_port_up{{{SEL}}} and on(instance, component, port, protocol) "
                    f"kubev_port_expected{{{SEL}}} == 1",
                    "{{component}} {{port}}/{{protocol}}",
                )
            ],
            mappings=UP_MAPPING,
            showValue="never",
            mergeValues=True,
        ),
        24,
        9,
    )
    layout.row(
        [
            StateTimeline(
                title="OVN metrics endpoints",
                dataSource=DATASOURCE,
                links=runbook_links("KubevOVNEndpointDown"),
                targets=[target(f"kubev_ovn_endpoint_up{{{SEL}}}", "{{component}} :{{port}}")],
                mappings=UP_MAPPING,
                showValue="never",
                mergeValues=True,
            ),
            series(
                "DNS resolution time",
                f"kubev_dns_resolution_duration_seconds{{{SEL}}}",
                "{{name}}",
                "s",
                steps((GREEN, None), (YELLOW, DNS_SLOW_SECONDS)),
                alerts=("KubevDNSResolutionFailing", "KubevDNSResolutionSlow"),
            ),
        ],
        h=6,
    )
    layout.add(RowPanel(title="Exporter"), 24, 1)
    layout.row(
        [
            series("Check durations", f"kubev_check_duration_seconds{{{SEL}}}", "{{check}}", "s"),
            StateTimeline(
                title="Check success",
                dataSource=DATASOURCE,
                links=runbook_links("KubevCheckFailing"),
                targets=[target(f"kubev_check_success{{{SEL}}}", "{{check}}")],
                mappings=[
                    {
                        "type": "value",
                        "options": {
                            "1": {"text": "ok", "color": GREEN},
                            "0": {"text": "FAILING", "color": RED},
                        },
                    }
                ],
                showValue="never",
                mergeValues=True,
            ),
        ],
        h=6,
    )
    return common_dashboard(
        "node detail",
        NODE_UID,
        "One node against the Kube-V requirements (kubev-node-exporter)",
        refresh="30s",
        node_multi=False,
        panels=layout.panels,
    )
