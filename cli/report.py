"""The reconciliation staff read after a run: receivables, how PLB money was explained, interest, notifications.

Read-only queries across the services' schemas: an operations view, not a service writing another's tables.
"""

from collections.abc import Sequence
from datetime import UTC, date, datetime
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


TITLES = {
    "remittances": "Remittances received",
    "receivables": "Receivables (what each overpayment still owes)",
    "offsets": "Withheld money (PLB), by how it was explained",
    "forwarding_balances": "Forwarding balances (payer carried a negative payment forward)",
    "interest": "Interest periods",
    "notifications": "Notifications",
}
"""Section titles a billing person reads; the keys stay the query names the code and tests use."""

NOTES = {
    "remittances": "PLB withheld: provider-level adjustments of the payment; positive = withheld from it, "
    "negative = added to it (a recoupment given back).",
    "offsets": "allocated = recovered a receivable; deferral = recovery the payer postponed (or reversed);\n"
    "  forwarding balance = carried to a later payment; non offset = not a recoupment (e.g. interest paid to\n"
    "  the provider); unmatched = no receivable explains it yet (the work queue: offsetstream unmatched);\n"
    "  refund acknowledged = a payer's refund pair, nothing owed; staff dismissed = withheld money staff marked\n"
    '  "not ours" in the work queue (who and when: the item\'s history), out of the queue but still counted.',
}

HEADERS = {
    "trace_number": "trace",
    "payment_date": "paid on",
    "payer_id": "payer",
    "claim_count": "claims",
    "total_claim_paid": "claims paid",
    "total_adjustments": "PLB withheld",
    "total_paid": "payment",
    "principal_recovered": "principal recovered",
    "interest_accrued": "interest accrued",
    "interest_recovered": "interest recovered",
    "balance": "still owed",
    "opened_on": "opened on",
    "opened_amount": "opened",
    "applied_amount": "applied",
    "open_amount": "open",
    "period_end": "period end",
    "principal_basis": "principal basis",
    "annual_rate": "annual rate",
    "unmatched": "unexplained",
}
"""Column headers in words (two spaces or more separate columns, so a header may have several)."""


def header(key: str) -> str:
    """The words for one column key: the table above, else the key with spaces."""
    return HEADERS.get(key, key.replace("_", " "))


WORDED = frozenset({"status", "bucket", "kind"})
"""Columns whose values are code words (``partially_recovered``) printed as words."""


def cell(key: str, value: Any) -> str:
    """One value as printed: empty for none, code words with spaces."""
    if value is None:
        return ""
    return str(value).replace("_", " ") if key in WORDED else str(value)


def table(rows: Sequence[dict[str, Any]]) -> str:
    """A plain text table, right-aligned numbers, headers in words."""
    if not rows:
        return "  (none)"
    keys = list(rows[0])
    headers = [header(k) for k in keys]
    cells = [[cell(k, r[k]) for k in keys] for r in rows]
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


def render(
    report: dict[str, list[dict[str, Any]]],
    tenant_id: str,
    as_of: date,
    extra: dict[str, str] | None = None,
) -> str:
    """The whole reconciliation as text, headed by whose it is and the business date it is "as of"
    (interest and timelines depend on that date, so a printed copy must carry it)."""
    parts = [f"Reconciliation of {tenant_id} as of {as_of.isoformat()} (business date)"]
    for name, rows in report.items():
        note = f"\n  {NOTES[name]}" if name in NOTES and rows else ""
        parts.append(f"\n{TITLES.get(name, name)}{note}\n{table(rows)}")
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
