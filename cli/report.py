"""The reconciliation staff read after a run: receivables, how PLB money was explained, interest, notifications.

Read-only queries across the services' schemas: an operations view, not a service writing another's tables.
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg


async def reconciliation(conn: asyncpg.Connection, tenant_id: str) -> dict[str, list[dict[str, Any]]]:
    """All figures of one tenant, as rows (tenant-scoped: one clinic never sees another's)."""
    queries = {
        "remittances": """SELECT trace_number, payment_date, payer_id, claim_count, total_claim_paid,
                              total_adjustments, total_paid FROM intake.remittances WHERE tenant_id = $1
                          ORDER BY payment_date, trace_number""",
        "receivables": """SELECT reference, payer_id, status, determination_date AS determined, principal,
                              principal_recovered, interest_accrued, interest_recovered,
                              principal + interest_accrued - principal_recovered - interest_recovered AS balance
                          FROM matching.receivables WHERE tenant_id = $1 ORDER BY determination_date, reference""",
        "offsets": """SELECT bucket, count(*) AS pairs, sum(amount) AS amount, sum(unmatched_amount) AS unmatched
                      FROM matching.adjustments WHERE tenant_id = $1 GROUP BY bucket ORDER BY bucket""",
        "forwarding_balances": """SELECT reference, opened_on, opened_amount, applied_amount,
                                      opened_amount - applied_amount AS open_amount
                                  FROM matching.forwarding_balances WHERE tenant_id = $1 ORDER BY reference""",
        "interest": """SELECT r.reference, a.period_number AS period, a.period_end, a.principal_basis,
                           a.annual_rate, a.amount FROM interest.accruals a
                       JOIN interest.receivables r USING (tenant_id, receivable_id)
                       WHERE a.tenant_id = $1 ORDER BY r.reference, a.period_number""",
        "notifications": """SELECT n.kind, count(*) AS created,
                                count(*) FILTER (WHERE n.status = 'delivered') AS delivered,
                                count(*) FILTER (WHERE n.status = 'failed') AS failed
                            FROM notification.notifications n WHERE n.tenant_id = $1 GROUP BY n.kind
                            ORDER BY n.kind""",
    }
    return {
        name: [dict(r.items()) for r in await conn.fetch(sql, tenant_id)] for name, sql in queries.items()
    }


def table(rows: Sequence[dict[str, Any]]) -> str:
    """A plain text table, right-aligned numbers."""
    if not rows:
        return "  (none)"
    headers = list(rows[0])
    cells = [[("" if r[h] is None else str(r[h])) for h in headers] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    numeric = [
        all(c[i].replace(".", "", 1).replace("-", "", 1).isdigit() or c[i] == "" for c in cells)
        for i in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        return "  " + "  ".join(
            v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric, strict=True)
        )

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(c) for c in cells)])


def render(report: dict[str, list[dict[str, Any]]], extra: dict[str, str] | None = None) -> str:
    """The whole reconciliation as text."""
    parts = []
    for name, rows in report.items():
        parts.append(f"\n{name.replace('_', ' ').title()}\n{table(rows)}")
    for key, value in (extra or {}).items():
        parts.append(f"\n{key}: {value}")
    return "\n".join(parts)


def columns(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    """Plain left-aligned columns (no dependency, pastes well into tickets)."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    lines = [headers, *rows]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def when(timestamp_ms: int) -> str:
    """A Kafka record's time stamp (ms) as UTC wall time for a table."""
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
