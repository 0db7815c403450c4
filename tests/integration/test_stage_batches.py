"""The batch loop every stage runs (``shared.batches.apply_batch``), against the real ledger database.

A batch is one transaction; its messages run together, and a failing one is isolated by re-running parts of
the batch. These tests pin what billing depends on: a poison
message costs only itself, a redelivered batch re-publishes the same bytes and writes nothing, a message seen
twice counts once, two workers that briefly hold the same partition never both apply it, and a transient error
leaves no trace to be retried on top of.
"""

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from functools import partial

import asyncpg
import pytest

from cli.local_infra import Stack
from contracts.topics import INTAKE, LETTERS, STAFF_ACTIONS
from services.intake import publish
from shared.batches import apply_batch
from shared.effects import after_commit
from shared.messages import BatchHandler, Handler, Incoming, Outgoing, PerInput, Rejected, envelope_event_id
from shared.settings import REPO_ROOT
from shared.stream import dispatcher

EFFECTS = "public.test_batch_effects"


def message(event_id: str, *, poison: str = "") -> Incoming:
    body = {"event_id": event_id, "poison": poison}
    return Incoming("remit.test.v1", 0, 0, event_id.encode(), json.dumps(body).encode())


def handler_for(service: str, *, hold: float = 0.0) -> Handler:
    """A handler that writes one effect row, then fails as the message asks; ``hold`` keeps the transaction
    open (a slow worker) after the write."""

    async def handle(conn: asyncpg.Connection, incoming: Incoming) -> Sequence[Outgoing]:
        body = json.loads(incoming.value)
        await conn.execute(
            f"INSERT INTO {EFFECTS} (service, event_id) VALUES ($1, $2)", service, body["event_id"]
        )
        if hold:
            await asyncio.sleep(hold)
        match body["poison"]:
            case "rejected":
                raise Rejected("invalid_message", "the test said no", {"segment": "3"})
            case "crash":
                raise ZeroDivisionError
            case "deadlock":
                raise asyncpg.exceptions.DeadlockDetectedError("deadlock detected")
        return [Outgoing("remit.test-out.v1", body["event_id"], f"out:{body['event_id']}".encode())]

    return handle


@pytest.fixture
async def service(ledger: asyncpg.Connection, tenant: str) -> AsyncIterator[str]:
    await ledger.execute(
        f"CREATE TABLE IF NOT EXISTS {EFFECTS} (service text NOT NULL, event_id text NOT NULL)"
    )
    yield f"batch-test-{tenant}"


async def effects(ledger: asyncpg.Connection, service: str) -> list[str]:
    rows = await ledger.fetch(f"SELECT event_id FROM {EFFECTS} WHERE service = $1 ORDER BY event_id", service)
    return [r["event_id"] for r in rows]


async def claimed(ledger: asyncpg.Connection, service: str) -> list[str]:
    rows = await ledger.fetch(
        "SELECT event_id FROM ops.processed_events WHERE service = $1 ORDER BY event_id", service
    )
    return [r["event_id"] for r in rows]


async def test_a_poison_message_costs_only_itself(ledger: asyncpg.Connection, service: str) -> None:
    batch = [
        message("e1"),
        message("e2", poison="rejected"),
        message("e3"),
        Incoming("remit.test.v1", 0, 7, b"k", b"not json at all"),
        message("e4", poison="crash"),
    ]
    results = await apply_batch(ledger, service, handler_for(service), batch, envelope_event_id)

    assert [r.outcome for r in results] == [
        "applied",
        "dead_lettered",
        "applied",
        "dead_lettered",
        "dead_lettered",
    ]
    # the rejected message's own write was rolled back to its savepoint; its neighbours committed
    assert await effects(ledger, service) == ["e1", "e3"]
    # rejected inputs are not claimed, so `offsetstream dlt replay` can re-drive them after a fix
    assert await claimed(ledger, service) == ["e1", "e3"]
    reasons = [dict(r.outputs[0].headers)["reason"] for r in results if r.outcome == "dead_lettered"]
    assert reasons == [b"invalid_message", b"invalid_message", b"processing_error"]
    assert results[1].outputs[0].value == batch[1].value  # the original bytes go to the DLT
    assert results[1].outputs[0].topic == "remit.test.dlt"


