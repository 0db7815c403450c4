"""The in-memory repository keeps PostgreSQL's semantics: the same matching stories, driven through the engine
once over ``InMemoryMatchingRepository`` and once over ``PgMatchingRepository`` on the real ledger, publish the
same events (ids, types and payloads). This is what lets the engine's unit tests (``tests/unit/matching``)
stand for the database."""

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from harness import counted_batch, matching_one_at_a_time
from matching.ledger_story import LedgerStory

from contracts.envelope import Envelope
from contracts.events import (
    InterestAccrued,
    OverpaymentDetected,
    ProviderAdjustmentReceived,
    StaffActionRecorded,
)
from contracts.topics import INTEREST, OVERPAYMENTS, PROVIDER_ADJUSTMENTS, STAFF_ACTIONS, Topic
from services.matching.store import PgMatchingRepository
from services.matching.store.batch import BatchMatchingRepository
from shared.messages import Incoming, Outgoing

pytestmark = pytest.mark.integration
Story = Callable[[LedgerStory], Awaitable[None]]


async def recoupments_in_and_out_of_order(story: LedgerStory) -> None:
    await story.pair("WO", "FCN300", "80.00", "2026-08-24", trace="E3")
    await story.deferral("FCN300", "80.00", "2026-08-03", trace="E1")
    await story.deferral("FCN900", "100.00", "2026-06-01", trace="E4")
    await story.pair("WO", "FCN900", "100.00", "2026-06-20", trace="E6")
    await story.pair("WO", "FCN900", "60.00", "2026-06-10", trace="E5")
    await story.evidence("FCN910", "100.00", "2026-06-01", channel="letter")
    await story.interest("FCN910", 1, "2026-06-01", "2026-06-30", "1.00")
    await story.pair("WO", "FCN910", "101.50", "2026-07-10", trace="E7")
    await story.interest("FCN910", 1, "2026-06-01", "2026-06-30", "-0.50", version=2)
    await story.interest("FCN910", 2, "2026-07-01", "2026-07-30", "0.75")
    await story.pair("WO", None, "30.00", "2026-08-01", trace="E8")
    await story.pair("WO", "UNKNOWN", "20.00", "2026-08-02", trace="E9")


async def refunds_and_staff(story: LedgerStory) -> None:
    await story.pair("WO", "FCN510", "250.00", "2026-09-01", trace="R2")
    await story.pair("72", "FCN510", "-250.00", "2026-09-01", trace="R2")
    await story.evidence("FCN510", "250.00", "2026-08-03", channel="letter")
    await story.deferral("FCN520", "250.00", "2026-08-03", trace="R3")
    await story.staff("refund_sent", "FCN520", "2026-08-20")
    await story.pair("WO", "FCN520", "250.00", "2026-09-01", trace="R4")
    await story.pair("72", "FCN520", "-250.00", "2026-09-01", trace="R4")
    await story.evidence("FCN530", "100.00", "2026-06-01", channel="letter")
    await story.staff("refund_sent", "FCN530", "2026-07-10", amount="101.00")
    await story.interest("FCN530", 1, "2026-06-01", "2026-06-30", "1.00")
    await story.staff("appeal_filed", "FCNP", "2026-06-20")
    await story.evidence("FCNP", "80.00", "2026-06-01", channel="letter")
    await story.staff("write_off", "FCNP", "2026-07-01", amount="30.00")
    await story.staff("write_off", "FCNP", "2026-07-02")
    await story.interest("FCNP", 1, "2026-06-01", "2026-06-30", "0.77")


async def forwarding_out_of_order(story: LedgerStory) -> None:
    await story.pair("FB", "T1", "-100.00", "2026-06-01", trace="T1")
    await story.pair("FB", "T2", "100.00", "2026-07-01", trace="T3")
    await story.pair("FB", "T2", "-100.00", "2026-06-15", trace="T2")
    await story.pair("FB", None, "100.00", "2026-07-02", trace="T4")
    await story.pair("FB", "T5", "-100.00", "2026-06-20", trace="T5")
    await story.pair("FB", "T1", "100.00", "2026-07-03", trace="T6")
    await story.pair("FB", None, "60.00", "2026-07-04", trace="T7")
    await story.pair("FB", "T8", "-60.00", "2026-06-25", trace="T8")


