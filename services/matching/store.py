"""Matching's tables (schema ``matching``): receivables, their keys and history, PLB pairs, allocations,
forwarding balances, interest charges. Every write is keyed by a deterministic id or guarded by a row lock."""

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg

from contracts.events import OverpaymentDetected, ProviderAdjustmentReceived
from services.matching.domain import Balance, Candidate, Dated


def balance_of(row: asyncpg.Record) -> Balance:
    """The domain view of a receivable row."""
    return Balance(
        row["principal"],
        row["principal_recovered"],
        row["interest_accrued"],
        row["interest_recovered"],
        row["refunded"],
        row["written_off"],
        row["paused"],
    )


async def lock_receivable(conn: asyncpg.Connection, tenant_id: str, rid: UUID) -> asyncpg.Record | None:
    """Fetch a receivable for update, so two workers never apply money to it at once."""
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT * FROM matching.receivables WHERE tenant_id = $1 AND receivable_id = $2 FOR UPDATE",
        tenant_id,
        rid,
    )
    return row


def _earlier(new: date | None, known: date | None) -> bool:
    """True when ``new`` is a date and moves ``known`` earlier (or is the first one known)."""
    return new is not None and (known is None or new < known)


async def open_or_grow(
    conn: asyncpg.Connection, tenant_id: str, account: str, op: OverpaymentDetected
) -> tuple[str | None, asyncpg.Record]:
    """Create the receivable or raise its principal to the merged principal; say which happened.

    Evidence that moves none of the money but adds a fact the policies read (a duplicate payment, an earlier
    overpaid payment date, the date the provider identified it) is announced too, as ``ReceivableUpdated``:
    interest and notification learn facts only from receivable changes."""
    row = await lock_receivable(conn, tenant_id, op.receivable_id)
    change: str | None = None
    if row is None:
        await conn.execute(
            """INSERT INTO matching.receivables (tenant_id, receivable_id, account_key, payer_id, reference, policy,
                   determination_date, principal, status, original_payment_date, duplicate, identified_on)
               VALUES ($1,$2,$3,$4,$5,$6,$7,$8,'open',$9,$10,$11)""",
            tenant_id,
            op.receivable_id,
            account,
            op.payer_id,
            op.reference,
            op.policy,
            op.determination_date,
            op.principal,
            op.original_payment_date,
            op.duplicate,
            op.identified_on,
        )
        change = "ReceivableOpened"
    else:
        await conn.execute(
            """UPDATE matching.receivables SET duplicate = duplicate OR $3,
                   original_payment_date = LEAST(original_payment_date, $4::date),
                   identified_on = LEAST(identified_on, $5::date)
               WHERE tenant_id = $1 AND receivable_id = $2""",
            tenant_id,
            op.receivable_id,
            op.duplicate,
            op.original_payment_date,
            op.identified_on,
        )
        if (
            (op.duplicate and not row["duplicate"])
            or _earlier(op.original_payment_date, row["original_payment_date"])
            or _earlier(op.identified_on, row["identified_on"])
        ):
            change = "ReceivableUpdated"
    if row is not None and (
        op.principal > row["principal"] or op.determination_date != row["determination_date"]
    ):
        # Detection merges every piece of evidence of the receivable, in order, and its determination date
        # rule (a letter's date when there is one) is the truth: a letter arriving after the 835 moves day 0.
        await conn.execute(
            """UPDATE matching.receivables SET principal = GREATEST(principal, $3::numeric),
                   determination_date = $4::date
               WHERE tenant_id = $1 AND receivable_id = $2""",
            tenant_id,
            op.receivable_id,
            op.principal,
            op.determination_date,
        )
        change = "ReceivableIncreased"
    keys = [
        ("reference", op.reference),
        *(("icn", k) for k in op.claim_references),
        *(("pcn", k) for k in op.patient_control_numbers),
        *(("trace", k) for k in op.trace_numbers),
    ]
    await conn.executemany(
        """INSERT INTO matching.receivable_keys (tenant_id, account_key, kind, key, receivable_id)
           VALUES ($1,$2,$3,$4,$5) ON CONFLICT DO NOTHING""",
        [(tenant_id, account, kind, key, op.receivable_id) for kind, key in keys if key],
    )
    fresh = await lock_receivable(conn, tenant_id, op.receivable_id)
    assert fresh is not None
    return change, fresh