async def test_a_redelivered_batch_republishes_the_same_bytes_and_writes_nothing(
    ledger: asyncpg.Connection, service: str
) -> None:
    batch = [message("e1"), message("e2"), message("e3")]
    first = await apply_batch(ledger, service, handler_for(service), batch, envelope_event_id)
    again = await apply_batch(ledger, service, handler_for(service), batch, envelope_event_id)

    assert [r.outcome for r in again] == ["duplicate"] * 3
    assert [r.outputs for r in again] == [r.outputs for r in first]
    assert await effects(ledger, service) == ["e1", "e2", "e3"]


async def test_the_same_message_twice_in_one_batch_counts_once(
    ledger: asyncpg.Connection, service: str
) -> None:
    batch = [message("e1"), message("e1"), message("e2")]
    results = await apply_batch(ledger, service, handler_for(service), batch, envelope_event_id)

    assert [r.outcome for r in results] == ["applied", "duplicate", "applied"]
    assert results[1].outputs == results[0].outputs
    assert await effects(ledger, service) == ["e1", "e2"]


async def test_two_workers_holding_the_same_message_apply_it_once(
    ledger: asyncpg.Connection, stack: Stack, service: str
) -> None:
    """A rebalance can hand a partition to a second worker while the first is still inside its transaction.
    The second worker's claim waits for the first one's commit and then sees the message as done."""
    dsn = stack.postgres.dsn
    slow, fast = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    try:
        batch = [message("e1"), message("e2")]
        first = asyncio.create_task(
            apply_batch(slow, service, handler_for(service, hold=0.5), batch, envelope_event_id)
        )
        await asyncio.sleep(0.2)  # the slow worker has claimed both and is inside its handler
        second = await apply_batch(fast, service, handler_for(service), batch, envelope_event_id)
        done = await first
    finally:
        await slow.close()
        await fast.close()

    assert [r.outcome for r in done] == ["applied", "applied"]
    assert [r.outcome for r in second] == ["duplicate", "duplicate"]
    assert [r.outputs for r in second] == [r.outputs for r in done]
    assert await effects(ledger, service) == ["e1", "e2"]


async def test_a_transient_error_leaves_no_trace_of_its_batch(
    ledger: asyncpg.Connection, service: str
) -> None:
    batch = [message("e1"), message("e2", poison="deadlock"), message("e3")]
    with pytest.raises(asyncpg.exceptions.DeadlockDetectedError):
        await apply_batch(ledger, service, handler_for(service), batch, envelope_event_id)

    assert await effects(ledger, service) == []
    assert await claimed(ledger, service) == []
    # the retry (the caller's job) then applies everything
    retried = [message("e1"), message("e2"), message("e3")]
    results = await apply_batch(ledger, service, handler_for(service), retried, envelope_event_id)
    assert [r.outcome for r in results] == ["applied"] * 3


