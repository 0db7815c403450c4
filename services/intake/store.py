"""Intake's tables (schema ``intake``): files seen, remittances posted, transactions rejected."""

import json
from uuid import UUID

import asyncpg

from shared.feeds import FeedError, ParsedRemittance


async def remittance_seen(conn: asyncpg.Connection, tenant_id: str, parsed: ParsedRemittance) -> bool:
    """True when this remittance identity was already posted (from this file or an earlier copy of it)."""
    row = await conn.fetchval(
        "SELECT 1 FROM intake.remittances WHERE tenant_id = $1 AND remittance_id = $2",
        tenant_id,
        parsed.remittance.remittance_id,
    )
    return row is not None


async def remittances_posted_by(conn: asyncpg.Connection, tenant_id: str, sha256: str) -> set[UUID]:
    """Remittances whose first posting came from the file with this content (a later copy posts none)."""
    rows = await conn.fetch(
        "SELECT remittance_id FROM intake.remittances WHERE tenant_id = $1 AND file_sha256 = $2",
        tenant_id,
        sha256,
    )
    return {r["remittance_id"] for r in rows}


async def record_remittance(
    conn: asyncpg.Connection, tenant_id: str, account: str, parsed: ParsedRemittance
) -> None:
    """Post one remittance's header and totals."""
    r = parsed.remittance
    await conn.execute(
        """INSERT INTO intake.remittances (tenant_id, remittance_id, account_key, file_sha256, file_name, payer_id,
               payee_id, trace_number, isa13, gs06, st02, payment_date, total_paid, total_claim_paid,
               total_adjustments, claim_count, adjustment_count)
           VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17) ON CONFLICT DO NOTHING""",
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
    )


async def record_rejection(
    conn: asyncpg.Connection, tenant_id: str, sha256: str, index: int, error: FeedError
) -> None:
    """Keep the precise error of a rejected transaction for staff (``offsetstream dlt``)."""
    await conn.execute(
        """INSERT INTO intake.rejections (tenant_id, file_sha256, transaction_index, reason, message, location)
           VALUES ($1,$2,$3,$4,$5,$6::jsonb) ON CONFLICT DO NOTHING""",
        tenant_id,
        sha256,
        index,
        error.reason.value,
        str(error),
        json.dumps(error.location()),
    )


async def record_file(
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
