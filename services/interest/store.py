"""Interest's tables (schema ``interest``): receivables as seen from events, their change history, accrual
postings, timelines, repayment plans and recoupment alerts.

A repository and nothing more: SQL in, frozen dataclasses out (``ledger`` and ``domain`` values, and the
read-only view rows below), no decisions. The batch path reads everything a batch needs in a constant number of
queries (:meth:`InterestStore.load`) and writes each changed row once (:meth:`InterestStore.write`), so the
statements a batch costs do not grow with its size.
"""

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg

from policies.facts import ErsPlan
from services.interest.domain import Change, Posted
from services.interest.ledger import (
    Account,
    Key,
    NewAlert,
    NewChange,
    NewPosting,
    Receivable,
    Schedule,
    installments_json,
)
from shared.db import unnest_columns

RECEIVABLE_COLUMNS = """tenant_id, receivable_id, account_key, payer_id, reference, policy, determination_date,
    principal, principal_recovered, status, paid_on, duplicate, identified_on, recovery_schedule, policy_applied,
    accrued_through, next_due, policy_reason, policy_source"""

IN_BATCH = "(tenant_id, receivable_id) IN (SELECT * FROM unnest($1::text[], $2::uuid[]))"
"""The receivables of a batch, given as two parallel arrays (tenants, receivable ids)."""


@dataclass(frozen=True, slots=True)
class Writes:
    """Everything a batch changes, each row once: the final state of the receivables it changed (and whether
    each is new), history appended in arrival order, postings, alerts, the latest timeline and plan of each."""

    rows: Sequence[tuple[Receivable, bool]]
    history: Sequence[NewChange]
    postings: Sequence[NewPosting]
    alerts: Sequence[NewAlert]
    timelines: Sequence[tuple[Key, Sequence[tuple[str, date]]]]
    plans: Sequence[tuple[Key, ErsPlan]]


@dataclass(frozen=True, slots=True)
class PeriodView:
    """Net interest of one period for staff, described by its latest version."""

    period_number: int
    amount: Decimal
    postings: int
    period_start: date
    period_end: date
    due_date: date
    principal_basis: Decimal
    annual_rate: Decimal


@dataclass(frozen=True, slots=True)
class AlertView:
    """A recoupment alert as staff read it."""

    kind: str
    rules: tuple[str, ...]
    observed_on: date
    amount: Decimal
    detail: str


def _schedule(raw: str | None) -> Schedule | None:
    """Matching's dated recovery schedule stored on a receivable row, or None when it never sent one."""
    if raw is None:
        return None
    return tuple((date.fromisoformat(d), Decimal(i), Decimal(p), kind) for d, i, p, kind in json.loads(raw))


def _schedule_json(schedule: Schedule | None) -> str | None:
    if schedule is None:
        return None
    return json.dumps([[d.isoformat(), str(i), str(p), kind] for d, i, p, kind in schedule])


def _receivable(r: asyncpg.Record) -> Receivable:
    return Receivable(
        r["tenant_id"], r["receivable_id"], r["account_key"], r["payer_id"], r["reference"], r["policy"],
        r["determination_date"], r["principal"], r["principal_recovered"], r["status"], r["paid_on"],
        r["duplicate"], r["identified_on"], _schedule(r["recovery_schedule"]), r["policy_applied"],
        r["accrued_through"], r["next_due"], r["policy_reason"], r["policy_source"],
    )  # fmt: skip


def _change(r: asyncpg.Record) -> Change:
    return Change(
        str(r["event_id"]),
        r["effective_date"],
        r["event_type"],
        r["status"],
        r["change_amount"],
        r["principal"],
        r["principal_recovered"],
        r["interest_recovered"],
    )


def _plan(granted_on: date, installments: str) -> ErsPlan:
    return ErsPlan(
        granted_on, tuple((date.fromisoformat(d), Decimal(a)) for d, a in json.loads(installments))
    )


