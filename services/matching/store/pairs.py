"""SQL for PLB pairs (``matching.adjustments``) and the staff actions waiting for their receivable
(``matching.pending_actions``)."""

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from uuid import UUID

from contracts.events import ProviderAdjustmentReceived
from contracts.money import ZERO
from services.matching.records import Displaced, StoredPair
from services.matching.store._base import PAIR_COLUMNS, PgBase, pair_of


class PgPairs(PgBase):
    """PLB pairs, their buckets, and pending staff actions."""

    async def save_adjustment(
        self,
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
        await self.conn.execute(
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

    async def parked_recoveries(self, tenant_id: str, account: str, keys: list[str]) -> list[StoredPair]:
        rows = await self.conn.fetch(
            f"""SELECT {PAIR_COLUMNS} FROM matching.adjustments WHERE tenant_id = $1 AND account_key = $2
                   AND (unmatched_amount > 0 OR awaiting_refund > 0) AND reason_code = 'WO'
                   AND match_keys && $3::text[]
                ORDER BY payment_date, btrim(trace_number) COLLATE "C", segment_ordinal, pair_index, adjustment_id
                FOR UPDATE""",  # noqa: S608 (fixed columns)
            tenant_id,
            account,
            keys,
        )
        return [pair_of(r) for r in rows]

    async def reduce_unmatched(
        self, tenant_id: str, adjustment_id: UUID, remaining: Decimal, reason: str, bucket: str = "allocated"
    ) -> None:
        await self.conn.execute(
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
        self, tenant_id: str, remittance_id: UUID, match_reference: str, reason_code: str
    ) -> list[StoredPair]:
        rows = await self.conn.fetch(
            f"""SELECT {PAIR_COLUMNS} FROM matching.adjustments WHERE tenant_id = $1 AND remittance_id = $2
                   AND match_reference = $3 AND reason_code = $4
                ORDER BY segment_ordinal, pair_index FOR UPDATE""",  # noqa: S608 (fixed columns)
            tenant_id,
            remittance_id,
            match_reference,
            reason_code,
        )
        return [pair_of(r) for r in rows]

    async def reclassify_as_refund(self, tenant_id: str, adjustment_id: UUID, reason: str) -> list[UUID]:
        await self._acknowledge_pair(tenant_id, adjustment_id, reason)
        return await self._offsets_to_refunds(tenant_id, adjustment_id)

    async def _acknowledge_pair(self, tenant_id: str, adjustment_id: UUID, reason: str) -> None:
        """The pair half of ``reclassify_as_refund``: its bucket and explanation."""
        await self.conn.execute(
            """UPDATE matching.adjustments SET bucket = 'refund_acknowledged', reason = $3
               WHERE tenant_id = $1 AND adjustment_id = $2""",
            tenant_id,
            adjustment_id,
            reason,
        )

    async def _offsets_to_refunds(self, tenant_id: str, adjustment_id: UUID) -> list[UUID]:
        """The allocation half of ``reclassify_as_refund``: the pair's offsets become refunds; the receivables
        they are on."""
        rows = await self.conn.fetch(
            """UPDATE matching.allocations SET kind = 'refund' WHERE tenant_id = $1 AND adjustment_id = $2
                   AND kind = 'offset' RETURNING receivable_id""",
            tenant_id,
            adjustment_id,
        )
        return sorted({r["receivable_id"] for r in rows})

    async def await_refund(self, tenant_id: str, adjustment_id: UUID, amount: Decimal, reason: str) -> None:
        await self.conn.execute(
            """UPDATE matching.adjustments SET awaiting_refund = awaiting_refund + $3::numeric,
                   unmatched_amount = unmatched_amount - $3::numeric, bucket = 'refund_acknowledged', reason = $4
               WHERE tenant_id = $1 AND adjustment_id = $2""",
            tenant_id,
            adjustment_id,
            amount,
            reason,
        )

    async def reduce_awaiting(
        self, tenant_id: str, adjustment_id: UUID, remaining: Decimal, reason: str
    ) -> None:
        await self.conn.execute(
            """UPDATE matching.adjustments SET awaiting_refund = $3::numeric, reason = $4, match_method = 'rematch'
               WHERE tenant_id = $1 AND adjustment_id = $2""",
            tenant_id,
            adjustment_id,
            remaining,
            reason,
        )

    async def deferral_in(self, tenant_id: str, remittance_id: UUID, keys: list[str]) -> bool:
        found = await self.conn.fetchval(
            """SELECT 1 FROM matching.adjustments WHERE tenant_id = $1 AND remittance_id = $2 AND reason_code = 'WO'
                   AND amount < 0 AND match_keys && $3::text[] LIMIT 1""",
            tenant_id,
            remittance_id,
            keys,
        )
        return found is not None

    async def displace_offsets_after(
        self, tenant_id: str, rid: UUID, after: date, amount: Decimal, reason: str
    ) -> list[Displaced]:
        rows = await self.conn.fetch(
            """SELECT l.allocation_id, l.adjustment_id, l.kind, l.to_interest + l.to_principal AS total
               FROM matching.allocations l JOIN matching.adjustments a
                 ON a.tenant_id = l.tenant_id AND a.adjustment_id = l.adjustment_id
               WHERE l.tenant_id = $1 AND l.receivable_id = $2 AND l.kind IN ('offset', 'refund')
                 AND l.effective_date > $3 AND l.to_interest + l.to_principal > 0
               ORDER BY l.effective_date DESC, btrim(a.trace_number) COLLATE "C" DESC, a.segment_ordinal DESC,
                        a.pair_index DESC, l.allocation_id DESC
               FOR UPDATE OF l, a""",
            tenant_id,
            rid,
            after,
        )
        touched: list[Displaced] = []
        left = amount
        for row in rows:
            if left <= 0:
                break
            take = min(left, row["total"])
            left -= take
            refund = row["kind"] == "refund"
            pair = await self._take_back(
                tenant_id,
                row["allocation_id"],
                row["adjustment_id"],
                row["total"] - take,
                take,
                refund,
                reason,
            )
            if pair is not None:
                touched.append(Displaced(pair, take, refund))
        return touched

    async def withdraw_guesses(
        self, tenant_id: str, account: str, rid: UUID, keys: list[str], reason: str
    ) -> list[Displaced]:
        rows = await self.conn.fetch(
            """SELECT l.allocation_id, l.adjustment_id, l.receivable_id, l.kind,
                      l.to_interest + l.to_principal AS total
               FROM matching.allocations l JOIN matching.adjustments a
                 ON a.tenant_id = l.tenant_id AND a.adjustment_id = l.adjustment_id
               WHERE l.tenant_id = $1 AND a.account_key = $2 AND l.receivable_id <> $3
                 AND l.kind IN ('offset', 'refund') AND l.to_interest + l.to_principal > 0
                 AND a.reason_code = 'WO' AND a.match_method LIKE 'scored:%' AND a.match_keys && $4::text[]
               ORDER BY a.payment_date, btrim(a.trace_number) COLLATE "C", a.segment_ordinal, a.pair_index,
                        l.allocation_id
               FOR UPDATE OF l, a""",
            tenant_id,
            account,
            rid,
            keys,
        )
        touched: list[Displaced] = []
        for row in rows:
            refund = row["kind"] == "refund"
            pair = await self._take_back(
                tenant_id,
                row["allocation_id"],
                row["adjustment_id"],
                ZERO,
                row["total"],
                refund,
                reason,
                True,
            )
            if pair is not None:
                touched.append(Displaced(pair, row["total"], refund, row["receivable_id"]))
        return touched

    async def _take_back(
        self,
        tenant_id: str,
        allocation_id: UUID,
        adjustment_id: UUID,
        kept: Decimal,
        taken: Decimal,
        refund: bool,
        reason: str,
        unguess: bool = False,
    ) -> StoredPair | None:
        """An allocation keeps ``kept``; its pair gets ``taken`` back: unmatched (re-explained by ``reason``),
        or awaiting as a refund; ``unguess`` clears the scored method that applied it."""
        await self.conn.execute(
            """UPDATE matching.allocations SET to_interest = LEAST(to_interest, $3::numeric),
                   to_principal = $3::numeric - LEAST(to_interest, $3::numeric)
               WHERE tenant_id = $1 AND allocation_id = $2""",
            tenant_id,
            allocation_id,
            kept,
        )
        pair = await self.conn.fetchrow(
            f"""UPDATE matching.adjustments SET
                   match_method = CASE WHEN $6 THEN NULL ELSE match_method END,
                   unmatched_amount = unmatched_amount + CASE WHEN $5 THEN 0 ELSE $3::numeric END,
                   awaiting_refund = awaiting_refund + CASE WHEN $5 THEN $3::numeric ELSE 0 END,
                   reason = CASE WHEN $5 THEN reason ELSE $4 END,
                   bucket = CASE WHEN NOT $5 AND unmatched_amount + $3::numeric = amount THEN 'unmatched'
                                 ELSE bucket END
                WHERE tenant_id = $1 AND adjustment_id = $2 RETURNING {PAIR_COLUMNS}""",  # noqa: S608
            tenant_id,
            adjustment_id,
            taken,
            reason,
            refund,
            unguess,
        )
        return None if pair is None else pair_of(pair)

    async def park_action(
        self,
        tenant_id: str,
        action_id: UUID,
        account: str,
        payer_id: str,
        reference: str,
        effective: date,
        envelope: bytes,
    ) -> None:
        await self.conn.execute(
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

    async def take_pending_actions(self, tenant_id: str, payer_id: str, keys: Sequence[str]) -> list[bytes]:
        rows = await self.conn.fetch(
            """DELETE FROM matching.pending_actions
               WHERE tenant_id = $1 AND payer_id = $2 AND reference = ANY($3::text[])
               RETURNING envelope, effective_date, received_at, action_id""",
            tenant_id,
            payer_id,
            list(keys),
        )
        ordered = sorted(rows, key=lambda r: (r["effective_date"], r["received_at"], str(r["action_id"])))
        return [bytes(r["envelope"]) for r in ordered]