async def receivable_keys(conn: asyncpg.Connection, tenant_id: str, rid: UUID) -> list[str]:
    """Every key of a receivable (reference, ICNs, patient control numbers, traces)."""
    rows = await conn.fetch(
        "SELECT DISTINCT key FROM matching.receivable_keys WHERE tenant_id = $1 AND receivable_id = $2",
        tenant_id,
        rid,
    )
    return [r["key"] for r in rows]


async def resolve(
    conn: asyncpg.Connection, tenant_id: str, account: str, candidates: Sequence[tuple[str, str]]
) -> tuple[list[UUID], str | None]:
    """The receivables named by the first key kind that names any: (ids, how it was found)."""
    for kind, key in candidates:
        rows = await conn.fetch(
            """SELECT DISTINCT receivable_id FROM matching.receivable_keys
               WHERE tenant_id = $1 AND account_key = $2 AND kind = $3 AND key = $4""",
            tenant_id,
            account,
            kind,
            key,
        )
        if rows:
            return [r["receivable_id"] for r in rows], kind
    return [], None


async def open_candidates(conn: asyncpg.Connection, tenant_id: str, account: str) -> list[Candidate]:
    """The account's receivables with money still owed and recoupment not paused, oldest first."""
    rows = await conn.fetch(
        """SELECT r.receivable_id, r.principal, r.determination_date,
                  r.principal + r.interest_accrued - r.principal_recovered - r.interest_recovered - r.written_off
                      AS open_balance,
                  COALESCE(array_agg(k.key) FILTER (WHERE k.key IS NOT NULL), '{}') AS keys
           FROM matching.receivables r
           LEFT JOIN matching.receivable_keys k USING (tenant_id, receivable_id)
           WHERE r.tenant_id = $1 AND r.account_key = $2 AND NOT r.paused AND r.merged_into IS NULL
           GROUP BY r.receivable_id, r.principal, r.determination_date, r.principal_recovered, r.interest_accrued,
                    r.interest_recovered, r.written_off, r.reference
           HAVING r.principal + r.interest_accrued - r.principal_recovered - r.interest_recovered - r.written_off > 0
           ORDER BY r.determination_date, r.reference""",
        tenant_id,
        account,
    )
    return [
        Candidate(
            str(r["receivable_id"]),
            tuple(r["keys"]),
            r["open_balance"],
            r["principal"],
            r["determination_date"],
        )
        for r in rows
    ]


async def save_balance(
    conn: asyncpg.Connection, tenant_id: str, rid: UUID, balance: Balance, status: str
) -> None:
    """Store a receivable's new totals (in the transaction that wrote the allocation or accrual behind them)."""
    await conn.execute(
        """UPDATE matching.receivables SET principal_recovered = $3, interest_accrued = $4, interest_recovered = $5,
               refunded = $6, written_off = $7, paused = $8,
               status = CASE WHEN merged_into IS NULL THEN $9 ELSE 'merged' END
           WHERE tenant_id = $1 AND receivable_id = $2""",
        tenant_id,
        rid,
        balance.principal_recovered,
        balance.interest_accrued,
        balance.interest_recovered,
        balance.refunded,
        balance.written_off,
        balance.paused,
        status,
    )


async def add_history(
    conn: asyncpg.Connection,
    tenant_id: str,
    rid: UUID,
    event_id: UUID,
    change: str,
    amount: Decimal,
    effective: date,
    source: str,
    status: str,
    balance: Decimal,
) -> None:
    """One line of the receivable's timeline, with the document line behind it."""
    await conn.execute(
        """INSERT INTO matching.receivable_history (tenant_id, receivable_id, event_id, change, amount,
               effective_date, source, status, balance) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)
           ON CONFLICT DO NOTHING""",
        tenant_id,
        rid,
        event_id,
        change,
        amount,
        effective,
        source,
        status,
        balance,
    )


async def save_adjustment(
    conn: asyncpg.Connection,
    tenant_id: str,
    account: str,
    adjustment_id: UUID,
    adj: ProviderAdjustmentReceived,
    *,
    match_reference: str | None,
    match_keys: list[str],
    bucket: str,
    unmatched: Decimal,
    reason: str,
    method: str | None = None,
    suggestion: str | None = None,
) -> None:
    """Record a PLB pair and the bucket its money went to."""
    await conn.execute(
        """INSERT INTO matching.adjustments (tenant_id, adjustment_id, account_key, remittance_id, payer_id,
               trace_number, payment_date, segment_ordinal, pair_index, reason_code, reference, match_reference,
               amount, bucket, unmatched_amount, reason, match_keys, match_method, suggestion)
           VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19) ON CONFLICT DO NOTHING""",
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
        match_keys,
        method,
        suggestion,
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
    kind: str = "offset",
    remittance_id: UUID | None = None,
) -> None:
    """Record which part of a PLB pair (or refund, or claim netting) went to which receivable: the audit trail
    of every dollar."""
    await conn.execute(
        """INSERT INTO matching.allocations (tenant_id, allocation_id, adjustment_id, receivable_id, to_interest,
               to_principal, effective_date, kind, remittance_id) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)""",
        tenant_id,
        allocation_id,
        adjustment_id,
        rid,
        to_interest,
        to_principal,
        effective,
        kind,
        remittance_id,
    )


