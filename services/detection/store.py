"""Detection's tables (schema ``detection``): claim history, evidence, merged receivables."""

from datetime import date
from decimal import Decimal
from uuid import UUID

import asyncpg

from contracts.events import ClaimPaymentReceived
from services.detection.domain import Evidence, KnownReceivable


class DetectionStore:
    """Detection's repository: claim history, evidence and merged receivables in, rows and domain values out."""

    async def save_claim(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        account: str,
        event_id: UUID,
        claim: ClaimPaymentReceived,
    ) -> None:
        """Remember a claim so later reversals, corrections and duplicates can be paired with it."""
        await conn.execute(
            """INSERT INTO detection.claims (tenant_id, event_id, account_key, remittance_id, claim_ordinal, payer_id,
                   patient_control_number, status_code, paid, payer_claim_control_number, original_reference,
                   payment_date, payload)
               VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13::jsonb) ON CONFLICT DO NOTHING""",
            tenant_id,
            event_id,
            account,
            claim.remittance_id,
            claim.claim_ordinal,
            claim.payer_id,
            claim.patient_control_number,
            claim.status_code,
            claim.paid,
            claim.payer_claim_control_number,
            claim.original_reference,
            claim.payment_date,
            claim.model_dump_json(),
        )

    async def related_claims(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        account: str,
        event_id: UUID,
        claim: ClaimPaymentReceived,
    ) -> tuple[list[ClaimPaymentReceived], list[ClaimPaymentReceived]]:
        """The account's claims sharing this claim's CLP01, or whose CLP07 is its CLP07 or REF*F8, split into those
        dated before it and those dated after it (already seen because files arrive in any order), oldest first."""
        icns = [r for r in (claim.payer_claim_control_number, claim.original_reference) if r]
        rows = await conn.fetch(
            """SELECT payload, (payment_date, remittance_id::text, claim_ordinal) < ($6, $7::text, $8) AS earlier
               FROM detection.claims
               WHERE tenant_id = $1 AND account_key = $2 AND event_id <> $3
                 AND (patient_control_number = $4 OR payer_claim_control_number = ANY($5::text[]))
               ORDER BY payment_date, remittance_id::text, claim_ordinal""",
            tenant_id,
            account,
            event_id,
            claim.patient_control_number,
            icns,
            claim.payment_date,
            str(claim.remittance_id),
            claim.claim_ordinal,
        )
        claims = [(ClaimPaymentReceived.model_validate_json(r["payload"]), r["earlier"]) for r in rows]
        return [c for c, earlier in claims if earlier], [c for c, earlier in claims if not earlier]

    async def add_evidence(
        self, conn: asyncpg.Connection, tenant_id: str, receivable_id: UUID, ev: Evidence
    ) -> bool:
        """Record evidence once; False when it was already recorded (a replay)."""
        inserted = await conn.fetchval(
            """INSERT INTO detection.evidence (tenant_id, evidence_id, receivable_id, rule, channel, amount,
                   evidence_date, source, subject, reference, claim_references)
               VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11) ON CONFLICT DO NOTHING RETURNING 1""",
            tenant_id,
            ev.evidence_id,
            receivable_id,
            ev.rule,
            ev.channel,
            ev.amount,
            ev.evidence_date,
            ev.source,
            ev.subject,
            ev.reference,
            list(ev.claim_references),
        )
        return inserted is not None

    async def evidence_of(
        self, conn: asyncpg.Connection, tenant_id: str, receivable_id: UUID
    ) -> list[tuple[str, str, Decimal, date]]:
        """All evidence of one receivable as (channel, subject, amount, date)."""
        rows = await conn.fetch(
            """SELECT channel, subject, amount, evidence_date FROM detection.evidence
               WHERE tenant_id = $1 AND receivable_id = $2""",
            tenant_id,
            receivable_id,
        )
        return [(r["channel"], r["subject"], r["amount"], r["evidence_date"]) for r in rows]

    async def note_reversal(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        account: str,
        event_id: UUID,
        claim: ClaimPaymentReceived,
    ) -> None:
        """Remember a reversal until a correction pairs it."""
        await conn.execute(
            """INSERT INTO detection.reversals (tenant_id, claim_event_id, account_key, payer_id, icn, amount,
                   reversed_on) VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT DO NOTHING""",
            tenant_id,
            event_id,
            account,
            claim.payer_id,
            claim.payer_claim_control_number,
            -claim.paid,
            claim.payment_date,
        )

    async def pair_reversal(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        account: str,
        correction_id: UUID,
        claim: ClaimPaymentReceived,
    ) -> None:
        """A correction arrived: its reversal (same ICN via REF*F8/CLP07, or same CLP01) is no longer pending."""
        icns = [r for r in (claim.original_reference, claim.payer_claim_control_number) if r]
        await conn.execute(
            """UPDATE detection.reversals r SET corrected_by = $3
               FROM detection.claims c
               WHERE r.tenant_id = $1 AND r.account_key = $2 AND r.corrected_by IS NULL
                 AND c.tenant_id = r.tenant_id AND c.event_id = r.claim_event_id
                 AND (r.icn = ANY($4::text[]) OR c.patient_control_number = $5)
                 AND r.reversed_on <= $6""",
            tenant_id,
            account,
            correction_id,
            icns,
            claim.patient_control_number,
            claim.payment_date,
        )

    async def uncorrected_reversals(self, conn: asyncpg.Connection, before: date) -> list[asyncpg.Record]:
        """Reversals older than ``before`` that no correction has paired."""
        rows: list[asyncpg.Record] = await conn.fetch(
            """SELECT * FROM detection.reversals WHERE corrected_by IS NULL AND reversed_on < $1
               ORDER BY reversed_on, claim_event_id""",
            before,
        )
        return rows

    async def upsert_receivable(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        receivable_id: UUID,
        account: str,
        payer_id: str,
        reference: str,
        policy: str,
        principal: Decimal,
        determination: date,
    ) -> None:
        """The merged view of a receivable: principal and determination date after all evidence so far."""
        await conn.execute(
            """INSERT INTO detection.receivables (tenant_id, receivable_id, account_key, payer_id, reference, policy,
                   principal, determination_date) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)
               ON CONFLICT (tenant_id, receivable_id) DO UPDATE
                   SET principal = EXCLUDED.principal, determination_date = EXCLUDED.determination_date""",
            tenant_id,
            receivable_id,
            account,
            payer_id,
            reference,
            policy,
            principal,
            determination,
        )

    async def lock_account(self, conn: asyncpg.Connection, tenant_id: str, account: str) -> None:
        """Serialize identity decisions of one account for the rest of the transaction: Kafka already orders an
        account on one partition, and this keeps it so while two workers briefly hold it during a rebalance."""
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 0))", tenant_id, account
        )

    async def evidence_recorded(self, conn: asyncpg.Connection, tenant_id: str, evidence_id: UUID) -> bool:
        """True when this evidence was already recorded (a replay changes nothing)."""
        found = await conn.fetchval(
            "SELECT 1 FROM detection.evidence WHERE tenant_id = $1 AND evidence_id = $2",
            tenant_id,
            evidence_id,
        )
        return found is not None

    async def owners(
        self, conn: asyncpg.Connection, tenant_id: str, account: str, keys: tuple[str, ...]
    ) -> list[KnownReceivable]:
        """The account's live receivables known by any of these identifiers."""
        rows = await conn.fetch(
            """SELECT DISTINCT r.receivable_id, r.reference, r.determination_date
               FROM detection.receivable_aliases a
               JOIN detection.receivables r USING (tenant_id, receivable_id)
               WHERE a.tenant_id = $1 AND a.account_key = $2 AND a.key = ANY($3::text[]) AND r.merged_into IS NULL""",
            tenant_id,
            account,
            list(keys),
        )
        return [KnownReceivable(r["receivable_id"], r["reference"], r["determination_date"]) for r in rows]

    async def add_aliases(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        account: str,
        receivable_id: UUID,
        keys: tuple[str, ...],
    ) -> None:
        """Remember the identifiers a receivable is known by."""
        await conn.execute(
            """INSERT INTO detection.receivable_aliases (tenant_id, account_key, key, receivable_id)
               SELECT $1, $2, k, $3 FROM unnest($4::text[]) AS k ON CONFLICT DO NOTHING""",
            tenant_id,
            account,
            receivable_id,
            list(keys),
        )

    async def merge(self, conn: asyncpg.Connection, tenant_id: str, absorbed: UUID, survivor: UUID) -> None:
        """Move an absorbed receivable's evidence and identifiers to the survivor and mark where it went."""
        await conn.execute(
            "UPDATE detection.evidence SET receivable_id = $3 WHERE tenant_id = $1 AND receivable_id = $2",
            tenant_id,
            absorbed,
            survivor,
        )
        await conn.execute(
            """INSERT INTO detection.receivable_aliases (tenant_id, account_key, key, receivable_id)
               SELECT tenant_id, account_key, key, $3 FROM detection.receivable_aliases
               WHERE tenant_id = $1 AND receivable_id = $2 ON CONFLICT DO NOTHING""",
            tenant_id,
            absorbed,
            survivor,
        )
        await conn.execute(
            "DELETE FROM detection.receivable_aliases WHERE tenant_id = $1 AND receivable_id = $2",
            tenant_id,
            absorbed,
        )
        await conn.execute(
            "UPDATE detection.receivables SET merged_into = $3 WHERE tenant_id = $1 AND receivable_id = $2",
            tenant_id,
            absorbed,
            survivor,
        )
