"""Staff views of the matching ledger (read-only): receivables, one receivable's story, the unmatched work
queue, and how one remittance's withheld dollars were explained. Used by the CLI (tables or ``--json``).

They join intake's remittance rows only to name the source file of each dollar: an audit read, not a write.
"""

from typing import Any

import asyncpg

BALANCE = "r.principal + r.interest_accrued - r.principal_recovered - r.interest_recovered - r.written_off"


def _rows(records: list[asyncpg.Record]) -> list[dict[str, Any]]:
    return [dict(r.items()) for r in records]


async def receivables(
    conn: asyncpg.Connection, tenant: str, *, open_only: bool = False, payer: str | None = None
) -> list[dict[str, Any]]:
    """One line per receivable, oldest determination first."""
    return _rows(
        await conn.fetch(
            f"""SELECT r.reference, r.payer_id, r.status, r.determination_date AS determined, r.principal,
                   r.interest_accrued AS interest, r.principal_recovered + r.interest_recovered AS recovered,
                   r.refunded, r.written_off, {BALANCE} AS balance
            FROM matching.receivables r
            WHERE r.tenant_id = $1 AND ($2::boolean IS FALSE OR {BALANCE} > 0) AND ($3::text IS NULL OR r.payer_id = $3)
            ORDER BY r.determination_date, r.reference""",  # noqa: S608 - BALANCE is a constant expression
            tenant,
            open_only,
            payer,
        )
    )


async def receivable(conn: asyncpg.Connection, tenant: str, reference: str) -> dict[str, Any] | None:
    """A receivable with its history (every change and the line behind it) and its allocations, found by its
    reference or any identifier it is known by; a merged receivable names the one it lives in now
    (``merged_into_reference``) and a survivor lists what it absorbed (``merged_from``)."""
    head = await conn.fetchrow(
        f"""SELECT r.*, {BALANCE} AS balance, m.reference AS merged_into_reference
            FROM matching.receivables r
            LEFT JOIN matching.receivables m ON m.tenant_id = r.tenant_id AND m.receivable_id = r.merged_into
            WHERE r.tenant_id = $1 AND (r.reference = $2 OR EXISTS (
                SELECT 1 FROM matching.receivable_keys k
                WHERE k.tenant_id = r.tenant_id AND k.receivable_id = r.receivable_id AND k.key = $2
                  AND k.kind IN ('reference', 'icn')))
            ORDER BY r.reference = $2 DESC, r.determination_date LIMIT 1""",  # noqa: S608
        tenant,
        reference.strip(),
    )
    if head is None:
        return None
    rid = head["receivable_id"]
    merged_from = await conn.fetch(
        """SELECT reference, merged_on FROM matching.receivables
           WHERE tenant_id = $1 AND merged_into = $2 ORDER BY reference""",
        tenant,
        rid,
    )
    history = await conn.fetch(
        """SELECT effective_date, change, amount, status, balance, source FROM matching.receivable_history
           WHERE tenant_id = $1 AND receivable_id = $2 ORDER BY seq""",
        tenant,
        rid,
    )
    allocations = await conn.fetch(
        """SELECT l.effective_date, l.kind, l.to_interest, l.to_principal, a.trace_number, a.reason_code,
                  a.segment_ordinal, a.pair_index, m.file_name
           FROM matching.allocations l
           LEFT JOIN matching.adjustments a ON a.tenant_id = l.tenant_id AND a.adjustment_id = l.adjustment_id
           LEFT JOIN intake.remittances m ON m.tenant_id = a.tenant_id AND m.remittance_id = a.remittance_id
           WHERE l.tenant_id = $1 AND l.receivable_id = $2 ORDER BY l.effective_date, a.segment_ordinal""",
        tenant,
        rid,
    )
    keys = await conn.fetch(
        "SELECT kind, key FROM matching.receivable_keys WHERE tenant_id = $1 AND receivable_id = $2 ORDER BY 1, 2",
        tenant,
        rid,
    )
    return {
        "receivable": dict(head.items()),
        "history": _rows(history),
        "allocations": _rows(allocations),
        "keys": _rows(keys),
        "merged_from": _rows(merged_from),
    }