async def deferral_in(conn: asyncpg.Connection, tenant_id: str, remittance_id: UUID, keys: list[str]) -> bool:
    """Whether a remittance holds a negative WO naming one of these keys (the payer deferred the recovery)."""
    found = await conn.fetchval(
        """SELECT 1 FROM matching.adjustments WHERE tenant_id = $1 AND remittance_id = $2 AND reason_code = 'WO'
               AND amount < 0 AND match_keys && $3::text[] LIMIT 1""",
        tenant_id,
        remittance_id,
        keys,
    )
    return found is not None


async def cancel_netting(conn: asyncpg.Connection, tenant_id: str, rid: UUID, remittance_id: UUID) -> Decimal:
    """A deferral in the netting remittance undoes the netting: zero its allocations; return what they held."""
    total = await conn.fetchval(
        """WITH netted AS (
               SELECT allocation_id, to_interest + to_principal AS amount FROM matching.allocations
               WHERE tenant_id = $1 AND receivable_id = $2 AND remittance_id = $3 AND kind = 'netting'
                 AND to_interest + to_principal > 0 FOR UPDATE),
           cleared AS (
               UPDATE matching.allocations a SET to_interest = 0, to_principal = 0 FROM netted
               WHERE a.tenant_id = $1 AND a.allocation_id = netted.allocation_id)
           SELECT COALESCE(sum(amount), 0) FROM netted""",
        tenant_id,
        rid,
        remittance_id,
    )
    return Decimal(total)


async def parked_recoveries(
    conn: asyncpg.Connection, tenant_id: str, account: str, keys: list[str]
) -> list[asyncpg.Record]:
    """Unmatched WO recoveries (and refunds acknowledged before their receivable was known) whose reference
    names one of these keys, oldest first (out-of-order arrival)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT * FROM matching.adjustments WHERE tenant_id = $1 AND account_key = $2
               AND (unmatched_amount > 0 OR awaiting_refund > 0) AND reason_code = 'WO' AND match_keys && $3::text[]
           ORDER BY payment_date, segment_ordinal, pair_index FOR UPDATE""",
        tenant_id,
        account,
        keys,
    )
    return rows


async def reduce_unmatched(
    conn: asyncpg.Connection,
    tenant_id: str,
    adjustment_id: UUID,
    remaining: Decimal,
    reason: str,
    bucket: str = "allocated",
) -> None:
    """A parked recovery was (partly) re-matched: it moves to ``bucket`` (applied to a receivable, or the
    acknowledgement of a refund staff had recorded) with what is left still unmatched — the same bucket it
    would have had if its receivable had been known when it arrived."""
    await conn.execute(
        """UPDATE matching.adjustments SET unmatched_amount = $3::numeric, reason = $4, match_method = 'rematch',
               bucket = CASE WHEN $3::numeric < amount THEN $5 ELSE bucket END
           WHERE tenant_id = $1 AND adjustment_id = $2""",
        tenant_id,
        adjustment_id,
        remaining,
        reason,
        bucket,
    )


async def sibling_pairs(
    conn: asyncpg.Connection, tenant_id: str, remittance_id: UUID, match_reference: str, reason_code: str
) -> list[asyncpg.Record]:
    """PLB pairs of the same remittance with the same receivable reference and code (72 ↔ WO pairing)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT * FROM matching.adjustments WHERE tenant_id = $1 AND remittance_id = $2 AND match_reference = $3
               AND reason_code = $4 ORDER BY segment_ordinal, pair_index FOR UPDATE""",
        tenant_id,
        remittance_id,
        match_reference,
        reason_code,
    )
    return rows


