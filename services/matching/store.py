"""Matching's tables (schema ``matching``): receivables' balances, PLB pairs, allocations, forwarding balances."""

from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg

from contracts.events import OverpaymentDetected, ProviderAdjustmentReceived
from services.matching.domain import Balance


def balance_of(row: asyncpg.Record) -> Balance:
    """The domain view of a receivable row."""
    return Balance(
        row["principal"], row["principal_recovered"], row["interest_accrued"], row["interest_recovered"]
    )


async def lock_receivable(conn: asyncpg.Connection, tenant_id: str, rid: UUID) -> asyncpg.Record | None:
    """Fetch a receivable for update, so two workers never apply money to it at once."""
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT * FROM matching.receivables WHERE tenant_id = $1 AND receivable_id = $2 FOR UPDATE",
        tenant_id,
        rid,
    )
    return row


async def open_or_grow(
    conn: asyncpg.Connection, tenant_id: str, account: str, op: OverpaymentDetected
) -> tuple[str | None, asyncpg.Record]:
    """Create the receivable or raise its principal to the merged principal; say which happened."""
    row = await lock_receivable(conn, tenant_id, op.receivable_id)
    if row is None:
        await conn.execute(
            """INSERT INTO matching.receivables (tenant_id, receivable_id, account_key, payer_id, reference, policy,
                   determination_date, principal, status) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,'open')""",
            tenant_id,
            op.receivable_id,
            account,
            op.payer_id,
            op.reference,
            op.policy,
            op.determination_date,
            op.principal,
        )
        change: str | None = "ReceivableOpened"
    elif op.principal > row["principal"] or op.determination_date < row["determination_date"]:
        await conn.execute(
            """UPDATE matching.receivables SET principal = GREATEST(principal, $3::numeric),
                   determination_date = LEAST(determination_date, $4::date) WHERE tenant_id = $1 AND receivable_id = $2""",
            tenant_id,
            op.receivable_id,
            op.principal,
            op.determination_date,
        )
        change = "ReceivableIncreased"
    else:
        change = None
    fresh = await lock_receivable(conn, tenant_id, op.receivable_id)
    assert fresh is not None
    return change, fresh


async def save_balance(
    conn: asyncpg.Connection, tenant_id: str, rid: UUID, balance: Balance, status: str
) -> None:
    """Store a receivable's new totals (in the transaction that wrote the allocation or accrual behind them)."""
    await conn.execute(
        """UPDATE matching.receivables SET principal_recovered = $3, interest_accrued = $4, interest_recovered = $5,
               status = $6 WHERE tenant_id = $1 AND receivable_id = $2""",
        tenant_id,
        rid,
        balance.principal_recovered,
        balance.interest_accrued,
        balance.interest_recovered,
        status,
    )


async def save_adjustment(
    conn: asyncpg.Connection,
    tenant_id: str,
    account: str,
    adjustment_id: UUID,
    adj: ProviderAdjustmentReceived,
    match_reference: str | None,
    bucket: str,
    unmatched: Decimal,
    reason: str,
) -> None:
    """Record a PLB pair and the bucket its money went to."""
    await conn.execute(
        """INSERT INTO matching.adjustments (tenant_id, adjustment_id, account_key, remittance_id, payer_id,
               trace_number, payment_date, segment_ordinal, pair_index, reason_code, reference, match_reference,
               amount, bucket, unmatched_amount, reason)
           VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16) ON CONFLICT DO NOTHING""",
        tenant_id,
        adjustment_id,
        account,
        adj.remittance_id,
        adj.payer_id,
        adj.trace_number,
        adj.payment_date,
        adj.segment_ordinal,
        adj.pair_index,
        adj.reason_code,
        adj.reference,
        match_reference,
        adj.amount,
        bucket,
        unmatched,
        reason,
    )


