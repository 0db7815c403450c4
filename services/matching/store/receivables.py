"""SQL for receivables (``matching.receivables``), their identifiers (``receivable_keys``) and timeline
(``receivable_history``). Which change a piece of evidence makes is the engine's decision, not this module's."""

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from uuid import UUID

from contracts.events import OverpaymentDetected
from services.matching.domain import Balance, Candidate
from services.matching.records import Receivable
from services.matching.store._base import RECEIVABLE_COLUMNS, PgBase, receivable_of


class PgReceivables(PgBase):
    """Receivables, keys and history."""

    async def lock_receivable(self, tenant_id: str, rid: UUID) -> Receivable | None:
        row = await self.conn.fetchrow(
            f"""SELECT {RECEIVABLE_COLUMNS} FROM matching.receivables
                WHERE tenant_id = $1 AND receivable_id = $2 FOR UPDATE""",  # noqa: S608 (a fixed column list)
            tenant_id,
            rid,
        )
        return None if row is None else receivable_of(row)

    async def open_receivable(self, tenant_id: str, account: str, op: OverpaymentDetected) -> None:
        await self.conn.execute(
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

    async def note_facts(
        self,
        tenant_id: str,
        rid: UUID,
        duplicate: bool,
        original_payment_date: date | None,
        identified_on: date | None,
    ) -> None:
        await self.conn.execute(
            """UPDATE matching.receivables SET duplicate = duplicate OR $3,
                   original_payment_date = LEAST(original_payment_date, $4::date),
                   identified_on = LEAST(identified_on, $5::date)
               WHERE tenant_id = $1 AND receivable_id = $2""",
            tenant_id,
            rid,
            duplicate,
            original_payment_date,
            identified_on,
        )

    async def grow(self, tenant_id: str, rid: UUID, principal: Decimal, determination_date: date) -> None:
        await self.conn.execute(
            """UPDATE matching.receivables SET principal = GREATEST(principal, $3::numeric),
                   determination_date = $4::date
               WHERE tenant_id = $1 AND receivable_id = $2""",
            tenant_id,
            rid,
            principal,
            determination_date,
        )

    async def add_keys(
        self, tenant_id: str, account: str, rid: UUID, keys: Sequence[tuple[str, str]]
    ) -> None:
        await self.conn.executemany(
            """INSERT INTO matching.receivable_keys (tenant_id, account_key, kind, key, receivable_id)
               VALUES ($1,$2,$3,$4,$5) ON CONFLICT DO NOTHING""",
            [(tenant_id, account, kind, key, rid) for kind, key in keys],
        )

    async def receivable_keys(self, tenant_id: str, rid: UUID) -> list[str]:
        rows = await self.conn.fetch(
            """SELECT key FROM matching.receivable_keys WHERE tenant_id = $1 AND receivable_id = $2
               GROUP BY key ORDER BY key COLLATE "C" """,
            tenant_id,
            rid,
        )
        return [str(r["key"]) for r in rows]

    async def resolve(
        self, tenant_id: str, account: str, candidates: Sequence[tuple[str, str]]
    ) -> tuple[list[UUID], str | None]:
        for kind, key in candidates:
            rows = await self.conn.fetch(
                """SELECT DISTINCT receivable_id FROM matching.receivable_keys
                   WHERE tenant_id = $1 AND account_key = $2 AND kind = $3 AND key = $4
                   ORDER BY receivable_id""",
                tenant_id,
                account,
                kind,
                key,
            )
            if rows:
                return [r["receivable_id"] for r in rows], kind
        return [], None

    async def find_by_key(self, tenant_id: str, payer_id: str, key: str) -> list[UUID]:
        rows = await self.conn.fetch(
            """SELECT DISTINCT k.receivable_id FROM matching.receivable_keys k
               JOIN matching.receivables r USING (tenant_id, receivable_id)
               WHERE k.tenant_id = $1 AND r.payer_id = $2 AND k.key = $3 AND k.kind IN ('reference', 'icn')
                 AND r.merged_into IS NULL
               ORDER BY k.receivable_id""",
            tenant_id,
            payer_id,
            key,
        )
        return [r["receivable_id"] for r in rows]

    async def open_candidates(self, tenant_id: str, account: str) -> list[Candidate]:
        rows = await self.conn.fetch(
            """SELECT r.receivable_id, r.principal, r.determination_date,
                      r.principal + r.interest_accrued - r.principal_recovered - r.interest_recovered - r.written_off
                          AS open_balance,
                      COALESCE(array_agg(k.key ORDER BY k.key COLLATE "C") FILTER (WHERE k.key IS NOT NULL), '{}')
                          AS keys
               FROM matching.receivables r
               LEFT JOIN matching.receivable_keys k USING (tenant_id, receivable_id)
               WHERE r.tenant_id = $1 AND r.account_key = $2 AND NOT r.paused AND r.merged_into IS NULL
               GROUP BY r.receivable_id, r.principal, r.determination_date, r.principal_recovered, r.interest_accrued,
                        r.interest_recovered, r.written_off, r.reference
               HAVING r.principal + r.interest_accrued - r.principal_recovered - r.interest_recovered - r.written_off > 0
               ORDER BY r.determination_date, r.reference COLLATE "C", r.receivable_id""",
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

    async def save_balance(self, tenant_id: str, rid: UUID, balance: Balance, status: str) -> None:
        await self.conn.execute(
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
        self,
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
        await self.conn.execute(
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

    async def latest_business_date(self, tenant_id: str, rids: Sequence[UUID]) -> date | None:
        found: date | None = await self.conn.fetchval(
            """SELECT max(effective_date) FROM matching.receivable_history
               WHERE tenant_id = $1 AND receivable_id = ANY($2::uuid[])""",
            tenant_id,
            list(rids),
        )
        return found

    async def merge_into(self, tenant_id: str, absorbed: UUID, survivor: UUID, on: date) -> None:
        await self.conn.execute(
            "UPDATE matching.allocations SET receivable_id = $3 WHERE tenant_id = $1 AND receivable_id = $2",
            tenant_id,
            absorbed,
            survivor,
        )
        await self.conn.execute(
            """INSERT INTO matching.receivable_keys (tenant_id, account_key, kind, key, receivable_id)
               SELECT tenant_id, account_key, kind, key, $3 FROM matching.receivable_keys
               WHERE tenant_id = $1 AND receivable_id = $2 ON CONFLICT DO NOTHING""",
            tenant_id,
            absorbed,
            survivor,
        )
        await self.conn.execute(
            "DELETE FROM matching.receivable_keys WHERE tenant_id = $1 AND receivable_id = $2",
            tenant_id,
            absorbed,
        )
        await self.conn.execute(
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
        await self.conn.execute(
            """UPDATE matching.receivables SET merged_into = $3, merged_on = $4, principal = 0, written_off = 0,
                   principal_recovered = 0, interest_recovered = 0, refunded = 0, paused = false, status = 'merged'
               WHERE tenant_id = $1 AND receivable_id = $2""",
            tenant_id,
            absorbed,
            survivor,
            on,
        )

    async def mark_written_off_in_full(self, tenant_id: str, rid: UUID, on: date) -> None:
        await self.conn.execute(
            """UPDATE matching.receivables SET written_off_in_full = GREATEST(written_off_in_full, $3::date)
               WHERE tenant_id = $1 AND receivable_id = $2""",
            tenant_id,
            rid,
            on,
        )