async def reclassify_as_refund(
    conn: asyncpg.Connection, tenant_id: str, adjustment_id: UUID, reason: str
) -> list[asyncpg.Record]:
    """A WO turned out to be the payer acknowledging a refund (72 on the same reference): its allocations
    are refunds, not cash withheld. Returns the allocations changed."""
    await conn.execute(
        """UPDATE matching.adjustments SET bucket = 'refund_acknowledged', reason = $3
           WHERE tenant_id = $1 AND adjustment_id = $2""",
        tenant_id,
        adjustment_id,
        reason,
    )
    rows: list[asyncpg.Record] = await conn.fetch(
        """UPDATE matching.allocations SET kind = 'refund' WHERE tenant_id = $1 AND adjustment_id = $2
               AND kind = 'offset' RETURNING receivable_id, to_interest, to_principal""",
        tenant_id,
        adjustment_id,
    )
    return rows


async def recorded_refunds(conn: asyncpg.Connection, tenant_id: str, rid: UUID) -> list[asyncpg.Record]:
    """Refund checks staff recorded on a receivable (``offsetstream action refund-sent``) that no payer PLB
    pair has acknowledged yet, oldest first, locked."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT l.allocation_id, l.receivable_id, l.to_interest, l.to_principal, l.effective_date
           FROM matching.allocations l
           WHERE l.tenant_id = $1 AND l.receivable_id = $2 AND l.kind = 'refund'
             AND l.to_interest + l.to_principal > 0
             AND NOT EXISTS (SELECT 1 FROM matching.adjustments a
                             WHERE a.tenant_id = l.tenant_id AND a.adjustment_id = l.adjustment_id)
           ORDER BY l.effective_date, l.allocation_id FOR UPDATE""",
        tenant_id,
        rid,
    )
    return rows


async def hand_over_refund(
    conn: asyncpg.Connection,
    tenant_id: str,
    recorded: asyncpg.Record,
    allocation_id: UUID,
    adjustment_id: UUID,
    amount: Decimal,
) -> None:
    """Move ``amount`` of a staff-recorded refund onto the PLB pair that acknowledges it: the same money on
    the same check date, now explained by the payer's line (so it is counted once, and the pair is not left
    unexplained). The interest/principal split is re-derived by the caller's re-split."""
    to_principal = min(amount, recorded["to_principal"])
    to_interest = amount - to_principal
    await conn.execute(
        """UPDATE matching.allocations SET to_interest = to_interest - $3, to_principal = to_principal - $4
           WHERE tenant_id = $1 AND allocation_id = $2""",
        tenant_id,
        recorded["allocation_id"],
        to_interest,
        to_principal,
    )
    await save_allocation(
        conn,
        tenant_id,
        allocation_id,
        adjustment_id,
        recorded["receivable_id"],
        to_interest,
        to_principal,
        recorded["effective_date"],
        "refund",
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


async def forwarding_balances(conn: asyncpg.Connection, tenant_id: str, account: str) -> list[asyncpg.Record]:
    """The account's forwarding balances, locked, oldest first (a positive FB chooses among them)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT reference, opened_amount, applied_amount, opened_on FROM matching.forwarding_balances
           WHERE tenant_id = $1 AND account_key = $2 ORDER BY opened_on NULLS FIRST, reference FOR UPDATE""",
        tenant_id,
        account,
    )
    return rows


async def forwarding_applied(
    conn: asyncpg.Connection, tenant_id: str, account: str, reference: str
) -> Decimal:
    """What has been applied to one forwarding balance so far."""
    applied = await conn.fetchval(
        """SELECT applied_amount FROM matching.forwarding_balances
           WHERE tenant_id = $1 AND account_key = $2 AND reference = $3""",
        tenant_id,
        account,
        reference,
    )
    return Decimal(applied or 0)


async def misplaced_applications(
    conn: asyncpg.Connection, tenant_id: str, account: str, reference: str, opened_on: date
) -> list[asyncpg.Record]:
    """Positive FB pairs of the account applied elsewhere that belong to the balance ``reference`` just
    opened, oldest first: those naming it (they arrived before it and were applied to another balance), then
    those without a reference, paid on or after the opening, parked on a balance nothing ever opened."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT a.adjustment_id, a.amount, a.match_reference, NULLIF(btrim(a.reference), '') = $3 AS named
           FROM matching.adjustments a
           LEFT JOIN matching.forwarding_balances f ON f.tenant_id = a.tenant_id AND f.account_key = a.account_key
                AND f.reference = a.match_reference
           WHERE a.tenant_id = $1 AND a.account_key = $2 AND a.reason_code = 'FB' AND a.amount > 0
             AND a.match_reference IS DISTINCT FROM $3
             AND (NULLIF(btrim(a.reference), '') = $3
                  OR (NULLIF(btrim(a.reference), '') IS NULL AND a.payment_date >= $4
                      AND COALESCE(f.opened_amount, 0) = 0))
           ORDER BY named DESC, a.payment_date, a.segment_ordinal, a.pair_index FOR UPDATE OF a""",
        tenant_id,
        account,
        reference,
        opened_on,
    )
    return rows


