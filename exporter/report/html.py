"""The HTML readiness report at /: the same rows as `check`, from the latest snapshot.

Self-contained (no external fonts, scripts or styles: nodes are often air-gapped), readable
on a phone (rows stack) and a wide screen, and every value from the node is escaped.
"""

from __future__ import annotations

import time
from html import escape

from exporter.model import Table
from exporter.report.model import AREAS, VERDICTS, Report

_STYLE = """
:root{--pass:#17663a;--warn:#8a5a00;--fail:#b00020;--error:#6a1b9a;--unknown:#215f7a}
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:72rem;
padding:1rem;color:#1d1d1f;line-height:1.4}
h1{font-size:1.4rem;margin:.2rem 0}h2{font-size:1.1rem;margin:1.4rem 0 .4rem}
.meta{color:#555}.meta code{background:#f2f2f2;padding:0 .25rem;border-radius:3px}
.summary{display:flex;flex-wrap:wrap;gap:.5rem;margin:.8rem 0}
.count{padding:.3rem .7rem;border-radius:1rem;color:#fff;font-weight:600}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.45rem .5rem;border-bottom:1px solid #e3e3e3;vertical-align:top}
th{font-size:.85rem;color:#555}
.verdict{font-weight:700;white-space:nowrap}
.PASS{color:var(--pass)}.WARN{color:var(--warn)}.FAIL{color:var(--fail)}
.ERROR{color:var(--error)}.UNKNOWN{color:var(--unknown)}
.bg-PASS{background:var(--pass)}.bg-WARN{background:var(--warn)}.bg-FAIL{background:var(--fail)}
.bg-ERROR{background:var(--error)}.bg-UNKNOWN{background:var(--unknown)}
.detail{color:#444;font-size:.9rem}.hint{font-size:.9rem}
h3{font-size:.95rem;margin:1rem 0 .3rem}
table.facts td,table.facts th{font-size:.85rem;padding:.3rem .4rem}
@media (max-width:40rem){
 thead{display:none}
 table,tbody,tr,td{display:block;width:100%}
 tr{border:1px solid #e3e3e3;border-radius:6px;margin:.5rem 0;padding:.3rem}
 td{border:none;padding:.2rem .4rem}
 td[data-label]::before{content:attr(data-label) ": ";color:#666;font-size:.8rem}
}
"""


def render_table(table: Table) -> str:
    """A check's table for people (the peers check's blocked pairs): shown whole, escaped;
    an empty one says so in one line."""
    title = f'<h3 id="{escape(table.key)}">{escape(table.title)}</h3>'
    note = f'<p class="detail">{escape(table.note)}</p>' if table.note else ""
    if not table.rows:
        return f'{title}<p class="detail" data-table="{escape(table.key)}">None.</p>{note}'
    head = "".join(f"<th>{escape(c)}</th>" for c in table.columns)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td data-label="{escape(c)}">{escape(v)}</td>'
            for c, v in zip(table.columns, row, strict=False)
        )
        + "</tr>"
        for row in table.rows
    )
    return (
        f'{title}<table class="facts" data-table="{escape(table.key)}"><thead><tr>{head}</tr>'
        f"</thead><tbody>{body}</tbody></table>{note}"
    )


def render(report: Report, telemetry_path: str) -> str:
    updated = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(report.generated_at))
    counts = report.counts()
    badges = "".join(
        f'<span class="count bg-{v}" data-verdict="{v}">{counts[v]} {v}</span>' for v in VERDICTS
    )
    sections = []
    for area, label in AREAS:
        rows = [r for r in report.rows if r.area == area]
        if not rows:
            continue
        body = []
        for r in rows:
            help_ = ""
            if r.hint:
                help_ = (
                    f'<div class="hint">{escape(r.hint)} '
                    f'<a href="{escape(r.runbook_url)}">runbook</a></div>'
                )
            detail = f'<div class="detail">{escape(r.detail)}</div>' if r.detail else ""
            body.append(
                f'<tr data-requirement="{escape(r.requirement)}">'
                f'<td class="verdict {r.verdict}" data-label="Verdict">{r.verdict}</td>'
                f'<td data-label="Requirement">{escape(r.title)}{detail}{help_}</td>'
                f'<td data-label="Observed">{escape(r.observed_text)}</td>'
                f'<td data-label="Minimum">{escape(r.minimum)}</td>'
                f'<td data-label="Recommended">{escape(r.recommended)}</td></tr>'
            )
        tables = "".join(render_table(t) for a, t in report.tables if a == area)
        sections.append(
            f"<h2>{escape(label)}</h2><table><thead><tr><th>Verdict</th><th>Requirement</th>"
            f"<th>Observed</th><th>Minimum</th><th>Recommended</th></tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>{tables}"
        )
    outcome = (
        "Every minimum requirement is met."
        if report.exit_code == 0
        else "A minimum requirement is not met, or a check failed."
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Kube-V readiness: {escape(report.node)}</title><style>{_STYLE}</style></head>
<body><h1>Kube-V readiness of <code>{escape(report.node)}</code></h1>
<p class="meta">Profile <code>{escape(report.profile)}</code>, role
<code>{escape(report.role)}</code>. Updated <time>{escape(updated)}</time>.
<a href="{escape(telemetry_path)}">Metrics</a></p>
<div class="summary">{badges}</div>
<p id="outcome">{escape(outcome)}</p>
{"".join(sections)}
</body></html>
"""
