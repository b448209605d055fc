"""The fleet report for a terminal: the cluster's verdicts, then one row per node with a
verdict per requirement ("-": not applicable), then what is not PASS grouped by requirement
with its detail, hint and runbook, and a summary line with the exit code."""

from __future__ import annotations

from exporter.report.fleet import Cell, Column, FleetReport
from exporter.report.text import _COLOURS
from exporter.verdicts import Outcome

NOT_APPLICABLE = "-"


def render_fleet(report: FleetReport, colour: bool) -> str:
    def word(cell: Cell) -> str:
        return NOT_APPLICABLE if cell.verdict is None else cell.verdict.value

    def paint(text: str, verdict: Outcome | None, width: int) -> str:
        padded = f"{text:<{width}}"
        if not colour or verdict is None:
            return padded
        return f"\033[1;{_COLOURS[verdict]}m{padded}\033[0m"

    with_exporter = sum(1 for n in report.nodes if n.exporter is not None)
    lines = [
        f"kubev-node-exporter fleet: {len(report.nodes)} nodes, {with_exporter} with an "
        f"exporter (Prometheus {report.prometheus})",
        "",
        "Cluster",
    ]
    title_width = max((len(r.title) for r in report.cluster), default=10)
    for row in report.cluster:
        lines.append(
            f"  {paint(word(row.cell), row.cell.verdict, 7)} {row.title:<{title_width}}  "
            f"{row.cell.detail}"
        )
        if row.cell.hint:
            lines.append(f"  {'':<7} -> {row.cell.hint} ({row.cell.runbook_url})")
    lines.append("")

    # node, role, profile; the cluster's view of the node; the exporter; its verdicts
    cluster_cols = [c for c in report.columns if c.source == "cluster"]
    exporter_cols = [c for c in report.columns if c.source == "exporter"]
    head = ["NODE", "ROLE", "PROFILE", *(c.header for c in cluster_cols), "EXPORTER"]
    head += [c.header for c in exporter_cols]
    table: list[list[tuple[str, Outcome | None]]] = []
    for node in report.nodes:
        role = node.exporter.role if node.exporter else NOT_APPLICABLE
        profile = node.exporter.profile if node.exporter else NOT_APPLICABLE
        cells: list[tuple[str, Outcome | None]] = [(node.node, None), (role, None), (profile, None)]
        cells += [
            (word(node.cells[c.requirement]), node.cells[c.requirement].verdict)
            for c in cluster_cols
        ]
        cells.append((word(node.reporting), node.reporting.verdict))
        if node.exporter is None:
            cells.append((f"({node.reporting.detail})", None))
        else:
            cells += [
                (word(node.cells[c.requirement]), node.cells[c.requirement].verdict)
                for c in exporter_cols
            ]
        table.append(cells)
    fixed = 3 + len(cluster_cols) + 1  # the cells every row has, a node without exporter too
    widths = [len(h) for h in head]
    for cells in table:
        for i, (text, _) in enumerate(cells):
            if i < fixed or len(cells) == len(head):
                widths[i] = max(widths[i], len(text))
    lines.append("  ".join(f"{h:<{w}}" for h, w in zip(head, widths, strict=True)).rstrip())
    for cells in table:
        full = len(cells) == len(head)
        parts = [
            paint(text, verdict, widths[i] if i < fixed or full else 0)
            for i, (text, verdict) in enumerate(cells)
        ]
        lines.append("  ".join(parts).rstrip())
    lines.append("")

    findings = _findings(report)
    if findings:
        lines += ["Findings", *findings, ""]
    legend = "; ".join(f"{c.header} = {c.title}" for c in report.columns if c.header != c.title)
    lines.append(f"Columns: {legend}.")
    for note in report.notes:
        lines.append(f"Note: {note}.")
    counts = report.counts()
    summary = ", ".join(f"{n} {v}" for v, n in counts.items())
    outcome = (
        "every minimum is met, the cluster's included"
        if report.exit_code == 0
        else "a minimum is not met or something cannot be judged"
    )
    lines.append(f"{summary}: {outcome} (exit {report.exit_code})")
    return "\n".join(lines) + "\n"


def _findings(report: FleetReport) -> list[str]:
    """Every cell that is not PASS or not applicable, grouped by requirement: its hint and
    runbook once, then the nodes."""
    lines = []
    exporter_missing = {n.node for n in report.nodes if n.exporter is None}
    groups: list[tuple[Column | None, list[tuple[str, Cell]]]] = [
        (
            None,
            [
                (n.node, n.reporting)
                for n in report.nodes
                if n.reporting.verdict is not Outcome.PASS
            ],
        )
    ]
    for col in report.columns:
        found = [
            (n.node, n.cells[col.requirement])
            for n in report.nodes
            if n.cells[col.requirement].verdict not in (None, Outcome.PASS)
            # a node without an exporter is said once, not once per requirement
            and not (col.source == "exporter" and n.node in exporter_missing)
        ]
        groups.append((col, found))
    for column, found in groups:
        if not found:
            continue
        title = "Exporter" if column is None else f"{column.title} ({column.header})"
        lines.append(f"  {title}")
        first = next((cell for _, cell in found if cell.hint), None)
        if first is not None:
            lines.append(f"    -> {first.hint} ({first.runbook_url})")
        for node, cell in found:
            verdict = cell.verdict.value if cell.verdict else NOT_APPLICABLE
            lines.append(f"    {verdict:<7} {node}: {cell.detail}")
    return lines