async def test_intake_rebuilds_a_redelivered_file_s_messages_instead_of_storing_them(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    """Intake's outputs are every claim of a file; they are rebuilt on redelivery, not kept a second time."""
    from harness import intake_files

    from services.intake.engine import file_message_id

    intake = intake_files()
    files = sorted((REPO_ROOT / "examples" / "835").glob("*.835"))
    batch: list[Incoming] = []
    for path in files:
        key, value = publish.raw_file_message(path.read_bytes(), path.name, tenant, "cli")
        batch.append(Incoming(INTAKE.name, 0, len(batch), key, value))

    first = await apply_batch(
        ledger, "intake", intake.handle_file, batch, file_message_id, replay=intake.replay_file
    )
    again = await apply_batch(
        ledger, "intake", intake.handle_file, batch, file_message_id, replay=intake.replay_file
    )

    assert [r.outcome for r in first] == ["applied"] * len(files)
    assert [r.outcome for r in again] == ["duplicate"] * len(files)
    for applied, redelivered in zip(first, again, strict=True):
        assert applied.outputs, "every example file posts something"
        assert [event_key(o) for o in redelivered.outputs] == [event_key(o) for o in applied.outputs]
    stored = await ledger.fetch(
        "SELECT outputs::text AS o FROM ops.processed_events WHERE service = 'intake' AND event_id = ANY($1)",
        [file_message_id(i) for i in batch],
    )
    assert [r["o"] for r in stored] == ["[]"] * len(files)


def event_key(out: Outgoing) -> tuple[str, str, str]:
    """What makes a message the same message downstream: topic, key and deterministic event id."""
    return out.topic, out.key, json.loads(out.value)["event_id"] if not out.topic.endswith(".dlt") else ""


async def test_a_message_of_a_topic_without_a_handler_is_dead_lettered_not_handled_as_another(
    ledger: asyncpg.Connection, service: str
) -> None:
    """Dispatch is by topic: each message reaches the handler registered for its own topic, and a message of
    a topic nothing was registered for is a dead letter of its own (``unknown_topic``), never the last
    branch of someone else's handler."""
    seen: list[str] = []

    async def on_letter(conn: asyncpg.Connection, incoming: Incoming) -> Sequence[Outgoing]:
        seen.append(json.loads(incoming.value)["event_id"])
        return []

    dispatch = dispatcher(service, {LETTERS.name: on_letter})
    letter = replace(message("l1"), topic=LETTERS.name)
    stray = replace(message("s1"), topic=STAFF_ACTIONS.name)
    results = await apply_batch(ledger, service, dispatch, [letter, stray], envelope_event_id)

    assert [r.outcome for r in results] == ["applied", "dead_lettered"]
    assert seen == ["l1"]
    [record] = results[1].outputs
    headers = dict(record.headers)
    assert headers["reason"] == b"unknown_topic" and record.topic == STAFF_ACTIONS.dlt
    assert STAFF_ACTIONS.name.encode() in headers["error"] and record.value == stray.value
    assert await claimed(ledger, service) == ["l1"]  # the stray one stays replayable


async def test_a_poison_message_is_isolated_without_a_savepoint_each_and_effects_count_once(
    ledger: asyncpg.Connection, service: str
) -> None:
    """The batch runs in one savepoint; a poison message makes it re-run in parts until the message is alone.
    Its neighbours' effects inside the database are written once, and those outside it (deferred with
    ``after_commit``) happen once, after the commit, and only for what was committed."""
    counted: list[str] = []
    inner = handler_for(service)

    async def counting(conn: asyncpg.Connection, incoming: Incoming) -> Sequence[Outgoing]:
        outputs = await inner(conn, incoming)
        after_commit(partial(counted.append, json.loads(incoming.value)["event_id"]))
        return outputs

    async def in_halves(conn: asyncpg.Connection, batch: Sequence[Incoming]) -> list[PerInput]:
        """A batch handler that cannot tell which input failed: the runtime bisects."""
        return [list(await counting(conn, incoming)) for incoming in batch]

    names = [f"e{n:02d}" for n in range(12)]
    for handler in (counting, BatchHandler(in_halves)):
        counted.clear()
        tag = "b" if isinstance(handler, BatchHandler) else "a"
        batch = [message(f"{tag}{n}", poison="crash" if n in ("e04", "e09") else "") for n in names]
        results = await apply_batch(ledger, service, handler, batch, envelope_event_id)
        outcomes = [r.outcome for r in results]
        assert outcomes == ["dead_lettered" if n in ("e04", "e09") else "applied" for n in names]
        assert counted == [f"{tag}{n}" for n in names if n not in ("e04", "e09")]  # once each, in order
    assert await effects(ledger, service) == sorted(
        f"{tag}{n}" for tag in "ab" for n in names if n not in ("e04", "e09")
    )
