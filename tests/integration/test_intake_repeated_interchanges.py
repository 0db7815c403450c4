"""Intake against the real ledger: a file that holds the same interchange many times (same ISA13, ST02,
trace number and money) posts one remittance and says so in its stored warnings, instead of the copies
silently collapsing into it; a redelivery of that file re-publishes each event once."""

import asyncpg
import pytest
from harness import intake_files

from contracts.topics import CLAIM_PAYMENTS, INTAKE
from services.intake import publish
from services.intake.engine import file_message_id
from shared.batches import apply_batch
from shared.messages import Incoming
from shared.settings import REPO_ROOT

pytestmark = pytest.mark.integration

ORIGINAL = (REPO_ROOT / "examples" / "835" / "2026-08-03_medicare_deferred.835").read_bytes()
COPIES = 25

FILES = intake_files()


async def test_an_interchange_repeated_in_one_file_posts_once_with_a_stored_warning(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    key, value = publish.raw_file_message(ORIGINAL * COPIES, "era-repeated.835", tenant, "cli")
    incoming = Incoming(INTAKE.name, 0, 0, key, value)
    [first] = await apply_batch(
        ledger, "intake", FILES.handle_file, [incoming], file_message_id, replay=FILES.replay_file
    )
    assert first.outcome == "applied"
    [posted] = await ledger.fetch(
        "SELECT isa13, st02, warnings FROM intake.remittances WHERE tenant_id = $1", tenant
    )
    assert (posted["isa13"], posted["st02"]) == ("000000801", "0001")
    [warning] = posted["warnings"]
    assert warning.startswith(f"transaction #1 is repeated {COPIES - 1} more time(s) in this file")
    assert warning.endswith("with the same claims and money: posted once")
    assert "EFT260803001" not in warning and "584.57" not in warning
    files = await ledger.fetch(
        "SELECT transactions, duplicates FROM intake.files WHERE tenant_id = $1", tenant
    )
    assert [(f["transactions"], f["duplicates"]) for f in files] == [(COPIES, COPIES - 1)]
    topics = [o.topic for o in first.outputs]
    assert topics.count("remit.remittances.v1") == 1
    claims = [CLAIM_PAYMENTS.parse(o.value).payload for o in first.outputs if o.topic == CLAIM_PAYMENTS.name]
    assert sum(part.claim_count for part in claims) == ORIGINAL.count(b"\nCLP*")  # each claim once, in parts

    # A broker redelivery rebuilds the same messages, each once (not once per copy in the file).
    [again] = await apply_batch(
        ledger, "intake", FILES.handle_file, [incoming], file_message_id, replay=FILES.replay_file
    )
    assert again.outcome == "duplicate"
    assert sorted(o.topic for o in again.outputs) == sorted(o.topic for o in first.outputs)
