"""Notification applies a batch set-based (issue #18.2): learning the patient control numbers of claim payments,
turning receivable changes and offsets into notifications, and queueing those for delivery each cost a
constant number of statements whatever the batch's size, and a batch leaves what one message at a time does
(the "offset applied" join completed once, by the first input that completes it)."""

import asyncio
import json
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from harness import receivable_change, stages
from prometheus_client import REGISTRY

from cli.local_infra import Stack
from contracts.events import Allocation, OffsetRecorded, PatientToken, PatientTokensSeen
from contracts.topics import NOTIFICATIONS, OFFSETS, PATIENT_TOKENS, RECEIVABLES, Topic
from services.notification.learn import learn_id
from shared import db, envelopes, phi
from shared.batches import apply_batch
from shared.ids import account_key, receivable_id, stable_id
from shared.messages import BatchHandler, IdOf, Incoming, Result, envelope_event_id

pytestmark = pytest.mark.integration
D = Decimal
PAYER = "01312"


def handler_of(topic: str) -> BatchHandler:
    """The handler notification's agent for ``topic`` feeds its batches to, as its worker builds it."""
    [stage] = [s for s in stages() if s.service == "notification"]
    [handler] = [h for names, h in stage.subscriptions if topic in names]
    return handler


def record(
    topic: Topic[Any], payload: Any, event_type: str, tenant: str, n: int, cause: str = ""
) -> Incoming:
    key = account_key(tenant, PAYER, f"{1234567890 + n % 3}")
    env = envelopes.build(
        payload,
        event_id=stable_id(tenant, topic.name, event_type, n),
        event_type=event_type,
        tenant_id=tenant,
        account_key=key,
        causation_id=cause or "batch test",
    )
    return Incoming(topic.name, 0, n, key.encode(), env.to_bytes())


def claim(tenant: str, n: int) -> Incoming:
    """Intake's patient tokens event of a one-claim transaction, patient control number ``PCN<n>``."""
    payload = PatientTokensSeen(
        remittance_id=stable_id(tenant, "remittance", n),
        part=1,
        first_claim_ordinal=1,
        claim_count=1,
        tokens=tuple(
            PatientToken(length=length, digest=d, alphanumeric=a)
            for _, length, d, a in phi.shaped_token_rows("id", [f"PCN{n:05d}"])
        ),
    )
    return record(PATIENT_TOKENS, payload, "PatientTokensSeen", tenant, n)


def change(tenant: str, n: int, event_type: str, balance: str, cause: str = "") -> Incoming:
    reference = f"FCN{n:014d}"
    payload = receivable_change(
        tenant,
        event_type,
        reference=reference,
        effective=date(2026, 8, 3),
        determination=date(2026, 8, 3),
        principal="300.00",
        recovered=D("300.00") - D(balance),
        amount="300.00",
        status="open" if D(balance) > 0 else "settled",
        payer=PAYER,
        source="batch test",
    ).payload
    return record(RECEIVABLES, payload, event_type, tenant, n * 10 + len(event_type), cause)


def offset(tenant: str, n: int) -> Incoming:
    reference = f"FCN{n:014d}"
    payload = OffsetRecorded(
        offset_id=offset_id(tenant, n),
        remittance_id=stable_id(tenant, "remittance"),
        payer_id=PAYER,
        trace_number="EFT2",
        payment_date=date(2026, 9, 1),
        segment_ordinal=1,
        pair_index=n,
        reason_code="WO",
        reference=reference,
        amount=D("100.00"),
        bucket="allocated",
        allocations=(
            Allocation(
                receivable_id=receivable_id(tenant, PAYER, reference),
                reference=reference,
                to_interest=D("0.00"),
                to_principal=D("100.00"),
            ),
        ),
        unmatched_amount=D("0.00"),
        reason=f"matched {reference}",
    )
    return record(OFFSETS, payload, "OffsetApplied", tenant, n)


def notified(kind: str) -> float:
    """``remit_notifications_total`` of one kind, as this process counted it so far."""
    return REGISTRY.get_sample_value("remit_notifications_total", {"kind": kind}) or 0.0


def offset_id(tenant: str, n: int) -> UUID:
    return stable_id(tenant, "offset", n)


async def run(
    ledger: asyncpg.Connection,
    batch: Sequence[Incoming],
    statements: list[str] | None = None,
    id_of: IdOf = envelope_event_id,
) -> list[Result]:
    """One notification batch as its worker runs it, the statements it sends collected into ``statements``."""

    def log(query: Any) -> None:
        if statements is not None and "ROLE" not in query.query.split()[:2]:
            statements.append(" ".join(query.query.split())[:70])

    ledger.add_query_logger(log)
    await ledger.execute(f'SET ROLE "{db.service_role("notification")}"')
    try:
        results = await apply_batch(ledger, "notification", handler_of(batch[0].topic), batch, id_of)
        await asyncio.sleep(0)  # query loggers are called soon after, not during
    finally:
        await ledger.execute("RESET ROLE")
        ledger.remove_query_logger(log)
    assert [r.outcome for r in results] == ["applied"] * len(batch)
    return results


