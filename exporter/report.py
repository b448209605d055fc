"""The HTML page at /: verdicts and check health from the latest snapshot.

Self-contained (no external fonts, scripts or styles: nodes are often air-gapped), and
every value from the node is escaped.
"""

from __future__ import annotations

import time
from html import escape

from exporter.exposition import Identity
from exporter.runtime import Snapshot

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1rem auto;max-width:60rem;padding:0 1rem;color:#222}
table{border-collapse:collapse;width:100%;margin:1rem 0}
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #ddd}
.met{color:#17663a;font-weight:600}.unmet{color:#b00020;font-weight:600}
code{background:#f4f4f4;padding:0 .2rem}
"""


def render(snapshot: Snapshot, identity: Identity, telemetry_path: str) -> str:
    updated = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(snapshot.updated))
    rows = []
    for v in snapshot.verdicts:
        req = v.requirement
        verdict = '<td class="met">met</td>' if v.met else '<td class="unmet">not met</td>'
        rows.append(
            f"<tr><td>{escape(req.title)}</td><td>{escape(v.level.value)}</td>"
            f"<td>{escape(req.format(v.observed))}</td>"
            f"<td>{escape(req.comparison.value)} {escape(req.format(v.threshold))}</td>"
            f"{verdict}</tr>"
        )
    checks = []
    for name, state in snapshot.states.items():
        status = "ok" if state.success else ("pending" if not state.has_run else "failed")
        cls = "met" if state.success else "unmet"
        checks.append(
            f'<tr><td>{escape(name)}</td><td class="{cls}">{status}</td>'
            f"<td>{escape(state.error or '')}</td></tr>"
        )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>kubev-node-exporter: {escape(identity.node)}</title><style>{_STYLE}</style></head>
<body><h1>kubev-node-exporter</h1>
<p>Node <code>{escape(identity.node)}</code>, role <code>{escape(identity.role.value)}</code>,
profile <code>{escape(identity.profile.value)}</code>. Updated {escape(updated)}.
<a href="{escape(telemetry_path)}">Metrics</a></p>
<h2>Requirements</h2>
<table><tr><th>Requirement</th><th>Level</th><th>Observed</th><th>Threshold</th><th>Verdict</th></tr>
{"".join(rows)}</table>
<h2>Checks</h2>
<table><tr><th>Check</th><th>Status</th><th>Error</th></tr>{"".join(checks)}</table>
</body></html>
"""