async def move_forwarding_application(
    conn: asyncpg.Connection,
    tenant_id: str,
    account: str,
    adjustment_id: UUID,
    amount: Decimal,
    from_reference: str | None,
    to_reference: str,
    reason: str,
) -> None:
    """Re-home a positive FB's application to the balance it belongs to; drop a balance row left empty
    (nothing opened, nothing applied), which only ever held misplaced money."""
    if from_reference is not None:
        await conn.execute(
            """UPDATE matching.forwarding_balances SET applied_amount = applied_amount - $4
               WHERE tenant_id = $1 AND account_key = $2 AND reference = $3""",
            tenant_id,
            account,
            from_reference,
            amount,
        )
        await conn.execute(
            """DELETE FROM matching.forwarding_balances WHERE tenant_id = $1 AND account_key = $2
                   AND reference = $3 AND opened_amount = 0 AND applied_amount = 0""",
            tenant_id,
            account,
            from_reference,
        )
    await forwarding(conn, tenant_id, account, to_reference, Decimal("0.00"), amount, None)
    await conn.execute(
        """UPDATE matching.adjustments SET match_reference = $3, reason = $4
           WHERE tenant_id = $1 AND adjustment_id = $2""",
        tenant_id,
        adjustment_id,
        to_reference,
        reason,
    )


async def stale_forwarding_balances(conn: asyncpg.Connection, opened_before: date) -> list[asyncpg.Record]:
    """Forwarding balances still open that were opened before a date."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT f.*, (SELECT payer_id FROM matching.adjustments a WHERE a.tenant_id = f.tenant_id
                        AND a.account_key = f.account_key LIMIT 1) AS payer_id
           FROM matching.forwarding_balances f
           WHERE opened_amount > applied_amount AND opened_on < $1 ORDER BY opened_on, reference""",
        opened_before,
    )
    return rows


async def add_interest(
    conn: asyncpg.Connection, tenant_id: str, event_id: UUID, rid: UUID, amount: Decimal, due: date
) -> bool:
    """Record an accrual (or a signed correction) once, with its due date; False on a replay."""
    done = await conn.fetchval(
        """INSERT INTO matching.interest_charges (tenant_id, event_id, receivable_id, amount, due_date)
           VALUES ($1,$2,$3,$4,$5) ON CONFLICT DO NOTHING RETURNING 1""",
        tenant_id,
        event_id,
        rid,
        amount,
        due,
    )
    return done is not None


async def dated_money(conn: asyncpg.Connection, tenant_id: str, rid: UUID) -> tuple[list[Dated], list[Dated]]:
    """A receivable's interest charges (by due date) and recoveries (by effective date), for re-splitting."""
    charges = await conn.fetch(
        """SELECT event_id::text AS key, due_date AS day, amount FROM matching.interest_charges
           WHERE tenant_id = $1 AND receivable_id = $2""",
        tenant_id,
        rid,
    )
    recoveries = await conn.fetch(
        """SELECT allocation_id::text AS key, effective_date AS day, to_interest + to_principal AS amount
           FROM matching.allocations WHERE tenant_id = $1 AND receivable_id = $2""",
        tenant_id,
        rid,
    )
    return (
        [Dated(r["key"], r["day"], r["amount"]) for r in charges],
        [Dated(r["key"], r["day"], r["amount"]) for r in recoveries],
    )


async def set_splits(
    conn: asyncpg.Connection, tenant_id: str, splits: dict[str, tuple[Decimal, Decimal]]
) -> None:
    """Store re-computed interest/principal splits of allocations (only rows whose split changed move)."""
    await conn.executemany(
        """UPDATE matching.allocations SET to_interest = $3, to_principal = $4
           WHERE tenant_id = $1 AND allocation_id = $2::uuid AND (to_interest, to_principal) <> ($3, $4)""",
        [(tenant_id, key, interest, principal) for key, (interest, principal) in splits.items()],
    )


async def recovery_schedule(conn: asyncpg.Connection, tenant_id: str, rid: UUID) -> list[asyncpg.Record]:
    """The receivable's recoveries summed per business date."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT effective_date, kind, sum(to_interest) AS to_interest, sum(to_principal) AS to_principal
           FROM matching.allocations WHERE tenant_id = $1 AND receivable_id = $2
           GROUP BY effective_date, kind HAVING sum(to_interest) <> 0 OR sum(to_principal) <> 0
           ORDER BY effective_date, kind""",
        tenant_id,
        rid,
    )
    return rows