async def merges_and_netting(story: LedgerStory) -> None:
    await story.deferral("FCN-A", "100.00", "2026-06-01")
    await story.pair("WO", "FCN-A", "40.00", "2026-06-10")
    await story.evidence("ICN-B", "100.00", "2026-06-01", channel="claim", claims=("ICN-B",))
    await story.evidence(
        "ICN-B", "100.00", "2026-06-01", channel="letter", merged=("FCN-A",), source="letter"
    )
    await story.pair("WO", "FCN-A", "60.00", "2026-06-20")
    remittance = uuid.UUID(int=7)
    await story.evidence("6660000000001", "100.00", "2026-08-03", channel="claim", netted_in=remittance)
    await story.pair("WO", "6660000000001", "-100.00", "2026-08-03", remittance=remittance)
    await story.pair("WO", "6660000000001", "100.00", "2026-08-24", trace="N3")
    await story.evidence("FCN10", "100.00", "2026-06-01", duplicate=True, original_payment_date="2026-05-01")
    await story.evidence("FCN10", "150.00", "2026-05-20", channel="letter", evidence="50.00", source="letter")


async def interest_reversed_before_its_charge(story: LedgerStory) -> None:
    await story.pair("WO", "LATE-3", "50.00", "2026-07-02", trace="W33")
    await story.deferral("LATE-3", "50.00", "2026-07-03", trace="W34")
    await story.interest("LATE-3", 1, "2026-07-04", "2026-08-02", "-0.48", version=2)
    await story.interest("LATE-3", 2, "2026-08-03", "2026-09-01", "0.48")
    await story.interest("LATE-3", 1, "2026-07-04", "2026-08-02", "0.48")
    await story.interest("LATE-3", 2, "2026-08-03", "2026-09-01", "-0.48", version=2)
    await story.interest("LATE-3", 2, "2026-08-03", "2026-09-01", "-0.48", version=3)


async def recoveries_that_give_way(story: LedgerStory) -> None:
    """Findings 3, 9 and 10 of the oracle differential: refunds and parked recoveries giving way by business
    date, a scored guess taken back, unnamed FBs placed whatever came first."""
    await story.deferral("FCN31", "100.00", "2026-06-01", trace="G1")
    await story.pair("WO", "FCN31", "100.00", "2026-07-20", trace="G2", ordinal=1, pair_index=1)
    await story.pair("72", "FCN31", "-100.00", "2026-07-20", trace="G2", ordinal=1, pair_index=2)
    await story.pair("WO", "FCN31", "60.00", "2026-07-01", trace="G3")
    await story.pair("WO", "FCN33", "30.00", "2026-06-20", trace="G4")
    await story.evidence("FCN31", "100.00", "2026-06-01", channel="letter", claims=("FCN33",))
    await story.evidence("FCN00260105000", "100.00", "2026-01-05", channel="letter")
    await story.pair("WO", "FCN01260105000", "100.00", "2026-02-01", trace="G5")
    await story.pair("WO", "FCN00260105000", "100.00", "2026-03-01", trace="G6")
    await story.evidence("FCN01260105000", "100.00", "2026-01-05", channel="letter")
    await story.pair("FB", "T12", "-122.43", "2026-01-12", trace="T12")
    await story.pair("FB", None, "0.51", "2026-01-18", trace="T18")
    await story.pair("FB", None, "122.43", "2026-01-14", trace="T14")
    await story.pair("FB", "T16", "-0.51", "2026-01-16", trace="T16")


STORIES = [
    recoupments_in_and_out_of_order,
    refunds_and_staff,
    forwarding_out_of_order,
    merges_and_netting,
    interest_reversed_before_its_charge,
    recoveries_that_give_way,
]


@pytest.mark.parametrize("story", STORIES)
async def test_both_repositories_publish_the_same_events(
    ledger: asyncpg.Connection, tenant: str, story: Story
) -> None:
    in_memory = LedgerStory(tenant=tenant)
    await story(in_memory)
    in_postgres = LedgerStory(tenant=tenant, backend=PgMatchingRepository(ledger))
    async with ledger.transaction():
        await story(in_postgres)
    assert in_postgres.facts() == in_memory.facts()
    assert len(in_memory.published) > 5