async def test_learning_a_batch_of_patient_tokens_is_one_statement_whatever_its_size(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    counted: dict[int, list[str]] = {}
    for count in (5, 10, 200):  # the first batch warms the connection's type cache up
        batch = [claim(f"{tenant}-{count}", n) for n in range(count)]
        counted[count] = statements = list[str]()
        await run(ledger, batch, statements, learn_id)
        print(f"{count} claims: {len(statements)} statements: {statements}")
        learnt = await ledger.fetch(
            "SELECT digest FROM notification.sensitive_tokens WHERE tenant_id = $1", f"{tenant}-{count}"
        )
        assert {r["digest"] for r in learnt} == {phi.digest(f"PCN{n:05d}") for n in range(count)}
    # BEGIN, claim the ids, SAVEPOINT, tokens and their lengths (one statement), RELEASE, COMMIT (no outputs)
    assert len(counted[10]) == len(counted[200]) == 6, counted[200]
    assert sum("sensitive_tokens" in s for s in counted[200]) == 1


async def test_receivables_and_offsets_cost_the_same_statements_whatever_the_batch_size(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    counted: dict[tuple[str, int], list[str]] = {}
    for count in (5, 10, 200):
        who = f"{tenant}-{count}"
        opened = [change(who, n, "ReceivableOpened", "300.00") for n in range(count)]
        applied = [offset(who, n) for n in range(count)]
        reduced = [
            change(who, n, "ReceivableReduced", "200.00", cause=str(offset_id(who, n))) for n in range(count)
        ]
        for name, batch in (("opened", opened), ("offsets", applied), ("reduced", reduced)):
            counted[name, count] = statements = list[str]()
            before = {kind: notified(kind) for kind in ("receivable_opened", "offset_applied")}
            results = await run(ledger, batch, statements)
            print(f"{count} {name}: {len(statements)} statements: {statements}")
            kinds = [[json.loads(o.value)["payload"]["kind"] for o in r.outputs] for r in results]
            expected = {"opened": ["receivable_opened"], "offsets": [], "reduced": ["offset_applied"]}[name]
            assert kinds == [expected] * count
            # remit_notifications_total counts each new notification once, by kind, after the commit
            assert {kind: notified(kind) - was for kind, was in before.items()} == {
                kind: count if [kind] == expected else 0 for kind in before
            }
        deadlines = await ledger.fetchval(
            "SELECT count(*) FROM notification.deadlines WHERE tenant_id = $1", who
        )
        assert deadlines > 0 and deadlines % count == 0  # each receivable's Medicare milestones, once
    for name in ("opened", "offsets", "reduced"):
        assert len(counted[name, 10]) == len(counted[name, 200]), (name, counted[name, 200])
    # a reduction's batch: BEGIN, the claims, SAVEPOINT, two token queries to quote, the receivables copy, its
    # deadlines, the join in (rows locked and read) and out, two token queries to scrub, the notifications,
    # RELEASE, the outputs, COMMIT: nothing per message
    assert len(counted["reduced", 200]) <= 13, counted["reduced", 200]


def alternating(who: str, count: int) -> list[Incoming]:
    """Receivable changes and offsets interleaved as matching publishes them, the join's halves in both
    orders: for even ``n`` the offset comes before the reduction it caused, for odd ``n`` after it."""
    batch: list[Incoming] = []
    for n in range(count):
        reduced = change(who, n, "ReceivableReduced", "200.00", cause=str(offset_id(who, n)))
        halves = [offset(who, n), reduced] if n % 2 == 0 else [reduced, offset(who, n)]
        batch += [change(who, n, "ReceivableOpened", "300.00"), *halves]
    return batch


async def test_a_batch_whose_topics_alternate_costs_constant_statements_and_leaves_what_one_by_one_does(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    """The four upstream topics share one handler: a batch alternating between them is one call (it was one
    call, and its token scans, per stretch of one topic), and each input announces what it would alone."""

    def told(results: Sequence[Result]) -> list[list[tuple[str, dict[str, str]]]]:
        """What each input announced, without the ids (which name the tenant)."""
        payloads = [[json.loads(o.value)["payload"] for o in r.outputs] for r in results]
        return [
            [(p["kind"], {k: v for k, v in p["facts"].items() if not k.endswith("_id")}) for p in out]
            for out in payloads
        ]

    counted: dict[int, list[str]] = {}
    announced: dict[int, list[list[tuple[str, dict[str, str]]]]] = {}
    for count in (4, 10, 60):
        counted[count] = statements = list[str]()
        results = await run(ledger, alternating(f"{tenant}-{count}", count), statements)
        print(f"{count} × 3 alternating: {len(statements)} statements: {statements}")
        announced[count] = told(results)
    assert len(counted[10]) == len(counted[60]), counted[60]
    solo = [told(await run(ledger, [incoming]))[0] for incoming in alternating(f"{tenant}-solo", 10)]
    assert announced[10] == solo
    # the half that arrives second announces the application: the reduction for even n, the offset for odd n
    kinds = [[kind for kind, _ in out] for out in announced[10]]
    assert kinds[:6] == [
        ["receivable_opened"],
        [],
        ["offset_applied"],
        ["receivable_opened"],
        [],
        ["offset_applied"],
    ]


async def test_two_workers_each_holding_one_half_of_the_join_announce_it_once(
    ledger: asyncpg.Connection, stack: Stack, tenant: str
) -> None:
    """An offset and the reduction it caused are on two topics, whose partitions two workers may own: the
    second worker waits for the first's row, reads its half as committed, and announces the application."""
    await run(ledger, [change(tenant, 1, "ReceivableOpened", "300.00")])
    other = await asyncpg.connect(stack.postgres.dsn)
    try:
        first = ledger.transaction()
        await first.start()
        [by_offset] = await run(ledger, [offset(tenant, 1)])  # applied, not committed yet
        reduced = change(tenant, 1, "ReceivableReduced", "200.00", cause=str(offset_id(tenant, 1)))
        second = asyncio.create_task(run(other, [reduced]))
        await asyncio.sleep(0.5)
        assert not second.done()  # waiting for the first worker's join row
        await first.commit()
        [by_reduction] = await asyncio.wait_for(second, timeout=10)
    finally:
        await other.close()
    kinds = [json.loads(o.value)["payload"]["kind"] for o in (*by_offset.outputs, *by_reduction.outputs)]
    assert kinds.count("offset_applied") == 1 and kinds[-1] == "offset_applied"


async def test_the_offset_applied_join_completes_once_in_a_batch_as_one_by_one(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    """The balance half first, then two offset events of the same PLB pair in one batch (recorded again when
    its overpayment became known): only the first announces the application, with its own amounts."""
    await run(ledger, [change(tenant, 1, "ReceivableOpened", "300.00")])
    await run(ledger, [change(tenant, 1, "ReceivableReduced", "200.00", cause=str(offset_id(tenant, 1)))])
    first = offset(tenant, 1)
    again = record(
        OFFSETS,
        OFFSETS.parse(first.value).payload.model_copy(update={"reason": "matched again"}),
        "OffsetApplied",
        tenant,
        99,
    )
    results = await run(ledger, [first, again])
    [[applied], []] = [[json.loads(o.value)["payload"] for o in r.outputs] for r in results]
    assert applied["kind"] == "offset_applied"
    assert applied["facts"]["applied"] == "100.00" and applied["facts"]["balance_left"] == "200.00"


async def test_delivery_queues_a_batch_in_constant_statements(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    counted: dict[int, list[str]] = {}
    for count in (5, 10, 20):
        who = f"{tenant}-d{count}"
        opened = [change(who, n, "ReceivableOpened", "300.00") for n in range(count)]
        notes = [o for r in await run(ledger, opened) for o in r.outputs]
        batch = [Incoming(NOTIFICATIONS.name, 0, n, o.key.encode(), o.value) for n, o in enumerate(notes)]
        counted[count] = statements = list[str]()
        await run(ledger, batch, statements)
        print(f"{count} notifications to deliver: {len(statements)} statements: {statements}")
        statuses = await ledger.fetch(
            "SELECT DISTINCT status FROM notification.notifications WHERE tenant_id = $1", who
        )
        assert {r["status"] for r in statuses} <= {"queued", "no_route"}
    assert len(counted[10]) == len(counted[20]), counted[20]
    assert len(counted[20]) <= 11, counted[20]


async def test_two_changes_of_one_receivable_in_a_batch_leave_the_last_state(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    """One statement may touch a row once: the receivables copy and the deadlines keep the batch's last change
    of a receivable, as one by one; a settled receivable keeps no pending deadline."""
    batch = [
        change(tenant, 7, "ReceivableOpened", "300.00"),
        change(tenant, 7, "ReceivableReduced", "200.00"),
    ]
    await run(ledger, batch)
    copy = await ledger.fetchrow(
        "SELECT balance, status FROM notification.receivables WHERE tenant_id = $1", tenant
    )
    assert (copy["balance"], copy["status"]) == (D("200.00"), "open")
    assert await ledger.fetchval("SELECT count(*) FROM notification.deadlines WHERE tenant_id = $1", tenant)
    await run(ledger, [change(tenant, 7, "ReceivableSettled", "0.00")])
    assert not await ledger.fetchval(
        "SELECT count(*) FROM notification.deadlines WHERE tenant_id = $1 AND notification_id IS NULL", tenant
    )