async def recovered_totals(conn: asyncpg.Connection, tenant_id: str, rid: UUID) -> asyncpg.Record:
    """Sums the receivable's balance is derived from."""
    row: asyncpg.Record | None = await conn.fetchrow(
        """SELECT COALESCE((SELECT sum(to_principal) FROM matching.allocations
                            WHERE tenant_id = $1 AND receivable_id = $2), 0) AS principal_recovered,
                  COALESCE((SELECT sum(to_interest) FROM matching.allocations
                            WHERE tenant_id = $1 AND receivable_id = $2), 0) AS interest_recovered,
                  COALESCE((SELECT sum(to_interest + to_principal) FROM matching.allocations
                            WHERE tenant_id = $1 AND receivable_id = $2 AND kind = 'refund'), 0) AS refunded,
                  COALESCE((SELECT sum(amount) FROM matching.interest_charges
                            WHERE tenant_id = $1 AND receivable_id = $2), 0) AS interest_accrued""",
        tenant_id,
        rid,
    )
    assert row is not None
    return row


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


def row_dict(row: asyncpg.Record) -> dict[str, Any]:
    """A record as a plain dict."""
    return dict(row.items())


async def merge_into(
    conn: asyncpg.Connection, tenant_id: str, absorbed: UUID, survivor: UUID, on: date
) -> None:
    """Move an absorbed receivable's recoveries (offsets, refunds, nettings), identifiers and write-offs to the
    survivor and close it as ``merged``. Its interest charges stay where they were posted: the interest stage
    reverses them there, once it reads the absorbed receivable's zero principal, and charges the survivor's
    own closed form — so the pair ends exactly as one receivable from the start would."""
    await conn.execute(
        "UPDATE matching.allocations SET receivable_id = $3 WHERE tenant_id = $1 AND receivable_id = $2",
        tenant_id,
        absorbed,
        survivor,
    )
    await conn.execute(
        """INSERT INTO matching.receivable_keys (tenant_id, account_key, kind, key, receivable_id)
           SELECT tenant_id, account_key, kind, key, $3 FROM matching.receivable_keys
           WHERE tenant_id = $1 AND receivable_id = $2 ON CONFLICT DO NOTHING""",
        tenant_id,
        absorbed,
        survivor,
    )
    await conn.execute(
        "DELETE FROM matching.receivable_keys WHERE tenant_id = $1 AND receivable_id = $2",
        tenant_id,
        absorbed,
    )
    await conn.execute(
        """UPDATE matching.receivables s SET written_off = s.written_off + a.written_off,
               paused = s.paused OR a.paused,
               duplicate = s.duplicate OR a.duplicate,
               original_payment_date = LEAST(s.original_payment_date, a.original_payment_date),
               identified_on = LEAST(s.identified_on, a.identified_on)
           FROM matching.receivables a
           WHERE s.tenant_id = $1 AND s.receivable_id = $3 AND a.tenant_id = $1 AND a.receivable_id = $2""",
        tenant_id,
        absorbed,
        survivor,
    )
    await conn.execute(
        """UPDATE matching.receivables SET merged_into = $3, merged_on = $4, principal = 0, written_off = 0,
               principal_recovered = 0, interest_recovered = 0, refunded = 0, paused = false, status = 'merged'
           WHERE tenant_id = $1 AND receivable_id = $2""",
        tenant_id,
        absorbed,
        survivor,
        on,
    )


async def live_receivable(conn: asyncpg.Connection, tenant_id: str, rid: UUID) -> asyncpg.Record | None:
    """A receivable for update, following merges to the one that absorbed it (a staff action or a lookup may
    name a receivable by a reference that now lives in another)."""
    for _ in range(32):
        row = await lock_receivable(conn, tenant_id, rid)
        if row is None or row["merged_into"] is None:
            return row
        rid = row["merged_into"]
    return None


async def find_by_key(conn: asyncpg.Connection, tenant_id: str, payer_id: str, key: str) -> list[UUID]:
    """Live receivables of a payer known by this identifier (reference or payer claim number), any account."""
    rows = await conn.fetch(
        """SELECT DISTINCT k.receivable_id FROM matching.receivable_keys k
           JOIN matching.receivables r USING (tenant_id, receivable_id)
           WHERE k.tenant_id = $1 AND r.payer_id = $2 AND k.key = $3 AND k.kind IN ('reference', 'icn')
             AND r.merged_into IS NULL""",
        tenant_id,
        payer_id,
        key,
    )
    return [r["receivable_id"] for r in rows]


