"""``report.html``: the evidence for people. Self-contained (inline CSS, no scripts, no network assets),
with the verdict first and every reason for a FAIL at the top in plain words.
"""

from __future__ import annotations

from html import escape

from common.evidence import Evidence

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:72rem;color:#1d2330;
padding:0 1rem;line-height:1.4}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #d5d9e0}
.verdict{display:inline-block;padding:.3rem .9rem;border-radius:.4rem;font-weight:700;font-size:1.3rem;color:#fff}
.PASS{background:#1b7f3b} .FAIL{background:#b3261e}
.reasons{background:#fdecea;border-left:.3rem solid #b3261e;padding:.6rem 1rem;margin:1rem 0}
.reasons li{margin:.3rem 0}
table{border-collapse:collapse;margin:.5rem 0;font-size:.92rem} th,td{padding:.25rem .7rem;text-align:right;
border-bottom:1px solid #e6e9ee} th{background:#f3f5f8} td.l,th.l{text-align:left}
.ok{color:#1b7f3b;font-weight:600} .no{color:#b3261e;font-weight:700} .meta{color:#5b6473;font-size:.9rem}
.funnel td{font-variant-numeric:tabular-nums} code{font-size:.85rem}
"""


def table(headers: list[str], rows: list[list], left: int = 1) -> str:
    head = "".join(f"<th class='{'l' if i < left else ''}'>{escape(str(h))}</th>" for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f"<td class='{'l' if i < left else ''}'>{escape(str(v))}</td>"
                                     for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def funnel_rows(evidence: Evidence) -> list[list]:
    f = evidence.funnel
    return [["received from the bus", f.received], ["admitted", f.admitted], ["duplicates", f.duplicates],
            ["quarantined", f.quarantined], ["decided", f.decided],
            ["acted on (actions)", sum(f.actions_by_type.values())], ["cases opened", f.cases_opened],
            ["cards blocked", f.cards_blocked]]


def render(evidence: Evidence) -> str:
    reasons = "".join(f"<li>{escape(reason)}</li>" for reason in evidence.reasons)
    bus = evidence.bus
    parts = [
        f"<h1>Run {escape(evidence.run_id)}</h1>",
        f"<p class='meta'>closed {evidence.closed_at:%Y-%m-%d %H:%M:%S} UTC by {escape(evidence.closer)}, attempt "
        f"{evidence.attempt}; code {escape(evidence.code_version)}; config {escape(evidence.config_digest)}</p>",
        f"<p><span class='verdict {evidence.verdict}' id='verdict'>{evidence.verdict}</span></p>",
        f"<div class='reasons'><strong>Why the run failed</strong><ul id='reasons'>{reasons}</ul></div>" if reasons else "",
        "<h2>Funnel</h2>", table(["stage", "count"], funnel_rows(evidence)).replace("<table>", "<table class='funnel' id='funnel'>"),
        "<h2>Partitions: basis, offsets and lag</h2>",
        (f"<p class='meta'>topic {escape(bus.topic)} epoch {bus.epoch}; cluster {escape(bus.cluster_id_basis)} "
         f"(now {escape(str(bus.cluster_id_now))}); topic id {escape(bus.topic_id_basis)} (now "
         f"{escape(str(bus.topic_id_now))}); basis captured {bus.basis_captured_at:%Y-%m-%d %H:%M:%S} UTC</p>"
         if bus else "<p class='meta'>no basis</p>"),
        table(["partition", "basis start", "basis end", "earliest now", "committed", "lag", "received", "admitted",
               "duplicates", "quarantined"],
              [[p.partition, p.basis_start, p.basis_end, p.earliest_now, p.committed, p.lag, p.received, p.admitted,
                p.duplicates, p.quarantined] for p in evidence.partitions]),
        "<h2>Certifications</h2>",
        table(["product", "table", "version", "status", "engine"],
              [[c.product, c.table, c.version, c.status, c.engine or ""] for c in evidence.certifications], left=2),
        "<h2>Decisions</h2>",
        table(["outcome", "decisions"], [[k, v] for k, v in sorted(evidence.funnel.decisions_by_outcome.items())]),
        table(["reason", "decisions"], [[k, v] for k, v in sorted(evidence.funnel.decisions_by_reason.items(),
                                                                  key=lambda kv: -kv[1])]),
        table(["action", "count"], [[k, v] for k, v in sorted(evidence.funnel.actions_by_type.items())]),
        "<h2>Quarantine by reason</h2>",
        table(["reason", "records"], [[k, v] for k, v in sorted(evidence.funnel.quarantined_by_reason.items(),
                                                                key=lambda kv: -kv[1])]),
        "<h2>Every proof</h2>",
        "<table id='checks'><tr><th class='l'>check</th><th class='l'>holds</th><th class='l'>what was found</th></tr>"
        + "".join(f"<tr><td class='l'>{escape(c.name)}</td><td class='l {'ok' if c.ok else 'no'}'>"
                  f"{'yes' if c.ok else 'NO'}</td><td class='l'>{escape(c.detail)}</td></tr>" for c in evidence.checks)
        + "</table>",
        "<h2>Streams and Delta commits</h2>",
        table(["stream", "checkpoint", "app id", "offsets", "commits"],
              [[s.stream, s.checkpoint, s.app_id or "", _span(s.offsets), _span(s.commits)] for s in evidence.streams],
              left=3),
        table(["table", "commits of the run", "rows written", "operations"],
              [[t.table, _span(t.versions), t.rows_written, ", ".join(f"{k} {v}" for k, v in t.operations.items())]
               for t in evidence.tables], left=1),
        f"<p class='meta'>{len(evidence.copied)} files copied into the bundle and hashed; schema "
        f"{escape(evidence.schema_version)}; migrations at {escape(str(evidence.migrations_head))}</p>",
    ]
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>ledgerlane run "
            f"{escape(evidence.run_id)}: {evidence.verdict}</title><style>{STYLE}</style></head><body>"
            + "".join(parts) + "</body></html>\n")


def _span(ids: list[int]) -> str:
    if not ids:
        return "none"
    return f"{ids[0]}..{ids[-1]} ({len(ids)})" if len(ids) > 1 else str(ids[0])
