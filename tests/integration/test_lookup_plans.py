"""The per-message and per-batch look-ups of matching and detection read by index, not by the tenant's whole
table (migration 0027). A missing index never shows in a functional test: the answer is right, only slower,
and the cost grows with the ledger (an account's open WO pairs cost 1.9 ms a call at 2 759 pairs in the
session-10 bench, 0.04 ms with the index). So the stores' own SQL, captured as they run it, is EXPLAINed on a
tenant of a few thousand rows and every plan must reach the table it asks through an index.

Everything runs in one transaction that is rolled back, the ANALYZE included (statistics are transactional),
so the session's shared ledger keeps neither the rows nor their statistics."""

import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from contracts.envelope import Envelope, envelope_of
from contracts.events import ClaimPaymentReceived
from services.detection.identity import Wanted
from services.detection.store import DetectionStore
from services.matching.store import PgMatchingRepository

pytestmark = pytest.mark.asyncio

ACCOUNTS = 200
PER_ACCOUNT = 20


class Explaining:
    """A connection that EXPLAINs every read it is asked for, then runs it: the plans of the real SQL."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.plans: list[tuple[str, str]] = []

    async def _explained(self, run: Callable[..., Awaitable[Any]], query: str, *args: Any) -> Any:
        if query.lstrip().upper().startswith(("SELECT", "WITH")):
            rows = await self.conn.fetch("EXPLAIN " + query, *args)
            self.plans.append((query, "\n".join(r[0] for r in rows)))
        return await run(query, *args)

    async def fetch(self, query: str, *args: Any) -> Any:
        return await self._explained(self.conn.fetch, query, *args)

    async def fetchrow(self, query: str, *args: Any) -> Any:
        return await self._explained(self.conn.fetchrow, query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        return await self._explained(self.conn.fetchval, query, *args)

    async def execute(self, query: str, *args: Any) -> Any:
        return await self.conn.execute(query, *args)


def scanned_whole(plans: list[tuple[str, str]], table: str) -> list[str]:
    """The queries whose plan reads ``table`` (schema-qualified in the SQL, bare in the plan) sequentially."""
    bare = table.split(".")[1]
    return [query for query, plan in plans if table in query and re.search(rf"Seq Scan on {bare}\b", plan)]


async def populate(conn: asyncpg.Connection, tenant: str) -> tuple[str, uuid.UUID]:
    """A tenant of ACCOUNTS accounts × PER_ACCOUNT PLB pairs, receivables with keys, and evidence; returns one
    account and one receivable of it."""
    await conn.execute(
        """INSERT INTO matching.adjustments (tenant_id, adjustment_id, account_key, remittance_id, payer_id,
               trace_number, payment_date, segment_ordinal, pair_index, reason_code, reference, match_reference,
               amount, bucket, unmatched_amount, reason, match_keys)
           SELECT $1, gen_random_uuid(), 'acct' || (n % $2::int), gen_random_uuid(), 'P1', 'T' || n,
                  DATE '2026-01-01' + (n % 60), 1, 1, CASE WHEN n % 3 = 0 THEN 'FB' ELSE 'WO' END,
                  'FCN' || n, 'FCN' || n, 10.00, 'applied', CASE WHEN n % 97 = 0 THEN 10.00 ELSE 0 END,
                  'test', ARRAY['FCN' || n]
           FROM generate_series(1, $2::int * $3::int) AS n""",
        tenant,
        ACCOUNTS,
        PER_ACCOUNT,
    )
    await conn.execute(
        """INSERT INTO matching.receivables (tenant_id, receivable_id, account_key, payer_id, reference, policy,
               determination_date, principal, status)
           SELECT $1, md5($1 || n)::uuid, 'acct' || (n % $2::int),
                  'P1', 'FCN' || n, 'medicare', DATE '2026-01-01', 10.00, 'open'
           FROM generate_series(1, $2::int * $3::int) AS n""",
        tenant,
        ACCOUNTS,
        PER_ACCOUNT,
    )
    await conn.execute(
        """INSERT INTO matching.receivable_keys (tenant_id, account_key, kind, key, receivable_id)
           SELECT tenant_id, account_key, 'reference', reference, receivable_id FROM matching.receivables
           WHERE tenant_id = $1""",
        tenant,
    )
    await conn.execute(
        """INSERT INTO detection.evidence (tenant_id, evidence_id, receivable_id, rule, channel, amount,
               evidence_date, source, subject, reference)
           SELECT tenant_id, gen_random_uuid(), receivable_id, 'test', 'letter', 10.00, DATE '2026-01-01',
                  'test', 'test', reference
           FROM matching.receivables WHERE tenant_id = $1""",
        tenant,
    )
    for table in (
        "matching.adjustments",
        "matching.receivables",
        "matching.receivable_keys",
        "detection.evidence",
    ):
        await conn.execute(f"ANALYZE {table}")
    rid = await conn.fetchval(
        "SELECT receivable_id FROM matching.receivables WHERE tenant_id = $1 AND account_key = 'acct7' LIMIT 1",
        tenant,
    )
    return "acct7", rid


async def test_lookups_by_account_receivable_and_key_use_an_index(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    tx = ledger.transaction()
    await tx.start()
    try:
        account, rid = await populate(ledger, tenant)
        explaining = Explaining(ledger)
        repo = PgMatchingRepository(explaining)
        await repo.parked_recoveries(tenant, account, ["FCN7"])
        await repo.receivable_keys(tenant, rid)
        await repo.open_candidates(tenant, account)
        await repo.forwarding_applications(tenant, account)
        await repo.find_by_key(tenant, "P1", "FCN7")
        await DetectionStore().load_identity(
            explaining,
            Wanted(accounts=((tenant, account),), evidence_ids=(), named=(), opened=((tenant, rid),)),
        )
        assert len(explaining.plans) >= 7
        whole = {
            table: scanned_whole(explaining.plans, table)
            for table in (
                "matching.adjustments",
                "matching.receivables",
                "matching.receivable_keys",
                "detection.evidence",
            )
        }
        assert whole == {table: [] for table in whole}, "\n\n".join(
            f"{query}\n{plan}" for query, plan in explaining.plans
        )
    finally:
        await tx.rollback()


def probe_claim(tenant: str, account: str) -> Envelope[ClaimPaymentReceived]:
    """A claim of ``account`` sharing its CLP01 with one stored claim and its CLP07 with another."""
    claim = ClaimPaymentReceived(
        remittance_id=uuid.uuid4(),
        payer_id="P1",
        trace_number="T1",
        payment_date=date(2026, 2, 1),
        claim_ordinal=1,
        segment_ordinal=3,
        patient_control_number="PCN7",
        status_code="1",
        charge=Decimal("10.00"),
        paid=Decimal("10.00"),
        payer_claim_control_number="ICN207",
        service_line_count=0,
    )
    return envelope_of(ClaimPaymentReceived)(
        event_id=uuid.uuid4(),
        event_type="ClaimPaymentReceived",
        occurred_at=datetime.fromisoformat("2026-02-01T00:00:00+00:00"),
        tenant_id=tenant,
        account_key=account,
        causation_id="test",
        payload=claim,
    )


async def test_a_claims_history_is_looked_up_by_account_and_number(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    """related_claims reaches a claim's history through claims_by_pcn and claims_by_icn (keyed by account and
    number since migration 0032), never by reading the tenant's claims; and, the tenant being checked on the
    row now, never another tenant's claims filed under the same account key and numbers."""
    probe = probe_claim(tenant, "acct7")
    tx = ledger.transaction()
    await tx.start()
    try:
        for owner in (tenant, f"{tenant}-other"):
            await ledger.execute(
                """INSERT INTO detection.claims (tenant_id, event_id, account_key, remittance_id, claim_ordinal,
                       payer_id, patient_control_number, status_code, paid, payer_claim_control_number,
                       original_reference, payment_date, payload)
                   SELECT $1, gen_random_uuid(), 'acct' || (n % $2::int), gen_random_uuid(), 1, 'P1',
                          'PCN' || n, '1', 10.00, 'ICN' || n, NULL, DATE '2026-01-01', $4
                   FROM generate_series(1, $2::int * $3::int) AS n""",
                owner,
                ACCOUNTS,
                PER_ACCOUNT,
                probe.payload.model_dump_json(),
            )
        await ledger.execute("ANALYZE detection.claims")
        explaining = Explaining(ledger)
        [(prior, later)] = await DetectionStore().related_claims(explaining, [probe], set())
        assert (len(prior), len(later)) == (2, 0)  # PCN7 and ICN207, both of acct7, of this tenant only
        [(_, plan)] = explaining.plans
        assert "claims_by_pcn" in plan and "claims_by_icn" in plan, plan
        assert not scanned_whole(explaining.plans, "detection.claims"), plan
    finally:
        await tx.rollback()