async def netting_remittances(conn: asyncpg.Connection, tenant_id: str, rid: UUID) -> list[UUID]:
    """Remittances whose claim amounts still count as recovering this receivable (live netting allocations)."""
    rows = await conn.fetch(
        """SELECT DISTINCT remittance_id FROM matching.allocations
           WHERE tenant_id = $1 AND receivable_id = $2 AND kind = 'netting' AND to_interest + to_principal > 0""",
        tenant_id,
        rid,
    )
    return [r["remittance_id"] for r in rows]


async def latest_business_date(conn: asyncpg.Connection, tenant_id: str, rids: Sequence[UUID]) -> date | None:
    """The latest business date any change of these receivables carried (how far their ledgers have run)."""
    found: date | None = await conn.fetchval(
        """SELECT max(effective_date) FROM matching.receivable_history
           WHERE tenant_id = $1 AND receivable_id = ANY($2::uuid[])""",
        tenant_id,
        list(rids),
    )
    return found


async def await_refund(
    conn: asyncpg.Connection, tenant_id: str, adjustment_id: UUID, amount: Decimal, reason: str
) -> None:
    """A WO of a 72 + WO refund pair whose receivable is not known: its money is a refund acknowledged for an
    unknown receivable, kept apart from the work queue until the receivable appears."""
    await conn.execute(
        """UPDATE matching.adjustments SET awaiting_refund = awaiting_refund + $3::numeric,
               unmatched_amount = unmatched_amount - $3::numeric, bucket = 'refund_acknowledged', reason = $4
           WHERE tenant_id = $1 AND adjustment_id = $2""",
        tenant_id,
        adjustment_id,
        amount,
        reason,
    )


async def reduce_awaiting(
    conn: asyncpg.Connection, tenant_id: str, adjustment_id: UUID, remaining: Decimal, reason: str
) -> None:
    """A refund that waited for its receivable was (partly) applied to it."""
    await conn.execute(
        """UPDATE matching.adjustments SET awaiting_refund = $3::numeric, reason = $4, match_method = 'rematch'
           WHERE tenant_id = $1 AND adjustment_id = $2""",
        tenant_id,
        adjustment_id,
        remaining,
        reason,
    )


async def displace_offsets_after(
    conn: asyncpg.Connection, tenant_id: str, rid: UUID, after: date, amount: Decimal, reason: str
) -> list[asyncpg.Record]:
    """Take up to ``amount`` back from the receivable's offsets dated after ``after``, latest first, into their
    PLB pairs' unmatched amounts; return the pairs touched (with ``displaced``).

    Money is applied in business-date order: a recovery the payer dated earlier (claim netting in the
    reversal's own remittance) arriving after a later-dated recoupment already consumed the balance still
    comes first, and the later recoupment is what exceeds the open balance — as it would have in order."""
    rows = await conn.fetch(
        """SELECT allocation_id, adjustment_id, to_interest + to_principal AS total FROM matching.allocations
           WHERE tenant_id = $1 AND receivable_id = $2 AND kind = 'offset' AND effective_date > $3
             AND to_interest + to_principal > 0
           ORDER BY effective_date DESC, allocation_id DESC FOR UPDATE""",
        tenant_id,
        rid,
        after,
    )
    touched: list[asyncpg.Record] = []
    left = amount
    for row in rows:
        if left <= 0:
            break
        take = min(left, row["total"])
        left -= take
        await conn.execute(
            """UPDATE matching.allocations SET to_interest = LEAST(to_interest, $3::numeric),
                   to_principal = $3::numeric - LEAST(to_interest, $3::numeric)
               WHERE tenant_id = $1 AND allocation_id = $2""",
            tenant_id,
            row["allocation_id"],
            row["total"] - take,
        )
        pair = await conn.fetchrow(
            """UPDATE matching.adjustments SET unmatched_amount = unmatched_amount + $3::numeric, reason = $4,
                   bucket = CASE WHEN unmatched_amount + $3::numeric = amount THEN 'unmatched' ELSE bucket END
               WHERE tenant_id = $1 AND adjustment_id = $2 RETURNING *, $3::numeric AS displaced""",
            tenant_id,
            row["adjustment_id"],
            take,
            reason,
        )
        if pair is not None:
            touched.append(pair)
    return touched