QUEUE_FILTER = "(a.unmatched_amount > 0 OR (a.bucket = 'deferral' AND a.match_reference IS NULL))"
"""Withheld money no receivable explains yet, and recoveries the payer deferred without naming the overpayment
(negative WO without a reference: money it will take back later against a debt staff must identify)."""
TO_IDENTIFY = "CASE WHEN a.bucket = 'deferral' THEN -a.amount ELSE a.unmatched_amount END"


async def unmatched(conn: asyncpg.Connection, tenant: str) -> list[dict[str, Any]]:
    """The work queue, oldest first, with any suggestion (``QUEUE_FILTER``). ``to_identify`` is the amount to
    explain."""
    return _rows(
        await conn.fetch(
            f"""SELECT a.payment_date, a.trace_number, a.reason_code, a.reference, a.amount, a.unmatched_amount,
                  {TO_IDENTIFY} AS to_identify,
                  a.reason, a.suggestion, m.file_name, a.segment_ordinal, a.pair_index
           FROM matching.adjustments a
           LEFT JOIN intake.remittances m ON m.tenant_id = a.tenant_id AND m.remittance_id = a.remittance_id
           WHERE a.tenant_id = $1 AND {QUEUE_FILTER}
           ORDER BY a.payment_date, a.trace_number, a.segment_ordinal, a.pair_index""",  # noqa: S608 - constants
            tenant,
        )
    )


async def work_queue(
    conn: asyncpg.Connection, tenant: str, adjustment_id: str | None = None
) -> list[dict[str, Any]]:
    """The work queue as the console shows it: oldest and largest first, each item with its id (the
    console's handle on it), payer and payee (what a letter entered for it names), file and segment, and the
    suggested receivable's reference and score; one item with ``adjustment_id``."""
    return _rows(
        await conn.fetch(
            f"""SELECT a.adjustment_id::text AS item, a.payment_date, a.payer_id, m.payee_id, a.trace_number,
                  a.reason_code, a.reference, a.amount, {TO_IDENTIFY} AS to_identify, a.reason, m.file_name,
                  a.segment_ordinal, a.pair_index, s.reference AS suggested_reference,
                  substring(a.suggestion from 'score ([0-9.]+)')::numeric AS suggestion_score
           FROM matching.adjustments a
           LEFT JOIN intake.remittances m ON m.tenant_id = a.tenant_id AND m.remittance_id = a.remittance_id
           LEFT JOIN matching.receivables s ON s.tenant_id = a.tenant_id
                AND s.receivable_id::text = substring(a.suggestion from 'receivable ([0-9a-f-]{{36}})')
           WHERE a.tenant_id = $1 AND {QUEUE_FILTER} AND ($2::text IS NULL OR a.adjustment_id::text = $2)
           ORDER BY a.payment_date, {TO_IDENTIFY} DESC, a.trace_number, a.segment_ordinal, a.pair_index""",  # noqa: S608
            tenant,
            adjustment_id,
        )
    )


async def remittance(conn: asyncpg.Connection, tenant: str, trace: str) -> dict[str, Any] | None:
    """How each withheld dollar of one remittance (by TRN02) was explained."""
    head = await conn.fetchrow(
        """SELECT trace_number, payment_date, payer_id, file_name, total_claim_paid, total_adjustments, total_paid
           FROM intake.remittances WHERE tenant_id = $1 AND trace_number = $2 ORDER BY payment_date LIMIT 1""",
        tenant,
        trace,
    )
    if head is None:
        return None
    pairs = await conn.fetch(
        """SELECT a.segment_ordinal, a.pair_index, a.reason_code, a.reference, a.amount, a.bucket,
                  a.unmatched_amount, a.reason,
                  COALESCE(string_agg(r.reference || ' ' || (l.to_interest + l.to_principal)::text, ', '
                           ORDER BY r.reference), '') AS applied_to
           FROM matching.adjustments a
           LEFT JOIN matching.allocations l ON l.tenant_id = a.tenant_id AND l.adjustment_id = a.adjustment_id
           LEFT JOIN matching.receivables r ON r.tenant_id = l.tenant_id AND r.receivable_id = l.receivable_id
           WHERE a.tenant_id = $1 AND a.trace_number = $2
           GROUP BY a.adjustment_id, a.segment_ordinal, a.pair_index, a.reason_code, a.reference, a.amount,
                    a.bucket, a.unmatched_amount, a.reason
           ORDER BY a.segment_ordinal, a.pair_index""",
        tenant,
        trace,
    )
    return {"remittance": dict(head.items()), "pairs": _rows(pairs)}
