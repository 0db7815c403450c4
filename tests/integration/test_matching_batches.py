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


def refunds_and_rematches(tenant: str, count: int) -> list[list[Incoming]]:
    """Three batches that change pairs and allocations already stored or held back, for ``count`` accounts'
    worth of references (one account: the story's):

    1. evidence opens ``FCN{n}`` (100.00), ``FCN{n}W`` (80.00) and ``FCN{n}N``, netted in remittance ``D{n}``
       (30.00);
    2. PLB pairs: a WO on ``FCN{n}`` and the 72 after it on the same reference and remittance (the WO's
       offset becomes a refund); a 72 before its WO (the WO acknowledges it as it is explained); a WO on
       ``FCN{n}P`` and ``FCN{n}Q`` that no receivable explains yet (parked), the 72 of ``FCN{n}Q``'s netting it
       (it waits as a refund), and evidence opening ``FCN{n}Q`` later in the same batch for every other one
       (re-matched while the pair is held back); a negative WO on ``FCN{n}N`` in remittance ``D{n}`` (the
       payer gives the netting back); last, a WO without a reference, spread oldest first over the account's
       open receivables (the oldest: those whose netting the batch gave back);
    3. evidence opening ``FCN{n}P`` and the remaining ``FCN{n}Q`` (parked pairs re-matched, one as a refund),
       a 72 after a WO of batch 2 on ``FCN{n}W`` (a stored pair becomes a refund), and a WO on ``FCN{n}`` in the
       remittance of batch 2's 72 (its sibling, read ahead)."""
    story = LedgerStory(tenant=tenant)
    first: list[Incoming] = []
    second: list[Incoming] = []
    third: list[Incoming] = []
    for n in range(count):
        netting = stable_id("remittance", tenant, f"D{n}")
        first += incoming(
            OVERPAYMENTS, [story.evidence_event(f"FCN{n}", "100.00", "2026-01-05", channel="letter")]
        )
        first += incoming(
            OVERPAYMENTS, [story.evidence_event(f"FCN{n}N", "30.00", "2026-01-04", netted_in=netting)]
        )
        first += incoming(
            OVERPAYMENTS, [story.evidence_event(f"FCN{n}W", "80.00", "2026-01-07", channel="letter")]
        )
        pairs = [
            story.pair_event("WO", f"FCN{n}", "40.00", "2026-02-02", trace=f"R{n}"),
            story.pair_event("72", f"FCN{n}", "-40.00", "2026-02-02", trace=f"R{n}"),
            story.pair_event("72", f"FCN{n}W", "-20.00", "2026-02-03", trace=f"S{n}"),
            story.pair_event("WO", f"FCN{n}W", "20.00", "2026-02-03", trace=f"S{n}"),
            story.pair_event("WO", f"FCN{n}W", "25.00", "2026-02-04", trace=f"W{n}"),
            story.pair_event("WO", f"FCN{n}P", "35.00", "2026-02-05", trace=f"P{n}"),
            story.pair_event("WO", f"FCN{n}Q", "15.00", "2026-02-06", trace=f"Q{n}"),
            story.pair_event("72", f"FCN{n}Q", "-15.00", "2026-02-06", trace=f"Q{n}"),
            story.pair_event("WO", f"FCN{n}N", "-30.00", "2026-02-07", trace=f"D{n}"),
        ]
        second += incoming(PROVIDER_ADJUSTMENTS, pairs)
        late = [story.evidence_event(f"FCN{n}Q", "50.00", "2026-01-08", channel="letter")]
        (second if n % 2 else third).extend(incoming(OVERPAYMENTS, late))
        third += incoming(
            OVERPAYMENTS, [story.evidence_event(f"FCN{n}P", "60.00", "2026-01-09", channel="letter")]
        )
        third += incoming(
            PROVIDER_ADJUSTMENTS,
            [
                story.pair_event("72", f"FCN{n}W", "-25.00", "2026-02-04", trace=f"W{n}"),
                story.pair_event("WO", f"FCN{n}", "10.00", "2026-02-02", trace=f"R{n}"),
            ],
        )
    lump = story.pair_event(
        "WO", None, f"{30 * count + 5}.00", "2026-01-31", trace="L"
    )  # before batch 3's WOs
    return [first, [*second, *incoming(PROVIDER_ADJUSTMENTS, [lump])], third]


