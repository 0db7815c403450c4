"""``offsetstream ledger check``: prove conservation and the balance identity over the whole ledger.

Read-only queries across the services' schemas (an audit, not a service): each returns the rows that break a
rule, so an empty result is the proof. Any row makes the command exit non-zero.
"""

from dataclasses import dataclass

import asyncpg

CHECKS: dict[str, str] = {
    "remittance balances (ΣCLP04 − ΣPLB = BPR02)": """
        SELECT tenant_id, trace_number, total_claim_paid, total_adjustments, total_paid FROM intake.remittances
        WHERE total_claim_paid - total_adjustments <> total_paid""",
    "every PLB pair posted by intake is explained by matching": """
        SELECT r.tenant_id, r.trace_number, r.adjustment_count, count(a.adjustment_id) AS explained
        FROM intake.remittances r
        LEFT JOIN matching.adjustments a ON a.tenant_id = r.tenant_id AND a.remittance_id = r.remittance_id
        GROUP BY r.tenant_id, r.trace_number, r.adjustment_count HAVING count(a.adjustment_id) <> r.adjustment_count""",
    "PLB totals per remittance equal the explained amounts": """
        SELECT r.tenant_id, r.trace_number, r.total_adjustments, sum(a.amount) AS explained
        FROM intake.remittances r JOIN matching.adjustments a
             ON a.tenant_id = r.tenant_id AND a.remittance_id = r.remittance_id
        GROUP BY r.tenant_id, r.trace_number, r.total_adjustments HAVING sum(a.amount) <> r.total_adjustments""",
    "each recovery is allocated + unmatched (+ a refund awaiting its receivable, + what staff dismissed as not "
    "ours), to the cent": """
        SELECT a.tenant_id, a.trace_number, a.segment_ordinal, a.pair_index, a.amount, a.unmatched_amount,
               a.awaiting_refund, a.dismissed_amount,
               COALESCE(sum(l.to_interest + l.to_principal), 0) AS allocated
        FROM matching.adjustments a
        LEFT JOIN matching.allocations l ON l.tenant_id = a.tenant_id AND l.adjustment_id = a.adjustment_id
        WHERE a.bucket IN ('allocated', 'unmatched', 'staff_dismissed')
           OR (a.bucket = 'refund_acknowledged' AND a.amount > 0)
        GROUP BY a.tenant_id, a.adjustment_id, a.trace_number, a.segment_ordinal, a.pair_index, a.amount,
                 a.unmatched_amount, a.awaiting_refund, a.dismissed_amount
        HAVING a.amount <> COALESCE(sum(l.to_interest + l.to_principal), 0) + a.unmatched_amount
                          + a.awaiting_refund + a.dismissed_amount
            OR a.unmatched_amount < 0""",
    "classified pairs move no receivable money": """
        SELECT a.tenant_id, a.trace_number, a.segment_ordinal, a.pair_index, a.bucket
        FROM matching.adjustments a
        WHERE (a.bucket IN ('forwarding_balance', 'non_offset', 'deferral')
               OR (a.bucket = 'refund_acknowledged' AND a.amount <= 0))
          AND (a.unmatched_amount <> 0 OR EXISTS (SELECT 1 FROM matching.allocations l
               WHERE l.tenant_id = a.tenant_id AND l.adjustment_id = a.adjustment_id))""",
    "every PLB pair is in a known bucket": """
        SELECT tenant_id, trace_number, segment_ordinal, pair_index, bucket FROM matching.adjustments
        WHERE bucket NOT IN ('allocated', 'unmatched', 'forwarding_balance', 'non_offset', 'deferral',
                             'refund_acknowledged', 'staff_dismissed')""",
    "receivable recoveries equal their allocations": """
        SELECT r.tenant_id, r.reference, r.principal_recovered, r.interest_recovered, r.refunded,
               COALESCE(sum(l.to_principal), 0) AS alloc_principal, COALESCE(sum(l.to_interest), 0) AS alloc_interest,
               COALESCE(sum(l.to_principal + l.to_interest) FILTER (WHERE l.kind = 'refund'), 0) AS alloc_refund
        FROM matching.receivables r
        LEFT JOIN matching.allocations l ON l.tenant_id = r.tenant_id AND l.receivable_id = r.receivable_id
        GROUP BY r.tenant_id, r.receivable_id, r.reference, r.principal_recovered, r.interest_recovered, r.refunded
        HAVING r.principal_recovered <> COALESCE(sum(l.to_principal), 0)
            OR r.interest_recovered <> COALESCE(sum(l.to_interest), 0)
            OR r.refunded <> COALESCE(sum(l.to_principal + l.to_interest) FILTER (WHERE l.kind = 'refund'), 0)""",
    "receivable interest equals its accrual events": """
        SELECT r.tenant_id, r.reference, r.interest_accrued, COALESCE(sum(c.amount), 0) AS charged
        FROM matching.receivables r
        LEFT JOIN matching.interest_charges c ON c.tenant_id = r.tenant_id AND c.receivable_id = r.receivable_id
            AND NOT c.held
        GROUP BY r.tenant_id, r.receivable_id, r.reference, r.interest_accrued
        HAVING r.interest_accrued <> COALESCE(sum(c.amount), 0)""",
    "principal + interest − recovered − written off = balance ≥ 0": """
        SELECT tenant_id, reference, principal, interest_accrued, principal_recovered, interest_recovered,
               written_off FROM matching.receivables
        WHERE principal + interest_accrued - principal_recovered - interest_recovered - written_off < 0
           OR principal_recovered > principal OR interest_recovered > interest_accrued""",
    "status agrees with the balance": """
        SELECT tenant_id, reference, status FROM matching.receivables
        WHERE (principal + interest_accrued - principal_recovered - interest_recovered - written_off = 0)
              <> (status IN ('settled', 'refunded', 'written_off', 'merged'))
           OR (status = 'merged') <> (merged_into IS NOT NULL)""",
    "a merged receivable keeps nothing: its money and identifiers live in the receivable that absorbed it": """
        SELECT r.tenant_id, r.reference, r.principal, r.interest_accrued FROM matching.receivables r
        WHERE r.merged_into IS NOT NULL AND (r.principal <> 0 OR r.interest_accrued <> 0
              OR EXISTS (SELECT 1 FROM matching.allocations l
                         WHERE l.tenant_id = r.tenant_id AND l.receivable_id = r.receivable_id)
              OR NOT EXISTS (SELECT 1 FROM matching.receivables s
                             WHERE s.tenant_id = r.tenant_id AND s.receivable_id = r.merged_into))""",
    "forwarding balances never applied beyond what was opened (once all files are in)": """
        SELECT tenant_id, reference, opened_amount, applied_amount FROM matching.forwarding_balances
        WHERE applied_amount > opened_amount AND opened_amount > 0""",
}


@dataclass(frozen=True)
class Breach:
    """One rule and the rows that break it."""

    rule: str
    rows: list[dict[str, object]]


async def check(conn: asyncpg.Connection, tenant_id: str | None = None) -> list[Breach]:
    """Run every rule (optionally for one tenant); return the breaches (empty = the ledger is consistent)."""
    breaches = []
    for rule, sql in CHECKS.items():
        rows = await conn.fetch(sql)
        found = [dict(r.items()) for r in rows if tenant_id is None or r["tenant_id"] == tenant_id]
        if found:
            breaches.append(Breach(rule, found))
    return breaches