TABLES = (
    "receivables",
    "receivable_keys",
    "receivable_history",
    "adjustments",
    "allocations",
    "interest_charges",
    "forwarding_balances",
    "pending_actions",
    "refund_credits",
)


async def ledger_rows(ledger: asyncpg.Connection, tenant: str) -> dict[str, list[str]]:
    """Every matching row of the tenant, as text, in a fixed order (the history in ``seq`` order, its numbers
    left out: they are the database's, not the ledger's)."""
    found: dict[str, list[str]] = {}
    for table in TABLES:
        order = "seq" if table == "receivable_history" else "1"
        rows = await ledger.fetch(
            f"SELECT to_jsonb(t) - 'seq' - 'received_at' AS r FROM matching.{table} t "
            f"WHERE tenant_id = $1 ORDER BY {order}",
            tenant,
        )
        found[table] = [r["r"] for r in rows]
        if table != "receivable_history":
            found[table].sort()
    return found


@pytest.mark.parametrize("story", STORIES)
async def test_a_whole_story_as_one_batch_leaves_what_one_by_one_leaves(
    ledger: asyncpg.Connection, tenant: str, story: Story
) -> None:
    """The batch repository (``store.batch``: receivables locked and written once, keys and history buffered)
    over a whole story as one batch, against the plain repository one statement per call: the same events and
    the same rows. Each runs in a transaction rolled back after, so both write the same ids."""
    seen: dict[str, tuple[object, dict[str, list[str]]]] = {}
    for name, backend in (("one by one", PgMatchingRepository), ("batch", BatchMatchingRepository)):
        tx = ledger.transaction()
        await tx.start()
        try:
            repo = backend(ledger)
            told = LedgerStory(tenant=tenant, backend=repo)
            await story(told)
            await repo.flush()
            seen[name] = (told.facts(), await ledger_rows(ledger, tenant))
        finally:
            await tx.rollback()
    assert seen["batch"][0] == seen["one by one"][0]
    assert seen["batch"][1] == seen["one by one"][1]
    assert any(seen["batch"][1].values())


class Recorded(LedgerStory):
    """A story that records its messages instead of delivering them (to feed them to the stage)."""

    def __init__(self, tenant: str) -> None:
        super().__init__(tenant=tenant)
        self.sent: list[Envelope[Any]] = []

    async def deliver(self, env: Envelope[Any]) -> list[Outgoing]:
        self.sent.append(env)
        return []


TOPICS: dict[type, Topic[Any]] = {
    ProviderAdjustmentReceived: PROVIDER_ADJUSTMENTS,
    OverpaymentDetected: OVERPAYMENTS,
    StaffActionRecorded: STAFF_ACTIONS,
    InterestAccrued: INTEREST,
}


@pytest.mark.parametrize("story", STORIES)
async def test_a_story_through_the_stage_in_one_batch_leaves_what_one_by_one_leaves(
    ledger: asyncpg.Connection, tenant: str, story: Story
) -> None:
    """The stage's own handler (the batch repository, reading ahead per stretch of one topic) over a whole
    story as one batch, against the plain repository one message at a time: the same outputs and rows."""
    recorded = Recorded(tenant)
    await story(recorded)
    batch = [
        Incoming(TOPICS[type(env.payload)].name, 0, n, env.account_key.encode(), env.to_bytes())
        for n, env in enumerate(recorded.sent)
    ]
    seen: dict[str, tuple[list[list[str]], dict[str, list[str]]]] = {}
    for mode in ("batch", "one by one"):
        tx = ledger.transaction()
        await tx.start()
        try:
            if mode == "batch":
                results = await counted_batch(ledger, "matching", batch)
            else:
                plain = matching_one_at_a_time()
                results = [
                    r for one in batch for r in await counted_batch(ledger, "matching", [one], handler=plain)
                ]
            said = [[_without_time(out.value) for out in r.outputs] for r in results]
            seen[mode] = (said, await ledger_rows(ledger, tenant))
        finally:
            await tx.rollback()
    assert seen["batch"] == seen["one by one"]
    assert any(seen["batch"][0])


def _without_time(value: bytes) -> str:
    body = json.loads(value)
    body.pop("occurred_at", None)
    return json.dumps(body, sort_keys=True)
