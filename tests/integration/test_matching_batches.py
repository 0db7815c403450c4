"""Matching handles a batch with statements per batch, not per message (``store.batch``), and leaves the ledger
and the announcements one message at a time leaves.

The batches are what a backlog of claim payments brings: detection's evidence opening receivables, then the PLB
pairs of the remittances that recover them (several pairs per remittance, a receivable recovered twice in one
batch, one settled, a pair that is no offset)."""

import json
from typing import Any

import asyncpg
import pytest
from harness import counted_batch, matching_one_at_a_time
from matching.ledger_story import LedgerStory

from contracts.envelope import Envelope
from contracts.topics import INTEREST, OVERPAYMENTS, PROVIDER_ADJUSTMENTS, Topic
from shared.ids import stable_id
from shared.messages import Incoming, Result

pytestmark = pytest.mark.integration


def incoming(topic: Topic[Any], envelopes: list[Envelope[Any]]) -> list[Incoming]:
    """Envelopes as the stage consumes them from ``topic``."""
    return [
        Incoming(topic.name, 0, offset, topic.key_of(env).encode(), env.to_bytes())
        for offset, env in enumerate(envelopes)
    ]


def backlog(tenant: str, count: int) -> list[list[Incoming]]:
    """Three batches: ``count`` receivables' evidence; the pairs that recover them (40.00 of each 100.00, four
    pairs a remittance; every third receivable recovered again in the same batch, 60.00: settled; every
    fourth remittance with a pair that is no offset, every sixth pair followed by a deferral naming a
    receivable not known yet, every eighth by one whose reference names nothing); then evidence netted in those remittances (every third receivable: those
    with a deferral in the remittance net nothing)."""
    story = LedgerStory(tenant=tenant)
    evidence = [
        story.evidence_event(f"FCN{n}", "100.00", "2026-01-05", channel="letter") for n in range(count)
    ]
    pairs, netted = [], []
    for n in range(count):
        trace = f"T{n // 4}"
        pairs.append(story.pair_event("WO", f"FCN{n}", "40.00", "2026-02-02", trace=trace))
        if n % 3 == 0:
            pairs.append(story.pair_event("WO", f"FCN{n}", "60.00", "2026-02-09", trace=f"U{n}"))
        if n % 4 == 3:
            pairs.append(story.pair_event("L6", None, "-5.00", "2026-02-02", trace=trace))
        if n % 6 == 5:
            pairs.append(story.pair_event("WO", f"FCN{n}X", "-30.00", "2026-02-02", trace=trace))
        if n % 8 == 7:  # names nothing: the scored search looks through the account's open receivables
            pairs.append(story.pair_event("WO", f"FCN{n - 1}0", "60.00", "2026-02-10", trace=f"V{n}"))
        if n % 3 == 2:
            remittance = stable_id("remittance", tenant, trace)
            netted.append(story.evidence_event(f"FCN{n}X", "30.00", "2026-02-02", netted_in=remittance))
    return [
        incoming(OVERPAYMENTS, evidence),
        incoming(PROVIDER_ADJUSTMENTS, pairs),
        incoming(OVERPAYMENTS, netted),
    ]


def matching(statement: str) -> bool:
    """A statement of the engine's ledger, not the runtime's (the transaction, its savepoint, claiming the
    ids and storing the outputs in ``ops.processed_events``)."""
    return not statement.startswith(("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE")) and "ops." not in statement