async def test_pairs_and_allocations_changed_in_a_batch_leave_what_one_by_one_does(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    """Refunds acknowledged (a WO's offsets become refunds: the WO held back, stored in an earlier batch, or
    explained after its 72), parked recoveries re-matched (held back or read ahead, as offsets or as refunds),
    nettings given back: the batch changes those pairs and allocations in memory and writes them once, and the
    ledger and the announcements are those of the plain repository one message at a time."""
    said = await same_as_one_by_one(ledger, refunds_and_rematches(tenant, 6))
    events = [e for out in said for e in out]

    def told(event_type: str, reason: str) -> int:
        return sum(e["event_type"] == event_type and reason in e["payload"]["reason"] for e in events)

    # The cases under test, for each of the 6 references: offsets that became refunds (the WO after its 72, and
    # a WO whose remittance has a 72 from an earlier batch; the WO before its 72, in the same batch and in the
    # batch before), a parked WO re-matched as an offset, one
    # re-matched as the refund it waits as, a netting given back.
    assert told("RefundAcknowledged", "refund acknowledged (72 on the same reference): recovered") == 2 * 6
    converted = [
        out for out in said if [e["event_type"] for e in out] == ["RefundAcknowledged", "ReceivableReduced"]
    ]
    assert len(converted) == 2 * 6, (
        converted
    )  # a 72 whose WO's offset became a refund (same batch, batch before)
    assert told("OffsetApplied", "re-matched to") == 6
    assert (
        told("RefundAcknowledged", "refund acknowledged by the payer (72 on the same reference), applied")
        == 6
    )
    assert [e["event_type"] for e in events].count("ReceivableIncreased") == 6
    [lump] = [e for e in events if e["event_type"] == "OffsetApplied" and e["payload"]["trace_number"] == "L"]
    spread = [a["reference"] for a in lump["payload"]["allocations"]]
    assert spread == [*(f"FCN{n}N" for n in range(6)), "FCN0"], spread  # nettings given back reopened FCN{n}N


PER_MESSAGE = (
    "UPDATE matching.allocations SET kind = 'refund'",
    "UPDATE matching.adjustments SET bucket = 'refund_ack",
)
"""What :func:`refunds_and_rematches` still sends per message: a refund acknowledged turns the ledger's offsets of
its WO into refunds (the batch cannot know it holds them all) and sets the bucket of a WO it has not read (the one
being explained, not saved yet)."""


async def test_pairs_and_allocations_changed_in_a_batch_cost_the_same_statements_whatever_its_size(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    """The batches of :func:`refunds_and_rematches` send as many statements for 12 accounts' references as for
    48 but those of :data:`PER_MESSAGE`: re-matching a parked pair, a WO's money awaiting a refund, the sibling
    pairs of a WO or a 72, a netting given back, the account's open receivables once the batch opened or
    reopened one no longer send a statement per message, nor make the batch write what it held back and read its
    money and pairs again. For 48, batch 1 (the pairs) sends 162 statements, 18 of them per batch (1 880 and
    1 688 before); batch 2 (evidence re-matching, 72s) 160 and 16 (1 558 and 1 366)."""
    counted: dict[tuple[int, int], list[str]] = {}
    for count in (4, 12, 48):
        for n, batch in enumerate(refunds_and_rematches(f"{tenant}-{count}", count)):
            statements = counted[n, count] = []
            results = await counted_batch(ledger, "matching", batch, statements)
            assert [r.outcome for r in results] == ["applied"] * len(batch)
            print(f"{count} batch {n}:", *filter(matching, statements), sep="\n  ")

    def per_batch(statement: str) -> bool:
        return matching(statement) and not statement.startswith(PER_MESSAGE)

    for n in range(3):
        small, large = (list(filter(per_batch, counted[n, count])) for count in (12, 48))
        assert len(small) == len(large), (n, large)
    assert sum(map(per_batch, counted[1, 48])) == 18, counted[1, 48]
    assert sum(map(per_batch, counted[2, 48])) == 16, counted[2, 48]


async def test_a_pair_changed_in_a_batch_is_not_read_back_stale_by_a_sibling_lookup(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    """In one batch: interest on another receivable (a statement that makes the batch forget the pairs it read
    ahead), evidence opening ``FCN9``, which re-matches the WO parked on it (the pair's change held back), and
    the 72 on the same reference and remittance as that WO, whose sibling lookup the batch must now send to the
    ledger: it must see the WO re-matched (allocated, nothing unmatched), as one by one, not the row as stored
    before the batch (unmatched: the 72 would make it wait as a refund on top of its offset, and the held
    change would be written back over by the stale copy)."""
    story = LedgerStory(tenant=tenant)
    topics: dict[str, Topic[Any]] = {
        "OverpaymentDetected": OVERPAYMENTS,
        "ProviderAdjustmentReceived": PROVIDER_ADJUSTMENTS,
    }
    before: list[Envelope[Any]] = [
        story.evidence_event("FCN1", "100.00", "2026-01-05", channel="letter"),
        story.pair_event("WO", "FCN9", "30.00", "2026-02-03", trace="T9"),  # parked: FCN9 unknown yet
    ]
    envs: list[Envelope[Any]] = [
        story.interest_event("FCN1", 1, "2026-01-05", "2026-01-31", "1.00"),
        story.evidence_event("FCN9", "50.00", "2026-01-06", channel="letter"),
        story.pair_event("72", "FCN9", "-30.00", "2026-02-03", trace="T9"),
    ]
    batches = [
        [m for env in part for m in incoming(topics.get(env.event_type, INTEREST), [env])]
        for part in (before, envs)
    ]
    await same_as_one_by_one(ledger, batches)
