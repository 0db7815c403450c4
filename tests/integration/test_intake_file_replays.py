"""Intake processing a kept payer file again on request (``FileReplayRequested`` on remit.file-replays.v1, the
console's Replay), against the real ledger.

Story: a Medicare 835 arrives while the broker's message cap is too small for its claims, so its transaction is
refused (``too_large``) and the file is kept; the cap is raised, an admin asks for a replay, and intake posts
the remittance it refused, noting a ``replayed`` receipt. The same request delivered again changes nothing and
publishes the same messages; a second request re-reads the file and posts nothing twice. A request naming a file
intake does not keep is dead-lettered on the requests' own DLT.
"""

import hashlib
import uuid

import asyncpg
import pytest
from harness import intake_files

from contracts.topics import FILE_REPLAYS, INTAKE
from services.intake import engine, publish
from services.intake.engine import file_message_id
from shared.batches import apply_batch
from shared.messages import Incoming, envelope_event_id
from shared.settings import REPO_ROOT

pytestmark = pytest.mark.integration

ORIGINAL = (REPO_ROOT / "examples" / "835" / "2026-08-03_medicare_deferred.835").read_bytes()
FILES = intake_files()


async def _feed(ledger: asyncpg.Connection, tenant: str) -> list[str]:
    key, value = publish.raw_file_message(ORIGINAL, "era.835", tenant, "cli")
    [result] = await apply_batch(
        ledger,
        "intake",
        FILES.handle_file,
        [Incoming(INTAKE.name, 0, 0, key, value)],
        file_message_id,
        replay=FILES.replay_file,
    )
    return [o.topic for o in result.outputs]


async def _request(
    ledger: asyncpg.Connection, tenant: str, sha256: str, form_id: str, offset: int
) -> tuple[str, list[str]]:
    key, value = publish.file_replay_message(tenant, sha256, "admin-ann", form_id)
    [result] = await apply_batch(
        ledger,
        "intake",
        FILES.handle_replay_request,
        [Incoming(FILE_REPLAYS.name, 0, offset, key, value)],
        envelope_event_id,
        replay=FILES.replay_replay_request,
    )
    return result.outcome, [o.topic for o in result.outputs]


async def _receipts(ledger: asyncpg.Connection, tenant: str) -> list[tuple[str, str]]:
    rows = await ledger.fetch(
        'SELECT kind, topic FROM intake.file_receipts WHERE tenant_id = $1 ORDER BY received_at, "offset"',
        tenant,
    )
    return [(r["kind"], r["topic"]) for r in rows]


async def _remittances(ledger: asyncpg.Connection, tenant: str) -> int:
    return int(await ledger.fetchval("SELECT count(*) FROM intake.remittances WHERE tenant_id = $1", tenant))


async def test_a_replay_request_retries_the_rejected_transaction_once_and_posts_nothing_twice(
    ledger: asyncpg.Connection, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sha256 = hashlib.sha256(ORIGINAL).hexdigest()
    monkeypatch.setattr(engine, "MAX_MESSAGE_BYTES", 600)  # too small for the claims: the cause
    assert await _feed(ledger, tenant) == [INTAKE.dlt]
    assert await _remittances(ledger, tenant) == 0
    monkeypatch.undo()  # the cause fixed: the broker takes the messages again

    outcome, topics = await _request(ledger, tenant, sha256, "form-1", 0)
    assert outcome == "applied"
    assert "remit.remittances.v1" in topics and INTAKE.dlt not in topics
    assert await _remittances(ledger, tenant) == 1
    assert await _receipts(ledger, tenant) == [("received", INTAKE.name), ("replayed", FILE_REPLAYS.name)]

    # The same request delivered again (a crash before the offset commit): nothing applied or noted again,
    # the messages it owed are published again with the same ids.
    again, republished = await _request(ledger, tenant, sha256, "form-1", 0)
    assert (again, republished) == ("duplicate", topics)
    # A second request (another form): the file is read again, its remittance is already posted.
    outcome, topics = await _request(ledger, tenant, sha256, "form-2", 1)
    assert outcome == "applied"
    assert "remit.remittances.v1" not in topics
    assert await _remittances(ledger, tenant) == 1
    assert [kind for kind, _ in await _receipts(ledger, tenant)] == ["received", "replayed", "replayed"]


async def test_a_file_still_rejected_is_dead_lettered_to_intake_and_an_unknown_file_refused(
    ledger: asyncpg.Connection, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sha256 = hashlib.sha256(ORIGINAL).hexdigest()
    monkeypatch.setattr(engine, "MAX_MESSAGE_BYTES", 600)
    await _feed(ledger, tenant)
    outcome, topics = await _request(ledger, tenant, sha256, "form-1", 0)
    # Still too large: the record is intake's (so `dlt replay` re-drives the file), never the request's DLT.
    assert (outcome, topics) == ("applied", [INTAKE.dlt])

    other = uuid.uuid4().hex * 2
    outcome, topics = await _request(ledger, tenant, other, "form-1", 1)
    assert (outcome, topics) == ("dead_lettered", [FILE_REPLAYS.dlt])
    # Another tenant cannot replay this tenant's file.
    outcome, topics = await _request(ledger, f"{tenant}-b", sha256, "form-1", 2)
    assert (outcome, topics) == ("dead_lettered", [FILE_REPLAYS.dlt])
