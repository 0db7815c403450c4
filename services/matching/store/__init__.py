"""Matching's tables (schema ``matching``) behind the :class:`~services.matching.repository.MatchingRepository`
port: SQL in, frozen records out, no decisions. Every write is keyed by a deterministic id or guarded by a row
lock. One module per table group (``receivables``, ``pairs``, ``money``, ``forwarding``); the ledger-wide reads
of the stage's timers (not the engine's) are here."""

from datetime import date
from decimal import Decimal

import asyncpg

from services.matching.store.forwarding import PgForwarding
from services.matching.store.money import PgMoney
from services.matching.store.pairs import PgPairs
from services.matching.store.receivables import PgReceivables
from services.matching.store.work_items import PgWorkItems

__all__ = ["PgMatchingRepository", "open_totals", "stale_forwarding_balances"]


class PgMatchingRepository(PgReceivables, PgPairs, PgMoney, PgForwarding, PgWorkItems):
    """The matching ledger in PostgreSQL, on one connection inside the caller's transaction."""


async def stale_forwarding_balances(conn: asyncpg.Connection, opened_before: date) -> list[asyncpg.Record]:
    """Forwarding balances still open that were opened before a date, every tenant (the forwarding-balance
    timer's scan, read as rows: tenant_id, account_key, reference, opened_amount, applied_amount, opened_on,
    payer_id)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT f.*, (SELECT payer_id FROM matching.adjustments a WHERE a.tenant_id = f.tenant_id
                        AND a.account_key = f.account_key LIMIT 1) AS payer_id
           FROM matching.forwarding_balances f
           WHERE opened_amount > applied_amount AND opened_on < $1 ORDER BY opened_on, reference""",
        opened_before,
    )
    return rows


async def open_totals(
    conn: asyncpg.Connection,
) -> tuple[dict[str, tuple[int, Decimal]], Decimal, date | None]:
    """For the gauges, across the ledger: (open receivables and their balance per payer policy, unmatched
    withheld dollars, payment date of the oldest withholding still unmatched)."""
    rows = await conn.fetch(
        """SELECT policy, count(*) FILTER (WHERE b > 0) AS n, COALESCE(sum(b) FILTER (WHERE b > 0), 0) AS balance
           FROM (SELECT policy,
                        principal + interest_accrued - principal_recovered - interest_recovered - written_off AS b
                 FROM matching.receivables) r
           GROUP BY policy"""
    )
    queue = await conn.fetchrow(
        """SELECT COALESCE(sum(unmatched_amount), 0) AS unmatched,
                  min(payment_date) FILTER (WHERE unmatched_amount > 0) AS oldest
           FROM matching.adjustments"""
    )
    assert queue is not None
    return {r["policy"]: (int(r["n"]), r["balance"]) for r in rows}, queue["unmatched"], queue["oldest"]