async def park_action(
    conn: asyncpg.Connection,
    tenant_id: str,
    action_id: UUID,
    account: str,
    payer_id: str,
    reference: str,
    effective: date,
    envelope: bytes,
) -> None:
    """Keep a staff action whose receivable is not known yet (see migration 0014)."""
    await conn.execute(
        """INSERT INTO matching.pending_actions (tenant_id, action_id, account_key, payer_id, reference,
               effective_date, envelope) VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT DO NOTHING""",
        tenant_id,
        action_id,
        account,
        payer_id,
        reference,
        effective,
        envelope,
    )


async def take_pending_actions(
    conn: asyncpg.Connection, tenant_id: str, payer_id: str, keys: Sequence[str]
) -> list[bytes]:
    """Remove and return the waiting staff actions that name one of these identifiers, in business-date order."""
    rows = await conn.fetch(
        """DELETE FROM matching.pending_actions WHERE tenant_id = $1 AND payer_id = $2 AND reference = ANY($3::text[])
           RETURNING envelope, effective_date, received_at, action_id""",
        tenant_id,
        payer_id,
        list(keys),
    )
    ordered = sorted(rows, key=lambda r: (r["effective_date"], r["received_at"], str(r["action_id"])))
    return [bytes(r["envelope"]) for r in ordered]


async def mark_written_off_in_full(conn: asyncpg.Connection, tenant_id: str, rid: UUID, on: date) -> None:
    """Remember that the whole open balance was written off on ``on`` (see migration 0014)."""
    await conn.execute(
        """UPDATE matching.receivables SET written_off_in_full = GREATEST(written_off_in_full, $3::date)
           WHERE tenant_id = $1 AND receivable_id = $2""",
        tenant_id,
        rid,
        on,
    )


async def keep_refund_credit(
    conn: asyncpg.Connection, tenant_id: str, action_id: UUID, rid: UUID, effective: date, amount: Decimal
) -> None:
    """Keep the part of a refund check that exceeded the balance known on its date (migration 0014)."""
    await conn.execute(
        """INSERT INTO matching.refund_credits (tenant_id, action_id, receivable_id, effective_date, amount)
           VALUES ($1,$2,$3,$4,$5) ON CONFLICT (tenant_id, action_id) DO UPDATE SET amount = EXCLUDED.amount""",
        tenant_id,
        action_id,
        rid,
        effective,
        amount,
    )


async def refund_credits(
    conn: asyncpg.Connection, tenant_id: str, rid: UUID, due_by: date
) -> list[asyncpg.Record]:
    """Credits of refund checks dated on or after ``due_by`` (they can pay a charge due by then)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT * FROM matching.refund_credits WHERE tenant_id = $1 AND receivable_id = $2 AND amount > 0
             AND effective_date >= $3 ORDER BY effective_date, action_id FOR UPDATE""",
        tenant_id,
        rid,
        due_by,
    )
    return rows


async def unnamed_applications(
    conn: asyncpg.Connection, tenant_id: str, account: str, reference: str
) -> list[asyncpg.Record]:
    """Positive FB pairs applied to the balance ``reference`` that do not name it (no reference, or another
    key), latest first: what an FB naming that balance may ask to move elsewhere."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT adjustment_id, amount, match_reference FROM matching.adjustments
           WHERE tenant_id = $1 AND account_key = $2 AND reason_code = 'FB' AND amount > 0
             AND match_reference = $3 AND NULLIF(btrim(reference), '') IS DISTINCT FROM $3
           ORDER BY payment_date DESC, segment_ordinal DESC, pair_index DESC FOR UPDATE""",
        tenant_id,
        account,
        reference,
    )
    return rows


async def over_recovered(conn: asyncpg.Connection, tenant_id: str, rid: UUID) -> Decimal:
    """How much more the receivable's allocations hold than it owes in all (principal not written off plus
    the interest charged): positive only after a correction lowered interest that recoveries had paid."""
    excess = await conn.fetchval(
        """SELECT COALESCE((SELECT sum(to_interest + to_principal) FROM matching.allocations
                            WHERE tenant_id = $1 AND receivable_id = $2), 0)
                  - r.principal + r.written_off
                  - COALESCE((SELECT sum(amount) FROM matching.interest_charges
                              WHERE tenant_id = $1 AND receivable_id = $2), 0)
           FROM matching.receivables r WHERE r.tenant_id = $1 AND r.receivable_id = $2""",
        tenant_id,
        rid,
    )
    return Decimal(excess or 0)
