"""Intake's tables (schema ``intake``): files seen, remittances posted, transactions rejected."""

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from services.intake.domain import PostedBefore, money_of, payment_of
from services.intake.feeds import FeedError, ParsedRemittance
from shared.db import unnest_columns


@dataclass(frozen=True)
class KeptFile:
    """A payer file kept in ``intake.raw_files``: its exact bytes and what its first message said of it."""

    file_name: str
    source: str
    format_hint: str | None
    content: bytes


class IntakeStore:
    """Intake's repository: remittances, files, receipts and rejections in, rows out; no decisions."""

    async def posted_before(
        self, conn: asyncpg.Connection, tenant_id: str, transactions: Sequence[ParsedRemittance]
    ) -> list[PostedBefore | None]:
        """How each of a file's remittances was posted before this file, if it was, in one round trip (issue
        #18), in the order given: ``"same"`` (the same identity: payer, TRN02, ISA13/GS06/ST02, from an earlier
        copy of the file), ``"reissue"`` (the same payment re-enveloped: payer, payee, TRN02 and payment date
        with the same money, under new control numbers, as a clearinghouse re-sending a file does),
        ``"conflict"`` (that payment with other money: a corrected reissue, or a payer reusing a trace number),
        or None (never posted). Where several earlier postings match, the same identity decides, then the same
        money.

        A reissue posted again would apply every claim and recovery twice, so it counts as posted; a conflict is
        posted (its money may be real) and carries a warning for staff.

        Only the ledger as it was before the file is read: the caller classifies a transaction against the
        file's own earlier ones (``domain.PostedInFile``), since they are recorded together after this.
        """
        if not transactions:
            return []
        rows = await conn.fetch(
            """SELECT q.n, best.same_id, best.same_money
                 FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::date[], $7::numeric[],
                             $8::numeric[], $9::numeric[], $10::integer[], $11::integer[])
                      WITH ORDINALITY AS q(remittance_id, payer_id, payee_id, trace_number, payment_date, total_paid,
                                           total_claim_paid, total_adjustments, claim_count, adjustment_count, n)
                CROSS JOIN LATERAL (
                      SELECT r.remittance_id = q.remittance_id AS same_id,
                             (r.total_paid, r.total_claim_paid, r.total_adjustments, r.claim_count,
                              r.adjustment_count)
                                 = (q.total_paid, q.total_claim_paid, q.total_adjustments, q.claim_count,
                                    q.adjustment_count) AS same_money
                        FROM intake.remittances r
                       WHERE r.tenant_id = $1
                         AND (r.remittance_id = q.remittance_id
                              OR (r.payer_id = q.payer_id AND r.payee_id = q.payee_id
                                  AND r.trace_number = q.trace_number AND r.payment_date = q.payment_date))
                       ORDER BY same_id DESC, same_money DESC LIMIT 1) best""",
            tenant_id,
            *unnest_columns(
                10,
                (
                    (
                        p.remittance.remittance_id,
                        *payment_of(p),
                        *money_of(p),
                    )
                    for p in transactions
                ),
            ),
        )
        found: list[PostedBefore | None] = [None] * len(transactions)
        for row in rows:
            found[row["n"] - 1] = "same" if row["same_id"] else "reissue" if row["same_money"] else "conflict"
        return found

    async def remittances_posted_by(self, conn: asyncpg.Connection, tenant_id: str, sha256: str) -> set[UUID]:
        """Remittances whose first posting came from the file with this content (a later copy posts none)."""
        rows = await conn.fetch(
            "SELECT remittance_id FROM intake.remittances WHERE tenant_id = $1 AND file_sha256 = $2",
            tenant_id,
            sha256,
        )
        return {r["remittance_id"] for r in rows}

    async def record_remittances(
        self, conn: asyncpg.Connection, tenant_id: str, posted: Sequence[tuple[str, ParsedRemittance]]
    ) -> None:
        """Post a file's remittances (account key, remittance): header, totals and the reader's warnings, in one
        round trip (issue #18). The warnings travel as one JSON array per remittance, since ``unnest`` of a
        two-dimensional ``text[][]`` would flatten them (and needs rows of equal length)."""
        if not posted:
            return
        await conn.execute(
            """INSERT INTO intake.remittances (tenant_id, remittance_id, account_key, file_sha256, file_name, payer_id,
                   payee_id, trace_number, isa13, gs06, st02, payment_date, total_paid, total_claim_paid,
                   total_adjustments, claim_count, adjustment_count, warnings)
               SELECT $1, u.remittance_id, u.account_key, u.file_sha256, u.file_name, u.payer_id, u.payee_id,
                      u.trace_number, u.isa13, u.gs06, u.st02, u.payment_date, u.total_paid, u.total_claim_paid,
                      u.total_adjustments, u.claim_count, u.adjustment_count,
                      ARRAY(SELECT w.warning FROM jsonb_array_elements_text(u.warnings) WITH ORDINALITY AS w(warning, n)
                             ORDER BY w.n)
                 FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                             $9::text[], $10::text[], $11::text[], $12::date[], $13::numeric[], $14::numeric[],
                             $15::numeric[], $16::integer[], $17::integer[], $18::jsonb[])
                      WITH ORDINALITY AS u(remittance_id, account_key, file_sha256, file_name, payer_id, payee_id,
                                           trace_number, isa13, gs06, st02, payment_date, total_paid,
                                           total_claim_paid, total_adjustments, claim_count, adjustment_count,
                                           warnings, n)
                ORDER BY u.n
               ON CONFLICT DO NOTHING""",
            tenant_id,
            *unnest_columns(
                17,
                (
                    (
                        r.remittance_id,
                        account,
                        r.file_sha256,
                        r.file_name,
                        r.payer_id,
                        r.payee_id,
                        r.trace_number,
                        r.interchange_control_number,
                        r.group_control_number,
                        r.transaction_control_number,
                        r.payment_date,
                        r.total_paid,
                        r.total_claim_paid,
                        r.total_provider_adjustments,
                        r.claim_count,
                        r.adjustment_count,
                        json.dumps(list(parsed.warnings)),
                    )
                    for account, parsed in posted
                    for r in (parsed.remittance,)
                ),
            ),
        )

    async def record_rejections(
        self, conn: asyncpg.Connection, tenant_id: str, sha256: str, rejected: list[tuple[int, FeedError]]
    ) -> None:
        """Keep the precise error of each rejected transaction (position among the file's results, error) for
        staff (``offsetstream dlt``); one round trip for a file of thousands of bad transactions."""
        if not rejected:
            return
        await conn.executemany(
            """INSERT INTO intake.rejections (tenant_id, file_sha256, transaction_index, reason, message, location)
               VALUES ($1,$2,$3,$4,$5,$6::jsonb) ON CONFLICT DO NOTHING""",
            [
                (tenant_id, sha256, index, error.reason.value, str(error), json.dumps(error.location()))
                for index, error in rejected
            ],
        )

    async def record_file(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        sha256: str,
        file_name: str,
        size: int,
        source: str,
        feed: str | None,
        transactions: int,
        rejected: int,
        duplicates: int,
    ) -> None:
        """One row per distinct file content per tenant."""
        await conn.execute(
            """INSERT INTO intake.files (tenant_id, sha256, file_name, size_bytes, source, feed, transactions,
                   rejected, duplicates) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT DO NOTHING""",
            tenant_id,
            sha256,
            file_name,
            size,
            source,
            feed,
            transactions,
            rejected,
            duplicates,
        )

    async def record_receipt(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        sha256: str,
        source: str,
        kind: str,
        position: tuple[str, int, int],
    ) -> bool:
        """Note one receipt of a file at its Kafka position (topic, partition, offset); False when that message
        was already noted (a redelivery, not a new receipt). ``kind``: received, replayed (from the DLT) or copy
        (identical bytes of a file already processed)."""
        topic, partition, offset = position
        row = await conn.fetchval(
            """INSERT INTO intake.file_receipts (tenant_id, sha256, source, kind, topic, "partition", "offset")
               VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT DO NOTHING RETURNING 1""",
            tenant_id,
            sha256,
            source,
            kind,
            topic,
            partition,
            offset,
        )
        return row is not None

    async def keep_raw_file(
        self,
        conn: asyncpg.Connection,
        tenant_id: str,
        sha256: str,
        file_name: str,
        source: str,
        format_hint: str | None,
        content: bytes,
    ) -> None:
        """Keep a file's exact bytes once (``intake.raw_files``) for the dead-letter records that name it. The
        bytes are only sent when the row is missing: a redelivered or re-fed file costs one look-up."""
        if await conn.fetchval(
            "SELECT 1 FROM intake.raw_files WHERE tenant_id = $1 AND sha256 = $2", tenant_id, sha256
        ):
            return
        await conn.execute(
            """INSERT INTO intake.raw_files (tenant_id, sha256, file_name, source, format_hint, size_bytes, content)
               VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT DO NOTHING""",
            tenant_id,
            sha256,
            file_name,
            source,
            format_hint,
            len(content),
            content,
        )

    async def raw_file(self, conn: asyncpg.Connection, tenant_id: str, sha256: str) -> KeptFile | None:
        """The kept file of this tenant with this content, checked against its SHA-256; None when not kept."""
        row = await conn.fetchrow(
            "SELECT file_name, source, format_hint, content FROM intake.raw_files WHERE tenant_id = $1 AND sha256 = $2",
            tenant_id,
            sha256,
        )
        if row is None or hashlib.sha256(row["content"]).hexdigest() != sha256:
            return None
        return KeptFile(row["file_name"], row["source"], row["format_hint"], bytes(row["content"]))