async def test_a_batch_costs_the_same_statements_whatever_its_size(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    counted: dict[tuple[str, int], list[str]] = {}
    for count in (4, 12, 48):  # the first batches warm the connection's type cache up
        for name, batch in zip(
            ("evidence", "pairs", "netted"), backlog(f"{tenant}-{count}", count), strict=True
        ):
            statements = counted[name, count] = []
            results = await counted_batch(ledger, "matching", batch, statements)
            assert [r.outcome for r in results] == ["applied"] * len(batch)
            print(f"{count} {name}:", *filter(matching, statements), sep="\n  ")

    def ledger_statements(name: str, count: int) -> int:
        return sum(map(matching, counted[name, count]))

    # Evidence: read ahead (the receivables locked, their allocations, postings and keys, the account's parked
    # recoveries and scored guesses, the payer's waiting actions), then one INSERT per table (receivables,
    # keys, history): 10 whatever the batch (one statement at a time: 120 for 12, 480 for 48).
    assert ledger_statements("evidence", 12) == ledger_statements("evidence", 48) == 10, counted[
        "evidence", 48
    ]
    # Pairs: read ahead (keys, the receivables they name locked, their allocations and postings, sibling 72s),
    # the account's open receivables once for the pairs whose reference names nothing, then one write per table
    # (receivables, history, pairs, allocations): 10 (one statement at a time: about 10 a pair).
    assert ledger_statements("pairs", 12) == ledger_statements("pairs", 48) == 10, counted["pairs", 48]
    # Evidence netted in a remittance: read ahead as above plus the remittance's deferrals, then one write per
    # table (receivables, keys, history, allocations).
    assert ledger_statements("netted", 12) == ledger_statements("netted", 48) == 12, counted["netted", 48]


def announced(result: Result) -> list[dict[str, Any]]:
    """What a message's outputs say, without the time they were made."""
    said = []
    for out in result.outputs:
        body = json.loads(out.value)
        body.pop("occurred_at", None)
        said.append({"topic": out.topic, "key": out.key, **body})
    return said


async def ledger_rows(ledger: asyncpg.Connection, tenant: str) -> list[list[str]]:
    """The tenant's matching rows as text (history in the order written)."""
    found = []
    for table, order in (
        ("receivables", "receivable_id"),
        ("receivable_keys", "receivable_id, kind, key"),
        ("receivable_history", "seq"),
        ("adjustments", "adjustment_id"),
        ("allocations", "allocation_id"),
    ):
        rows = await ledger.fetch(
            f"SELECT (to_jsonb(t) - 'seq')::text AS r FROM matching.{table} t WHERE tenant_id = $1 ORDER BY {order}",
            tenant,
        )
        found.append([r["r"] for r in rows])
    return found


async def test_a_batch_leaves_the_ledger_one_message_at_a_time_would(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    """The same messages as two batches and one by one over the plain repository (a statement per call; in
    transactions rolled back after, so the ids are the same): the same outputs and rows, the history in the
    same order."""
    seen: dict[str, tuple[list[list[dict[str, Any]]], list[list[str]]]] = {}
    for mode in ("batch", "one by one"):
        tx = ledger.transaction()
        await tx.start()
        try:
            results: list[Result] = []
            for batch in backlog(tenant, 24):
                if mode == "batch":
                    results += await counted_batch(ledger, "matching", batch)
                else:
                    for one in batch:
                        results += await counted_batch(
                            ledger, "matching", [one], handler=matching_one_at_a_time()
                        )
            assert [r.outcome for r in results] == ["applied"] * len(results)
            seen[mode] = ([announced(r) for r in results], await ledger_rows(ledger, tenant))
        finally:
            await tx.rollback()
    assert seen["batch"][0] == seen["one by one"][0]
    assert seen["batch"][1] == seen["one by one"][1]
    changes = [e["event_type"] for out in seen["batch"][0] for e in out]
    assert changes.count("ReceivableSettled") == 8 + 4  # recovered twice; netted in full (no deferral)
    assert changes.count("ReceivableReduced") > 0


def interleaved(tenant: str, count: int) -> list[Incoming]:
    """Evidence and PLB pairs alternating, as a backlog brings them when detection's overpayments and intake's
    pairs share a batch: each receivable's evidence, then the pair that recovers part of it by its reference."""
    story = LedgerStory(tenant=tenant)
    mixed: list[Incoming] = []
    for n in range(count):
        opened = story.evidence_event(f"FCN{n}", "100.00", "2026-01-05", channel="letter")
        pair = story.pair_event("WO", f"FCN{n}", "40.00", "2026-02-02", trace=f"T{n // 4}")
        mixed += [*incoming(OVERPAYMENTS, [opened]), *incoming(PROVIDER_ADJUSTMENTS, [pair])]
    return mixed


def every_kind_interleaved(tenant: str, count: int) -> list[Incoming]:
    """:func:`backlog`'s evidence and pairs (second recoveries, pairs that are no offset, deferrals, references
    naming nothing) alternating."""
    [evidence, pairs, _] = backlog(tenant, count)
    mixed: list[Incoming] = []
    for n, opened in enumerate(evidence):
        mixed += [opened, *pairs[2 * n : 2 * n + 2]]
    return mixed + pairs[2 * count :]


async def test_evidence_and_pairs_that_alternate_are_one_call_and_leave_what_one_by_one_does(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    """The five topics share one handler: a batch alternating between evidence and the pairs that name its
    receivables reads ahead and writes once (it was a call, with its reads and writes, per stretch of one
    topic), and a batch of every kind alternating gives what the plain repository gives one message at a
    time."""
    counted: dict[int, list[str]] = {}
    for count in (4, 12, 48):
        statements = counted[count] = []
        batch = interleaved(f"{tenant}-{count}", count)
        results = await counted_batch(ledger, "matching", batch, statements)
        assert [r.outcome for r in results] == ["applied"] * len(batch)
    assert sum(map(matching, counted[12])) == sum(map(matching, counted[48])), counted[48]
    seen: dict[str, tuple[list[list[dict[str, Any]]], list[list[str]]]] = {}
    for mode in ("batch", "one by one"):
        tx = ledger.transaction()
        await tx.start()
        try:
            batch = every_kind_interleaved(tenant, 24)
            if mode == "batch":
                results = await counted_batch(ledger, "matching", batch)
            else:
                one_by_one = matching_one_at_a_time()
                results = [
                    r
                    for one in batch
                    for r in await counted_batch(ledger, "matching", [one], handler=one_by_one)
                ]
            assert [r.outcome for r in results] == ["applied"] * len(batch)
            seen[mode] = ([announced(r) for r in results], await ledger_rows(ledger, tenant))
        finally:
            await tx.rollback()
    assert seen["batch"] == seen["one by one"]


async def same_as_one_by_one(
    ledger: asyncpg.Connection, batches: list[list[Incoming]]
) -> list[list[dict[str, Any]]]:
    """Run ``batches`` as batches and each message alone over the plain repository (rolled back after each
    mode, so the ids are the same); assert the same outputs and rows; the one-by-one outputs."""
    seen: dict[str, tuple[list[list[dict[str, Any]]], list[list[str]]]] = {}
    tenant = json.loads(batches[0][0].value)["tenant_id"]
    for mode in ("batch", "one by one"):
        tx = ledger.transaction()
        await tx.start()
        try:
            results: list[Result] = []
            for batch in batches:
                if mode == "batch":
                    results += await counted_batch(ledger, "matching", batch)
                else:
                    one_by_one = matching_one_at_a_time()
                    for one in batch:
                        results += await counted_batch(ledger, "matching", [one], handler=one_by_one)
            assert [r.outcome for r in results] == ["applied"] * len(results)
            seen[mode] = ([announced(r) for r in results], await ledger_rows(ledger, tenant))
        finally:
            await tx.rollback()
    assert seen["batch"][1] == seen["one by one"][1]
    assert seen["batch"][0] == seen["one by one"][0]
    return seen["one by one"][0]


async def test_parked_pairs_re_matched_in_a_batch_keep_their_business_order_for_interest(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    """Two parked recoveries of the same day re-matched by evidence in a later batch: interest goes to the
    first by TRN02, as one by one (the batch once ranked a parked pair it had not read as staff money, and
    the tie fell to the allocation id)."""
    story = LedgerStory(tenant=tenant)
    first: list[Envelope[Any]] = [
        story.evidence_event("FCN41", "100.00", "2026-06-01", channel="letter"),
        story.interest_event("FCN41", 1, "2026-06-01", "2026-06-30", "1.00"),
        *(story.pair_event("WO", "FCN43", "10.00", "2026-07-10", trace=f"Q{n}") for n in (6, 5, 4, 3, 2, 1)),
    ]
    second: list[Envelope[Any]] = [
        story.evidence_event(
            "FCN41", "100.00", "2026-06-01", channel="letter", claims=("FCN43",), source="TRN EFT2 PLB"
        )
    ]
    topics: dict[str, Topic[Any]] = {
        "OverpaymentDetected": OVERPAYMENTS,
        "ProviderAdjustmentReceived": PROVIDER_ADJUSTMENTS,
    }
    batches = [
        [m for env in envs for m in incoming(topics.get(env.event_type, INTEREST), [env])]
        for envs in (first, second)
    ]
    await same_as_one_by_one(ledger, batches)


async def test_a_receivable_opened_in_a_batch_is_scored_by_its_keys_after_the_pool_was_read(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    """In one batch: a recovery naming nothing reads the account's open receivables; evidence opens another;
    a recovery whose reference is close to the new one's is scored against its keys, as one by one (the
    batch once served the list read before, without the new receivable's keys)."""
    story = LedgerStory(tenant=tenant)
    topics: dict[str, Topic[Any]] = {
        "OverpaymentDetected": OVERPAYMENTS,
        "ProviderAdjustmentReceived": PROVIDER_ADJUSTMENTS,
    }
    before: list[Envelope[Any]] = [
        story.evidence_event("FCN00260104000", "80.00", "2026-01-04", channel="letter")
    ]
    envs: list[Envelope[Any]] = [
        story.pair_event("WO", "ZZZ", "10.00", "2026-02-01", trace="P1"),
        story.evidence_event("FCN00260105000", "100.00", "2026-01-05", channel="letter"),
        story.pair_event("WO", "FCN00260105000X", "100.00", "2026-02-02", trace="P2"),
    ]
    batches = [
        [m for env in part for m in incoming(topics[env.event_type], [env])] for part in (before, envs)
    ]
    said = await same_as_one_by_one(ledger, batches)
    [offset] = [e for e in said[-1] if e["event_type"] == "OffsetApplied"]
    assert "(scored:" in offset["payload"]["reason"], offset  # the case under test: scored, not parked
