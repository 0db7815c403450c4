"""Detection's tables (schema ``detection``): claim history, evidence, merged receivables.

A repository: SQL in, frozen values out (``domain``/``identity`` dataclasses and contract objects), no
decisions. Every method is set-based: a batch of claims, or the evidence of a batch, costs the same statements
whatever its size (rows go in as ``unnest`` arrays, related rows come out in one query).
"""

from collections.abc import Sequence
from datetime import date
from uuid import UUID

import asyncpg

from contracts.envelope import Envelope
from contracts.events import ClaimPaymentReceived
from services.detection.domain import KnownEvidence, PendingReversal
from services.detection.identity import Alias, DetectedReceivable, Key, Placement, Snapshot, Wanted
from shared.db import unnest_columns


class DetectionStore:
    """Detection's repository: claim history, evidence and merged receivables in, rows and domain values out."""

    async def save_claims(
        self, conn: asyncpg.Connection, claims: Sequence[Envelope[ClaimPaymentReceived]]
    ) -> set[UUID]:
        """Remember claims (one statement) so later reversals, corrections and duplicates can be paired with
        them; the event ids of those not remembered before. The payload is the claim's contract JSON, kept as
        text (migration 0031: nothing in SQL reads inside it, and :meth:`related_claims` parses it back)."""
        rows = await conn.fetch(
            """INSERT INTO detection.claims (tenant_id, event_id, account_key, remittance_id, claim_ordinal, payer_id,
                   patient_control_number, status_code, paid, payer_claim_control_number, original_reference,
                   payment_date, payload)
               SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::uuid[], $5::int[], $6::text[],
                   $7::text[], $8::text[], $9::numeric[], $10::text[], $11::text[], $12::date[], $13::text[])
               ON CONFLICT DO NOTHING RETURNING event_id""",
            *unnest_columns(
                13,
                (
                    (
                        e.tenant_id,
                        e.event_id,
                        e.account_key,
                        e.payload.remittance_id,
                        e.payload.claim_ordinal,
                        e.payload.payer_id,
                        e.payload.patient_control_number,
                        e.payload.status_code,
                        e.payload.paid,
                        e.payload.payer_claim_control_number,
                        e.payload.original_reference,
                        e.payload.payment_date,
                        e.payload.model_dump_json(),
                    )
                    for e in claims
                ),
            ),
        )
        return {r["event_id"] for r in rows}

    async def related_claims(
        self,
        conn: asyncpg.Connection,
        claims: Sequence[Envelope[ClaimPaymentReceived]],
        saved: set[UUID],
    ) -> list[tuple[list[ClaimPaymentReceived], list[ClaimPaymentReceived]]]:
        """For each claim (in one query): the account's claims sharing its CLP01, or whose CLP07 is its CLP07 or
        REF*F8, split into those dated before it and those dated after it (already seen because files arrive in
        any order), oldest first. A claim of the batch is seen only by the claims after it (``saved``: those
        this batch remembered first), as if they had arrived one by one.

        The two ways of being related are two index look-ups (``claims_by_pcn``, ``claims_by_icn``, keyed by
        account and number, the tenant checked on the row: migration 0032), the second leaving out what the
        first found, rather than one join on ``pcn = … OR icn IN (…)``: PostgreSQL can drive that join only by
        the account prefix and filters every claim the account ever had, so
        its cost grew with the account's history (210 claims read per claim at 20 000 claims, 15× the rows
        returned; devtools/bench/README.md, *PostgreSQL per statement*)."""
        if not claims:
            return []
        rows = await conn.fetch(
            """SELECT x.pos, c.event_id, c.payload,
                   (c.payment_date, c.remittance_id::text, c.claim_ordinal)
                       < (x.payment_date, x.remittance_id::text, x.claim_ordinal) AS earlier
               FROM unnest($1::int[], $2::text[], $3::text[], $4::uuid[], $5::text[], $6::text[], $7::text[],
                   $8::date[], $9::uuid[], $10::int[])
                   AS x(pos, tenant_id, account_key, event_id, pcn, icn1, icn2, payment_date, remittance_id,
                        claim_ordinal)
               CROSS JOIN LATERAL (
                   SELECT k.event_id, k.payload, k.payment_date, k.remittance_id, k.claim_ordinal
                   FROM detection.claims k
                   WHERE k.tenant_id = x.tenant_id AND k.account_key = x.account_key
                     AND k.patient_control_number = x.pcn
                   UNION ALL
                   SELECT k.event_id, k.payload, k.payment_date, k.remittance_id, k.claim_ordinal
                   FROM detection.claims k
                   WHERE k.tenant_id = x.tenant_id AND k.account_key = x.account_key
                     AND k.payer_claim_control_number IN (x.icn1, x.icn2) AND k.patient_control_number <> x.pcn
               ) c
               WHERE c.event_id <> x.event_id
               ORDER BY x.pos, c.payment_date, c.remittance_id::text, c.claim_ordinal""",
            *unnest_columns(
                10,
                (
                    (
                        pos,
                        e.tenant_id,
                        e.account_key,
                        e.event_id,
                        e.payload.patient_control_number,
                        e.payload.payer_claim_control_number or None,
                        e.payload.original_reference or None,
                        e.payload.payment_date,
                        e.payload.remittance_id,
                        e.payload.claim_ordinal,
                    )
                    for pos, e in enumerate(claims)
                ),
            ),
        )
        # A claim this batch remembered is seen only by the claims after it. Filtered here, not by joining the
        # batch's claims in the query: PostgreSQL ran that join as a nested loop over the whole batch for every
        # related row, 25 ms a call for batches of 700 claims (session 11).
        remembered = {(e.tenant_id, e.event_id): pos for pos, e in enumerate(claims) if e.event_id in saved}
        related: list[tuple[list[ClaimPaymentReceived], list[ClaimPaymentReceived]]] = [
            ([], []) for _ in claims
        ]
        for r in rows:
            at = remembered.get((claims[r["pos"]].tenant_id, r["event_id"]))
            if at is not None and at >= r["pos"]:
                continue
            prior, later = related[r["pos"]]
            (prior if r["earlier"] else later).append(ClaimPaymentReceived.model_validate_json(r["payload"]))
        return related

    async def note_reversals(
        self, conn: asyncpg.Connection, reversals: Sequence[Envelope[ClaimPaymentReceived]]
    ) -> set[UUID]:
        """Remember reversals until a correction pairs them (one statement); the claim event ids of those not
        remembered before."""
        if not reversals:
            return set()
        rows = await conn.fetch(
            """INSERT INTO detection.reversals (tenant_id, claim_event_id, account_key, payer_id, icn, amount,
                   reversed_on, patient_control_number)
               SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::numeric[],
                   $7::date[], $8::text[])
               ON CONFLICT DO NOTHING RETURNING claim_event_id""",
            *unnest_columns(
                8,
                (
                    (
                        e.tenant_id,
                        e.event_id,
                        e.account_key,
                        e.payload.payer_id,
                        e.payload.payer_claim_control_number,
                        -e.payload.paid,
                        e.payload.payment_date,
                        e.payload.patient_control_number,
                    )
                    for e in reversals
                ),
            ),
        )
        return {r["claim_event_id"] for r in rows}

    async def pair_reversals(
        self,
        conn: asyncpg.Connection,
        corrections: Sequence[tuple[int, Envelope[ClaimPaymentReceived]]],
        noted: Sequence[tuple[int, Envelope[ClaimPaymentReceived]]],
    ) -> None:
        """Corrections arrived (batch position, claim): each pending reversal of the account with the same ICN
        (via REF*F8/CLP07) or the same CLP01, dated no later, is paired with the first of them, in one
        statement. A reversal ``noted`` by this batch at a position is seen only by corrections after it.

        Reads ``detection.reversals`` alone (the reversal's CLP01 is kept with it, migration 0025): a join with
        ``detection.claims`` here was planned once per connection while the ledger was nearly empty and then
        read every claim of the tenant per pending reversal as the ledger grew."""
        if not corrections:
            return
        await conn.execute(
            """UPDATE detection.reversals r SET corrected_by = m.correction
               FROM (
                   SELECT DISTINCT ON (r.tenant_id, r.claim_event_id) r.tenant_id, r.claim_event_id, x.correction
                   FROM unnest($1::int[], $2::text[], $3::text[], $4::uuid[], $5::text[], $6::text[], $7::text[],
                       $8::date[]) AS x(pos, tenant_id, account_key, correction, pcn, icn1, icn2, payment_date)
                   JOIN detection.reversals r
                     ON r.tenant_id = x.tenant_id AND r.account_key = x.account_key AND r.corrected_by IS NULL
                    AND r.reversed_on <= x.payment_date
                   LEFT JOIN unnest($9::text[], $10::uuid[], $11::int[]) AS n(tenant_id, claim_event_id, pos)
                     ON n.tenant_id = r.tenant_id AND n.claim_event_id = r.claim_event_id
                   WHERE (r.icn IN (x.icn1, x.icn2) OR r.patient_control_number = x.pcn)
                     AND (n.pos IS NULL OR n.pos < x.pos)
                   ORDER BY r.tenant_id, r.claim_event_id, x.pos
               ) m
               WHERE r.tenant_id = m.tenant_id AND r.claim_event_id = m.claim_event_id""",
            *unnest_columns(
                8,
                (
                    (
                        pos,
                        e.tenant_id,
                        e.account_key,
                        e.event_id,
                        e.payload.patient_control_number,
                        e.payload.original_reference or None,
                        e.payload.payer_claim_control_number or None,
                        e.payload.payment_date,
                    )
                    for pos, e in corrections
                ),
            ),
            *unnest_columns(3, ((e.tenant_id, e.event_id, pos) for pos, e in noted)),
        )

    async def uncorrected_reversals(self, conn: asyncpg.Connection, before: date) -> list[PendingReversal]:
        """Reversals older than ``before`` that no correction has paired."""
        rows = await conn.fetch(
            """SELECT tenant_id, claim_event_id, account_key, payer_id, icn, amount, reversed_on
               FROM detection.reversals WHERE corrected_by IS NULL AND reversed_on < $1
               ORDER BY reversed_on, claim_event_id""",
            before,
        )
        return [PendingReversal(**dict(r)) for r in rows]

    async def load_identity(self, conn: asyncpg.Connection, want: Wanted) -> Snapshot:
        """Lock the batch's accounts, then read what its evidence can reach (five statements whatever its
        size). The lock serializes identity decisions of one account for the rest of the transaction: Kafka
        already orders an account on one partition, and this keeps it so while two workers briefly hold it
        during a rebalance."""
        await conn.execute(
            """SELECT pg_advisory_xact_lock(hashtextextended(x.tenant_id || '/' || x.account_key, 0))
               FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS x(tenant_id, account_key, n) ORDER BY n""",
            *unnest_columns(2, want.accounts),
        )
        recorded = await conn.fetch(
            """SELECT evidence_id FROM detection.evidence
               WHERE (tenant_id, evidence_id) IN (SELECT * FROM unnest($1::text[], $2::uuid[]))""",
            *unnest_columns(2, want.evidence_ids),
        )
        aliases = [
            Alias(r["tenant_id"], r["account_key"], r["key"], r["receivable_id"])
            for r in await conn.fetch(
                """SELECT tenant_id, account_key, key, receivable_id FROM detection.receivable_aliases
                   WHERE (tenant_id, account_key, key) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))""",
                *unnest_columns(3, want.named),
            )
        ]
        reach = sorted({(a.tenant_id, a.receivable_id) for a in aliases} | set(want.opened), key=str)
        rows = await conn.fetch(
            """SELECT tenant_id, receivable_id, account_key, payer_id, reference, policy, principal, determination_date,
                      merged_into
               FROM detection.receivables
               WHERE (tenant_id, receivable_id) IN (SELECT * FROM unnest($1::text[], $2::uuid[]))""",
            *unnest_columns(2, reach),
        )
        evidence: dict[Key, list[KnownEvidence]] = {}
        for r in await conn.fetch(
            """SELECT tenant_id, receivable_id, channel, subject, amount, evidence_date FROM detection.evidence
               WHERE (tenant_id, receivable_id) IN (SELECT * FROM unnest($1::text[], $2::uuid[]))""",
            *unnest_columns(2, reach),
        ):
            evidence.setdefault((r["tenant_id"], r["receivable_id"]), []).append(
                KnownEvidence(r["channel"], r["subject"], r["amount"], r["evidence_date"])
            )
        return Snapshot(
            recorded=frozenset(r["evidence_id"] for r in recorded),
            aliases=tuple(aliases),
            receivables={(r["tenant_id"], r["receivable_id"]): DetectedReceivable(**dict(r)) for r in rows},
            evidence={key: tuple(known) for key, known in evidence.items()},
        )

    async def write_identity(self, conn: asyncpg.Connection, placement: Placement) -> None:
        """Write where a batch's evidence ended: absorbed receivables' evidence and identifiers moved to their
        survivors, new identifiers, new evidence and the receivable rows in their end state, one statement
        each (none when there is nothing of the kind)."""
        if placement.moved:
            moved = unnest_columns(3, placement.moved)
            await conn.execute(
                """UPDATE detection.evidence e SET receivable_id = m.survivor
                   FROM unnest($1::text[], $2::uuid[], $3::uuid[]) AS m(tenant_id, absorbed, survivor)
                   WHERE e.tenant_id = m.tenant_id AND e.receivable_id = m.absorbed""",
                *moved,
            )
            await conn.execute(
                """WITH m AS (SELECT * FROM unnest($1::text[], $2::uuid[], $3::uuid[]) AS m(tenant_id, absorbed, survivor)),
                   gone AS (
                       DELETE FROM detection.receivable_aliases a USING m
                       WHERE a.tenant_id = m.tenant_id AND a.receivable_id = m.absorbed
                       RETURNING a.tenant_id, a.account_key, a.key, m.survivor
                   )
                   INSERT INTO detection.receivable_aliases (tenant_id, account_key, key, receivable_id)
                   SELECT * FROM gone ON CONFLICT DO NOTHING""",
                *moved,
            )
        if placement.new_aliases:
            await conn.execute(
                """INSERT INTO detection.receivable_aliases (tenant_id, account_key, key, receivable_id)
                   SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::uuid[]) ON CONFLICT DO NOTHING""",
                *unnest_columns(
                    4, ((a.tenant_id, a.account_key, a.key, a.receivable_id) for a in placement.new_aliases)
                ),
            )
        if placement.new_evidence:
            await conn.execute(
                """INSERT INTO detection.evidence (tenant_id, evidence_id, receivable_id, rule, channel, amount,
                       evidence_date, source, subject, reference, claim_references)
                   SELECT x.tenant_id, x.evidence_id, x.receivable_id, x.rule, x.channel, x.amount, x.evidence_date,
                          x.source, x.subject, x.reference, string_to_array(x.claim_references, chr(31))
                   FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::numeric[], $7::date[],
                       $8::text[], $9::text[], $10::text[], $11::text[])
                       AS x(tenant_id, evidence_id, receivable_id, rule, channel, amount, evidence_date, source,
                            subject, reference, claim_references)
                   ON CONFLICT DO NOTHING""",
                *unnest_columns(
                    11,
                    (
                        (tenant, ev.evidence_id, rid, ev.rule, ev.channel, ev.amount, ev.evidence_date, ev.source,
                         ev.subject, ev.reference, "\x1f".join(ev.claim_references))
                        for tenant, rid, ev in placement.new_evidence
                    ),
                ),
            )  # fmt: skip
        if placement.rows:
            await conn.execute(
                """INSERT INTO detection.receivables (tenant_id, receivable_id, account_key, payer_id, reference,
                       policy, principal, determination_date, merged_into)
                   SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
                       $7::numeric[], $8::date[], $9::uuid[])
                   ON CONFLICT (tenant_id, receivable_id) DO UPDATE SET principal = EXCLUDED.principal,
                       determination_date = EXCLUDED.determination_date, merged_into = EXCLUDED.merged_into""",
                *unnest_columns(
                    9,
                    (
                        (r.tenant_id, r.receivable_id, r.account_key, r.payer_id, r.reference, r.policy, r.principal,
                         r.determination_date, r.merged_into)
                        for r in placement.rows
                    ),
                ),
            )  # fmt: skip
