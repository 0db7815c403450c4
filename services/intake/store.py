"""Intake's tables (schema ``intake``): files seen, remittances posted, transactions rejected."""

import hashlib
import json
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from services.intake.feeds import FeedError, ParsedRemittance


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
        self, conn: asyncpg.Connection, tenant_id: str, parsed: ParsedRemittance
    ) -> str | None:
        """How this remittance was posted before, if it was: ``"same"`` (the same identity: payer, TRN02,
        ISA13/GS06/ST02, from this file or an earlier copy of it), ``"reissue"`` (the same payment re-enveloped:
        payer, payee, TRN02 and payment date with the same money, under new control numbers, as a clearinghouse
        re-sending a file does), ``"conflict"`` (that payment with other money: a corrected reissue, or a payer
        reusing a trace number), or None (never posted).

        A reissue posted again would apply every claim and recovery twice, so it counts as posted; a conflict is
        posted (its money may be real) and carries a warning for staff.
        """
        r = parsed.remittance
        row = await conn.fetchrow(
            """SELECT remittance_id = $2 AS same_id,
                      (total_paid, total_claim_paid, total_adjustments, claim_count, adjustment_count)
                          = ($7::numeric, $8::numeric, $9::numeric, $10::integer, $11::integer) AS same_money
                 FROM intake.remittances
                WHERE tenant_id = $1
                  AND (remittance_id = $2
                       OR (payer_id = $3 AND payee_id = $4 AND trace_number = $5 AND payment_date = $6))
                ORDER BY same_id DESC, same_money DESC LIMIT 1""",
            tenant_id,
            r.remittance_id,
            r.payer_id,
            r.payee_id,
            r.trace_number,
            r.payment_date,
            r.total_paid,
            r.total_claim_paid,
            r.total_provider_adjustments,
            r.claim_count,
            r.adjustment_count,
        )
        if row is None:
            return None
        return "same" if row["same_id"] else "reissue" if row["same_money"] else "conflict"

    async def remittances_posted_by(self, conn: asyncpg.Connection, tenant_id: str, sha256: str) -> set[UUID]:
        """Remittances whose first posting came from the file with this content (a later copy posts none)."""
        rows = await conn.fetch(
            "SELECT remittance_id FROM intake.remittances WHERE tenant_id = $1 AND file_sha256 = $2",
            tenant_id,
            sha256,
        )
        return {r["remittance_id"] for r in rows}

    async def record_remittance(
        self, conn: asyncpg.Connection, tenant_id: str, account: str, parsed: ParsedRemittance
    ) -> None:
        """Post one remittance's header, totals and the reader's warnings."""
        r = parsed.remittance
        await conn.execute(
            """INSERT INTO intake.remittances (tenant_id, remittance_id, account_key, file_sha256, file_name, payer_id,
                   payee_id, trace_number, isa13, gs06, st02, payment_date, total_paid, total_claim_paid,
                   total_adjustments, claim_count, adjustment_count, warnings)
               VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18) ON CONFLICT DO NOTHING""",
            tenant_id,
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
            list(parsed.warnings),
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
