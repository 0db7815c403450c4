"""``offsetstream phi relearn`` rebuilds notification's digests under the current key from detection's claim
history: digests made under another key go (they match nothing and, unkeyed, could be reversed), every claim's
patient control number comes back keyed, and the accounts move to a new token generation so a queued delivery
is scanned again."""

import uuid
from datetime import date

import asyncpg
import pytest

from cli import phi_commands
from shared import phi

pytestmark = pytest.mark.asyncio


async def _claim(conn: asyncpg.Connection, tenant: str, account: str, ordinal: int, pcn: str) -> None:
    await conn.execute(
        """INSERT INTO detection.claims (tenant_id, event_id, account_key, remittance_id, claim_ordinal, payer_id,
               patient_control_number, status_code, paid, payer_claim_control_number, original_reference,
               payment_date, payload)
           VALUES ($1, $2, $3, $4, $5, 'P1', $6, '1', 10.00, NULL, NULL, $7, '{}'::json)""",
        tenant,
        uuid.uuid4(),
        account,
        uuid.uuid4(),
        ordinal,
        pcn,
        date(2026, 1, 5),
    )


async def test_relearn_replaces_digests_of_another_key_with_the_claims_numbers(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    numbers = {"acct-1": ["100234", "ACCT-000117"], "acct-2": ["77"]}
    for account, pcns in numbers.items():
        for ordinal, pcn in enumerate(pcns, start=1):
            await _claim(ledger, tenant, account, ordinal, pcn)
    stale = "0" * 32  # a digest under another key: it masks nothing any more
    await ledger.execute(
        """INSERT INTO notification.sensitive_tokens (tenant_id, account_key, digest, kind, length)
           VALUES ($1, 'acct-1', $2, 'id', 6)""",
        tenant,
        stale,
    )
    await ledger.execute(
        "INSERT INTO notification.token_generations (tenant_id, account_key, generation) VALUES ($1, 'acct-1', 4)",
        tenant,
    )

    done = await phi_commands.relearn(ledger, tenant)

    rows = await ledger.fetch(
        "SELECT account_key, digest, length FROM notification.sensitive_tokens WHERE tenant_id = $1", tenant
    )
    stored = {(r["account_key"], r["digest"], r["length"]) for r in rows}
    expected = {
        (account, d, n)
        for account, pcns in numbers.items()
        for _, n, d, _ in phi.shaped_token_rows("id", pcns)
    }
    assert stored == expected
    assert ("acct-1", phi.digest("100234"), 6) in stored  # under the session's key, as notification compares
    assert ("acct-1", phi.digest("000117"), 6) in stored  # the alphanumeric piece of ACCT-000117, as learnt
    assert done.dropped == 1 and done.learnt == len(expected)
    generations = dict(
        await ledger.fetch(
            "SELECT account_key, generation FROM notification.token_generations WHERE tenant_id = $1", tenant
        )
    )
    assert generations == {"acct-1": 5, "acct-2": 1}  # both accounts scan their queued deliveries again

    # Idempotent: the same digests (the generations move again, so queued deliveries are scanned again).
    again = await phi_commands.relearn(ledger, tenant)
    assert again.learnt == len(expected)
    assert {
        (r["account_key"], r["digest"], r["length"])
        for r in await ledger.fetch(
            "SELECT account_key, digest, length FROM notification.sensitive_tokens WHERE tenant_id = $1",
            tenant,
        )
    } == expected