def _keys(keys: Iterable[Key]) -> list[list[Any]]:
    return unnest_columns(2, keys)


class InterestStore:
    """Interest's repository: receivable changes, postings, timelines, repayment plans and alerts; no decisions."""

    async def load(self, conn: asyncpg.Connection, keys: Sequence[Key]) -> dict[Key, Account]:
        """Every receivable of a batch with its history, postings, plan and alerts, in five queries whatever
        the batch's size. The rows are locked for the rest of the transaction, in receivable order so two
        workers never deadlock: the tick and the event path never post the same correction twice. A key with
        no row yet gets an account without one (its first change opens it)."""
        args = _keys(sorted(set(keys)))
        rows = await conn.fetch(
            f"""SELECT {RECEIVABLE_COLUMNS} FROM interest.receivables WHERE {IN_BATCH}
                ORDER BY tenant_id, receivable_id FOR UPDATE""",  # noqa: S608 - constant fragments only
            *args,
        )
        history = await conn.fetch(
            f"""SELECT tenant_id, receivable_id, event_id, effective_date, event_type, status, change_amount,
                       principal, principal_recovered, interest_recovered
                FROM interest.principal_history WHERE {IN_BATCH} ORDER BY seq""",  # noqa: S608 - constant fragments only
            *args,
        )
        posted = await conn.fetch(
            f"""SELECT tenant_id, receivable_id, period_number, sum(amount) AS total, max(version) AS version,
                       (array_agg(annual_rate ORDER BY version DESC))[1] AS rate,
                       (array_agg(period_start ORDER BY version DESC))[1] AS period_start,
                       (array_agg(period_end ORDER BY version DESC))[1] AS period_end
                FROM interest.accruals WHERE {IN_BATCH} GROUP BY tenant_id, receivable_id, period_number""",  # noqa: S608 - constant fragments only
            *args,
        )
        plans = await conn.fetch(
            f"""SELECT tenant_id, receivable_id, granted_on, installments FROM interest.repayment_plans
                WHERE {IN_BATCH}""",  # noqa: S608 - constant fragments only
            *args,
        )
        alerts = await conn.fetch(
            f"SELECT tenant_id, receivable_id, alert_id FROM interest.alerts WHERE {IN_BATCH}",  # noqa: S608
            *args,
        )

        def of(r: asyncpg.Record) -> Key:
            return (r["tenant_id"], r["receivable_id"])

        found = {of(r): _receivable(r) for r in rows}
        changes: dict[Key, list[Change]] = {}
        for r in history:
            changes.setdefault(of(r), []).append(_change(r))
        periods: dict[Key, dict[int, Posted]] = {}
        for r in posted:
            n = r["period_number"]
            periods.setdefault(of(r), {})[n] = Posted(
                n, r["total"], r["version"], r["rate"], r["period_start"], r["period_end"]
            )
        plan = {of(r): _plan(r["granted_on"], r["installments"]) for r in plans}
        raised: dict[Key, set[UUID]] = {}
        for r in alerts:
            raised.setdefault(of(r), set()).add(r["alert_id"])
        return {
            key: Account(
                key,
                found.get(key),
                tuple(changes.get(key, ())),
                periods.get(key, {}),
                plan.get(key),
                frozenset(raised.get(key, ())),
            )
            for key in set(keys)
        }

    async def write(self, conn: asyncpg.Connection, writes: Writes) -> None:
        """Write what a batch changed, one statement per table whatever the batch's size (none for a table it
        did not change), each row once.

        A receivable this batch believed new may have been opened meanwhile by another worker (two workers
        briefly holding one partition during a rebalance): that raises a serialization failure, which is
        transient, so the batch is rolled back and retried, and the retry reads the row under its lock."""
        await self._write_receivables(conn, writes.rows)
        if writes.history:
            await conn.execute(
                """INSERT INTO interest.principal_history (tenant_id, receivable_id, event_id, effective_date,
                       outstanding, event_type, status, change_amount, principal, principal_recovered,
                       interest_recovered)
                   SELECT tenant_id, receivable_id, event_id, effective_date, outstanding, event_type, status,
                          change_amount, principal, principal_recovered, interest_recovered
                   FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::date[], $5::numeric[], $6::text[],
                       $7::text[], $8::numeric[], $9::numeric[], $10::numeric[], $11::numeric[])
                       WITH ORDINALITY AS x(tenant_id, receivable_id, event_id, effective_date, outstanding,
                           event_type, status, change_amount, principal, principal_recovered, interest_recovered,
                           arrival)
                   ORDER BY arrival ON CONFLICT DO NOTHING""",
                *unnest_columns(
                    11,
                    (
                        (*h.key, h.event_id, c.effective_date, c.principal - c.principal_recovered, h.event_type,
                         c.status, c.change_amount, c.principal, c.principal_recovered, c.interest_recovered)
                        for h in writes.history
                        for c in (h.change,)
                    ),
                ),
            )  # fmt: skip
        if writes.postings:
            await conn.execute(
                """INSERT INTO interest.accruals (tenant_id, receivable_id, period_number, version, event_id,
                       period_start, period_end, due_date, principal_basis, annual_rate, amount, cause)
                   SELECT * FROM unnest($1::text[], $2::uuid[], $3::int[], $4::int[], $5::uuid[], $6::date[],
                       $7::date[], $8::date[], $9::numeric[], $10::numeric[], $11::numeric[], $12::text[])
                   ON CONFLICT DO NOTHING""",
                *unnest_columns(
                    12,
                    (
                        (*p.key, p.posting.period.number, p.posting.version, p.event_id, q.start, q.end, q.due,
                         q.basis, q.rate, p.posting.amount, p.cause)
                        for p in writes.postings
                        for q in (p.posting.period,)
                    ),
                ),
            )  # fmt: skip
        if writes.alerts:
            await conn.execute(
                """INSERT INTO interest.alerts (tenant_id, alert_id, receivable_id, kind, rules, observed_on,
                       amount, detail, source_event)
                   SELECT x.tenant_id, x.alert_id, x.receivable_id, x.kind, string_to_array(x.rules, chr(31)),
                          x.observed_on, x.amount, x.detail, x.source_event
                   FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::date[],
                       $7::numeric[], $8::text[], $9::text[])
                       AS x(tenant_id, alert_id, receivable_id, kind, rules, observed_on, amount, detail,
                           source_event)
                   ON CONFLICT DO NOTHING""",
                *unnest_columns(
                    9,
                    (
                        (a.key[0], a.alert_id, a.key[1], a.kind, "\x1f".join(a.rules), a.observed_on, a.amount,
                         a.detail, a.source_event)
                        for a in writes.alerts
                    ),
                ),
            )  # fmt: skip
        if writes.timelines:
            # Most changes leave a receivable's milestones as they were (a recovery moves no deadline): only the
            # milestones that differ are written, and those past the new timeline's end deleted, instead of
            # deleting and inserting every one of them on every change (467 rows written and 302 deleted per
            # 1 000 claim payments on the bench before; devtools/bench/README.md, session 13).
            await conn.execute(
                """DELETE FROM interest.timelines x
                   USING unnest($1::text[], $2::uuid[], $3::int[]) AS t(tenant_id, receivable_id, length)
                   WHERE x.tenant_id = t.tenant_id AND x.receivable_id = t.receivable_id
                     AND x.ordinal > t.length""",
                *unnest_columns(3, ((*key, len(milestones)) for key, milestones in writes.timelines)),
            )
            await conn.execute(
                """INSERT INTO interest.timelines AS x (tenant_id, receivable_id, ordinal, label, day)
                   SELECT * FROM unnest($1::text[], $2::uuid[], $3::int[], $4::text[], $5::date[])
                   ON CONFLICT (tenant_id, receivable_id, ordinal) DO UPDATE
                   SET label = EXCLUDED.label, day = EXCLUDED.day
                   WHERE (x.label, x.day) IS DISTINCT FROM (EXCLUDED.label, EXCLUDED.day)""",
                *unnest_columns(
                    5,
                    (
                        (*key, ordinal, label, day)
                        for key, milestones in writes.timelines
                        for ordinal, (label, day) in enumerate(milestones, start=1)
                    ),
                ),
            )
        if writes.plans:
            await conn.execute(
                """INSERT INTO interest.repayment_plans AS p (tenant_id, receivable_id, granted_on, installments)
                   SELECT * FROM unnest($1::text[], $2::uuid[], $3::date[], $4::jsonb[])
                   ON CONFLICT (tenant_id, receivable_id) DO UPDATE SET granted_on = EXCLUDED.granted_on,
                       installments = EXCLUDED.installments, recorded_at = now()""",
                *unnest_columns(
                    4, ((*key, plan.granted_on, installments_json(plan)) for key, plan in writes.plans)
                ),
            )

    async def _write_receivables(
        self, conn: asyncpg.Connection, rows: Sequence[tuple[Receivable, bool]]
    ) -> None:
        """Update the rows that existed (locked by :meth:`load`) and insert the new ones, in one statement."""
        if not rows:
            return
        written = await conn.fetchval(
            f"""WITH x AS (
                    SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
                        $7::date[], $8::numeric[], $9::numeric[], $10::text[], $11::date[], $12::bool[],
                        $13::date[], $14::jsonb[], $15::text[], $16::date[], $17::date[], $18::text[],
                        $19::text[], $20::bool[])
                        AS x({RECEIVABLE_COLUMNS}, known)
                ),
                changed AS (
                    UPDATE interest.receivables r SET account_key = x.account_key, payer_id = x.payer_id,
                        reference = x.reference, policy = x.policy, determination_date = x.determination_date,
                        principal = x.principal, principal_recovered = x.principal_recovered, status = x.status,
                        paid_on = x.paid_on, duplicate = x.duplicate, identified_on = x.identified_on,
                        recovery_schedule = x.recovery_schedule, policy_applied = x.policy_applied,
                        accrued_through = x.accrued_through, next_due = x.next_due,
                        policy_reason = x.policy_reason, policy_source = x.policy_source
                    FROM x WHERE x.known AND r.tenant_id = x.tenant_id AND r.receivable_id = x.receivable_id
                    RETURNING 1
                ),
                opened AS (
                    INSERT INTO interest.receivables ({RECEIVABLE_COLUMNS})
                    SELECT {RECEIVABLE_COLUMNS} FROM x WHERE NOT x.known ORDER BY tenant_id, receivable_id
                    ON CONFLICT DO NOTHING RETURNING 1
                )
                SELECT (SELECT count(*) FROM changed) + (SELECT count(*) FROM opened)""",  # noqa: S608 - constant fragments only
            *unnest_columns(
                20,
                (
                    (r.tenant_id, r.receivable_id, r.account_key, r.payer_id, r.reference, r.policy,
                     r.determination_date, r.principal, r.principal_recovered, r.status, r.paid_on, r.duplicate,
                     r.identified_on, _schedule_json(r.recovery_schedule), r.policy_applied, r.accrued_through,
                     r.next_due, r.policy_reason, r.policy_source, known)
                    for r, known in rows
                ),
            ),
        )  # fmt: skip
        if written != len(rows):
            raise asyncpg.exceptions.SerializationError(
                "a receivable this batch opens was opened by another worker meanwhile"
            )

    async def due_receivables(
        self, conn: asyncpg.Connection, day: date, tenants: Sequence[str] | None = None
    ) -> list[Key]:
        """Receivables whose next period has come due by ``day`` (optionally of some tenants only)."""
        rows = await conn.fetch(
            """SELECT tenant_id, receivable_id FROM interest.receivables
               WHERE next_due IS NOT NULL AND next_due <= $1 AND ($2::text[] IS NULL OR tenant_id = ANY($2::text[]))
               ORDER BY tenant_id, receivable_id""",
            day,
            list(tenants) if tenants is not None else None,
        )
        return [(r["tenant_id"], r["receivable_id"]) for r in rows]

    # --- read-only views for commands ----------------------------------------------------------------------------

    async def receivables_by_reference(
        self, conn: asyncpg.Connection, tenant_id: str, reference: str
    ) -> list[Receivable]:
        """Every receivable of a tenant with this reference (one per payer)."""
        rows = await conn.fetch(
            f"""SELECT {RECEIVABLE_COLUMNS} FROM interest.receivables WHERE tenant_id = $1 AND reference = $2
                ORDER BY payer_id""",  # noqa: S608 - constant fragments only
            tenant_id,
            reference,
        )
        return [_receivable(r) for r in rows]

    async def changes(self, conn: asyncpg.Connection, tenant_id: str, rid: UUID) -> list[Change]:
        """The receivable's changes in arrival order."""
        rows = await conn.fetch(
            """SELECT event_id, effective_date, event_type, status, change_amount, principal, principal_recovered,
                      interest_recovered FROM interest.principal_history
               WHERE tenant_id = $1 AND receivable_id = $2 ORDER BY seq""",
            tenant_id,
            rid,
        )
        return [_change(r) for r in rows]

    async def repayment_plan(self, conn: asyncpg.Connection, tenant_id: str, rid: UUID) -> ErsPlan | None:
        """The receivable's extended repayment schedule, if one was granted."""
        row = await conn.fetchrow(
            "SELECT granted_on, installments FROM interest.repayment_plans WHERE tenant_id = $1 AND receivable_id = $2",
            tenant_id,
            rid,
        )
        return None if row is None else _plan(row["granted_on"], row["installments"])

    async def stored_timeline(
        self, conn: asyncpg.Connection, tenant_id: str, rid: UUID
    ) -> list[tuple[str, date]]:
        """The receivable's milestones as last computed, as (label, day)."""
        rows = await conn.fetch(
            "SELECT label, day FROM interest.timelines WHERE tenant_id = $1 AND receivable_id = $2 ORDER BY ordinal",
            tenant_id,
            rid,
        )
        return [(r["label"], r["day"]) for r in rows]

    async def interest_by_period(
        self, conn: asyncpg.Connection, tenant_id: str, rid: UUID
    ) -> list[PeriodView]:
        """Net interest per period, described by its latest version."""
        rows = await conn.fetch(
            """SELECT period_number, sum(amount) AS amount, count(*) AS postings,
                      (array_agg(period_start ORDER BY version DESC))[1] AS period_start,
                      (array_agg(period_end ORDER BY version DESC))[1] AS period_end,
                      (array_agg(due_date ORDER BY version DESC))[1] AS due_date,
                      (array_agg(principal_basis ORDER BY version DESC))[1] AS principal_basis,
                      (array_agg(annual_rate ORDER BY version DESC))[1] AS annual_rate
               FROM interest.accruals WHERE tenant_id = $1 AND receivable_id = $2
               GROUP BY period_number ORDER BY period_number""",
            tenant_id,
            rid,
        )
        return [PeriodView(**dict(r)) for r in rows]

    async def alerts_of(self, conn: asyncpg.Connection, tenant_id: str, rid: UUID) -> list[AlertView]:
        """Recoupment alerts raised for the receivable."""
        rows = await conn.fetch(
            """SELECT kind, rules, observed_on, amount, detail FROM interest.alerts
               WHERE tenant_id = $1 AND receivable_id = $2 ORDER BY observed_on, kind""",
            tenant_id,
            rid,
        )
        return [
            AlertView(r["kind"], tuple(r["rules"]), r["observed_on"], r["amount"], r["detail"]) for r in rows
        ]