async def save_allocation(
    conn: asyncpg.Connection,
    tenant_id: str,
    allocation_id: UUID,
    adjustment_id: UUID,
    rid: UUID,
    to_interest: Decimal,
    to_principal: Decimal,
    effective: date,
) -> None:
    """Record which part of a PLB pair went to which receivable (the audit trail of every withheld dollar)."""
    await conn.execute(
        """INSERT INTO matching.allocations (tenant_id, allocation_id, adjustment_id, receivable_id, to_interest,
               to_principal, effective_date) VALUES ($1,$2,$3,$4,$5,$6,$7)""",
        tenant_id,
        allocation_id,
        adjustment_id,
        rid,
        to_interest,
        to_principal,
        effective,
    )


async def parked_recoveries(
    conn: asyncpg.Connection, tenant_id: str, account: str, reference: str
) -> list[asyncpg.Record]:
    """Unmatched recoveries waiting for this reference, oldest first (out-of-order arrival)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT * FROM matching.adjustments WHERE tenant_id = $1 AND account_key = $2 AND match_reference = $3
               AND unmatched_amount > 0 AND reason_code = 'WO'
           ORDER BY payment_date, segment_ordinal, pair_index FOR UPDATE""",
        tenant_id,
        account,
        reference,
    )
    return rows


async def reduce_unmatched(
    conn: asyncpg.Connection, tenant_id: str, adjustment_id: UUID, remaining: Decimal, reason: str
) -> None:
    """A parked recovery was (partly) re-matched."""
    await conn.execute(
        """UPDATE matching.adjustments SET unmatched_amount = $3::numeric, reason = $4,
               bucket = CASE WHEN $3::numeric = 0 THEN 'allocated' ELSE bucket END
           WHERE tenant_id = $1 AND adjustment_id = $2""",
        tenant_id,
        adjustment_id,
        remaining,
        reason,
    )


async def forwarding(
    conn: asyncpg.Connection,
    tenant_id: str,
    account: str,
    reference: str,
    opened: Decimal,
    applied: Decimal,
    opened_on: date | None,
) -> None:
    """Open or apply a forwarding balance keyed by its reference (TRN02 of the remittance that created it)."""
    await conn.execute(
        """INSERT INTO matching.forwarding_balances (tenant_id, account_key, reference, opened_amount, applied_amount,
               opened_on) VALUES ($1,$2,$3,$4,$5,$6)
           ON CONFLICT (tenant_id, account_key, reference) DO UPDATE SET
               opened_amount = matching.forwarding_balances.opened_amount + EXCLUDED.opened_amount,
               applied_amount = matching.forwarding_balances.applied_amount + EXCLUDED.applied_amount,
               opened_on = COALESCE(matching.forwarding_balances.opened_on, EXCLUDED.opened_on)""",
        tenant_id,
        account,
        reference,
        opened,
        applied,
        opened_on,
    )


async def add_interest(
    conn: asyncpg.Connection, tenant_id: str, event_id: UUID, rid: UUID, amount: Decimal
) -> bool:
    """Record an accrual once; False on a replay."""
    done = await conn.fetchval(
        """INSERT INTO matching.interest_charges (tenant_id, event_id, receivable_id, amount) VALUES ($1,$2,$3,$4)
           ON CONFLICT DO NOTHING RETURNING 1""",
        tenant_id,
        event_id,
        rid,
        amount,
    )
    return done is not None


def row_dict(row: asyncpg.Record) -> dict[str, Any]:
    """A record as a plain dict."""
    return dict(row.items())


async def open_totals(conn: asyncpg.Connection) -> tuple[int, Decimal, Decimal]:
    """(open receivables, their balance, unmatched withheld dollars) across the ledger, for the gauges."""
    row = await conn.fetchrow(
        """SELECT count(*) FILTER (WHERE b > 0) AS n, COALESCE(sum(b) FILTER (WHERE b > 0), 0) AS balance,
                  (SELECT COALESCE(sum(unmatched_amount), 0) FROM matching.adjustments) AS unmatched
           FROM (SELECT principal + interest_accrued - principal_recovered - interest_recovered AS b
                 FROM matching.receivables) r"""
    )
    assert row is not None
    return int(row["n"]), row["balance"], row["unmatched"]
