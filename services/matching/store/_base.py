"""The connection every part of the PostgreSQL repository shares, and the row → record mappings: an
``asyncpg.Record`` never leaves this package."""

from typing import Any

import asyncpg

from services.matching.records import Receivable, StoredPair
from services.matching.repository import Wanted

RECEIVABLE_COLUMNS = (
    "tenant_id, receivable_id, account_key, payer_id, reference, policy, determination_date, principal, "
    "principal_recovered, interest_accrued, interest_recovered, refunded, written_off, paused, status, "
    "original_payment_date, duplicate, identified_on, merged_into, merged_on, written_off_in_full"
)
PAIR_COLUMNS = (
    "tenant_id, adjustment_id, account_key, remittance_id, payer_id, trace_number, payment_date, "
    "segment_ordinal, pair_index, reason_code, reference, match_reference, amount, bucket, unmatched_amount, "
    "reason, match_keys, match_method, suggestion, awaiting_refund"
)


class PgBase:
    """Holds the connection (and so the caller's transaction) the repository's SQL runs on."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def prefetch(self, wanted: Wanted) -> None:
        """Nothing is read ahead: every call sends its statement."""

    async def flush(self) -> None:
        """Nothing is kept back: every call sends its statement (see ``store.batch`` for a repository that
        does keep writes back)."""


def receivable_of(row: asyncpg.Record) -> Receivable:
    """A ``matching.receivables`` row selected with :data:`RECEIVABLE_COLUMNS`."""
    values: dict[str, Any] = dict(row.items())
    return Receivable(**values)


def pair_of(row: asyncpg.Record) -> StoredPair:
    """A ``matching.adjustments`` row selected with :data:`PAIR_COLUMNS`."""
    values: dict[str, Any] = dict(row.items())
    values["match_keys"] = tuple(values["match_keys"] or ())
    return StoredPair(**values)
