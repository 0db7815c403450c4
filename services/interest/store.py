"""Interest's tables (schema ``interest``): receivables as seen from events, principal history, accruals."""

from datetime import date
from decimal import Decimal
from uuid import UUID

import asyncpg

from contracts.events import ReceivableChanged
from services.interest.domain import Period


async def record_change(
    conn: asyncpg.Connection,
    tenant_id: str,
    account: str,
    event_id: UUID,
    change: ReceivableChanged,
    *,
    principal_changed: bool,
) -> None:
    """Keep the receivable's latest state and the outstanding principal as of the change's business date."""
    await conn.execute(
        """INSERT INTO interest.receivables (tenant_id, receivable_id, account_key, payer_id, reference, policy,
               determination_date, principal, principal_recovered, status)
           VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)
           ON CONFLICT (tenant_id, receivable_id) DO UPDATE SET principal = EXCLUDED.principal,
               principal_recovered = EXCLUDED.principal_recovered, status = EXCLUDED.status,
               determination_date = EXCLUDED.determination_date""",
        tenant_id,
        change.receivable_id,
        account,
        change.payer_id,
        change.reference,
        change.policy,
        change.determination_date,
        change.principal,
        change.principal_recovered,
        change.status,
    )
    if not principal_changed:
        return
    await conn.execute(
        """INSERT INTO interest.principal_history (tenant_id, receivable_id, event_id, effective_date, outstanding)
           VALUES ($1,$2,$3,$4,$5) ON CONFLICT DO NOTHING""",
        tenant_id,
        change.receivable_id,
        event_id,
        change.effective_date,
        change.principal - change.principal_recovered,
    )


async def history(conn: asyncpg.Connection, tenant_id: str, rid: UUID) -> list[tuple[date, Decimal]]:
    """(effective date, outstanding principal) in the order the changes were recorded."""
    rows = await conn.fetch(
        """SELECT effective_date, outstanding FROM interest.principal_history
           WHERE tenant_id = $1 AND receivable_id = $2 ORDER BY effective_date, seq""",
        tenant_id,
        rid,
    )
    return [(r["effective_date"], r["outstanding"]) for r in rows]


async def last_period(conn: asyncpg.Connection, tenant_id: str, rid: UUID) -> int:
    """Highest period already accrued (0 when none)."""
    value = await conn.fetchval(
        "SELECT COALESCE(MAX(period_number), 0) FROM interest.accruals WHERE tenant_id = $1 AND receivable_id = $2",
        tenant_id,
        rid,
    )
    return int(value)


async def add_accrual(
    conn: asyncpg.Connection, tenant_id: str, rid: UUID, event_id: UUID, period: Period, *, published: bool
) -> bool:
    """One row per (receivable, period): a replay or a second worker's tick inserts nothing."""
    done = await conn.fetchval(
        """INSERT INTO interest.accruals (tenant_id, receivable_id, period_number, event_id, period_start, period_end,
               principal_basis, annual_rate, amount, published) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)
           ON CONFLICT DO NOTHING RETURNING 1""",
        tenant_id,
        rid,
        period.number,
        event_id,
        period.start,
        period.end,
        period.basis,
        period.rate,
        period.amount,
        published,
    )
    return done is not None


async def open_receivables(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Receivables with principal still owed, for the daily tick."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT * FROM interest.receivables WHERE principal > principal_recovered ORDER BY tenant_id, receivable_id"
    )
    return rows


async def unpublished(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Accruals the tick wrote but has not yet seen acknowledged by the broker."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT a.*, r.account_key, r.payer_id, r.reference, r.policy FROM interest.accruals a
           JOIN interest.receivables r USING (tenant_id, receivable_id) WHERE NOT a.published
           ORDER BY a.tenant_id, a.receivable_id, a.period_number"""
    )
    return rows


async def mark_published(conn: asyncpg.Connection, tenant_id: str, rid: UUID, period_number: int) -> None:
    """The broker acknowledged the accrual's event."""
    await conn.execute(
        """UPDATE interest.accruals SET published = true
           WHERE tenant_id = $1 AND receivable_id = $2 AND period_number = $3""",
        tenant_id,
        rid,
        period_number,
    )
