"""Intake against the real ledger: what staff see when a file comes again, re-enveloped, or with segments
the reader keeps but does not interpret.

Story: a Medicare 835 is posted; the identical bytes are fed again (a second receipt, nothing posted); a
clearinghouse re-sends the same payment under new ISA13/GS06 (a reissue: nothing posted, not even a second
remittance id); the payer then sends that trace number with other money (posted, with a warning); and a file
carrying an unknown segment posts with the warning stored, never the segment's content.
"""

import asyncpg
import pytest
from harness import intake_files

from contracts.topics import INTAKE
from services.intake import publish
from services.intake.engine import file_message_id
from shared.batches import apply_batch
from shared.messages import Incoming
from shared.settings import REPO_ROOT

ORIGINAL = (REPO_ROOT / "examples" / "835" / "2026-08-03_medicare_deferred.835").read_bytes()
REISSUED = (
    ORIGINAL.replace(b"000000801", b"000000955")
    .replace(b"*8011*", b"*9551*")
    .replace(b"GE*1*8011", b"GE*1*9551")
)

FILES = intake_files()


class Feed:
    """Raw-file messages at increasing offsets of one partition, applied the way the intake stage does."""

    def __init__(self, ledger: asyncpg.Connection, tenant: str) -> None:
        self.ledger, self.tenant, self.offset = ledger, tenant, 0

    async def send(self, content: bytes, name: str, *, offset: int | None = None) -> str:
        return await self.send_message(publish.raw_file_message(content, name, self.tenant, "cli"), offset)

    async def send_message(self, message: tuple[bytes, bytes], offset: int | None = None) -> str:
        key, value = message
        if offset is None:
            offset, self.offset = self.offset, self.offset + 1
        incoming = Incoming(INTAKE.name, 0, offset, key, value)
        [result] = await apply_batch(
            self.ledger, "intake", FILES.handle_file, [incoming], file_message_id, replay=FILES.replay_file
        )
        return result.outcome


async def remittances(ledger: asyncpg.Connection, tenant: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await ledger.fetch(
        "SELECT remittance_id, isa13, warnings FROM intake.remittances WHERE tenant_id = $1 ORDER BY received_at",
        tenant,
    )
    return rows


async def test_an_identical_copy_is_a_receipt_that_posts_nothing_and_says_so(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    from cli.main import _file_note

    feed = Feed(ledger, tenant)
    assert await feed.send(ORIGINAL, "era.835") == "applied"
    # The same bytes again (a staff re-ingest), then a broker redelivery of that same message.
    assert await feed.send(ORIGINAL, "era.835") == "duplicate"
    assert await feed.send(ORIGINAL, "era.835", offset=1) == "duplicate"

    assert len(await remittances(ledger, tenant)) == 1
    kinds = await ledger.fetch(
        'SELECT kind FROM intake.file_receipts WHERE tenant_id = $1 ORDER BY "offset"', tenant
    )
    assert [r["kind"] for r in kinds] == ["received", "copy"]  # the redelivery is not a receipt
    row = dict(
        await ledger.fetchrow(
            "SELECT transactions, rejected, duplicates, 1 AS copies_received, now()::text AS last_copy_at "
            "FROM intake.files WHERE tenant_id = $1",
            tenant,
        )
    )
    assert "identical copy received 1x" in _file_note(row)


async def test_a_re_enveloped_reissue_posts_nothing_and_other_money_posts_with_a_warning(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    feed = Feed(ledger, tenant)
    assert await feed.send(ORIGINAL, "era.835") == "applied"
    assert await feed.send(REISSUED, "era-resent.835") == "applied"
    [posted] = await remittances(ledger, tenant)
    assert posted["isa13"] == "000000801"
    files = await ledger.fetch(
        "SELECT file_name, duplicates FROM intake.files WHERE tenant_id = $1 ORDER BY file_name", tenant
    )
    assert [(f["file_name"], f["duplicates"]) for f in files] == [("era-resent.835", 1), ("era.835", 0)]

    # Same payer, payee, trace and date, but a deferral a cent larger (BPR02 too): not a copy.
    other = REISSUED.replace(b"000000955", b"000000956").replace(b"BPR*I*584.57", b"BPR*I*584.58")
    other = other.replace(b"WO:FCN26080300017*-300~", b"WO:FCN26080300017*-300.01~")
    assert await feed.send(other, "era-corrected.835") == "applied"
    rows = await remittances(ledger, tenant)
    assert len(rows) == 2
    assert any("already posted for this payer and payee with other totals" in w for w in rows[1]["warnings"])


async def test_an_unknown_segment_posts_with_a_stored_warning_and_no_content(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    unknown = ORIGINAL.replace(b"SE*69*0001~", b"SE*70*0001~").replace(
        b"TRN*1*", b"MSG*PATIENT JANE ROE CALLED~TRN*1*", 1
    )
    assert await Feed(ledger, tenant).send(unknown, "era-msg.835") == "applied"
    [posted] = await remittances(ledger, tenant)
    assert any("MSG" in w for w in posted["warnings"])
    assert not any("ROE" in w or "JANE" in w for w in posted["warnings"])


async def test_a_file_with_a_broken_transaction_posts_the_good_one_and_records_every_error(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    gs, ge, iea = ORIGINAL.index(b"GS*"), ORIGINAL.index(b"GE*1*8011"), ORIGINAL.index(b"IEA*")
    group = ORIGINAL[gs:ge].replace(b"*8011*", b"*8012*").replace(b"BPR*I*584.57", b"BPR*I*584.58")
    group = group.replace(b"TRN*1*EFT260803001", b"TRN*1*EFT260803002")
    # Group 1: a good transaction under a GE01 that says 2; group 2: an unbalanced transaction.
    mixed = ORIGINAL[:ge] + b"GE*2*8011~\n" + group + b"GE*1*8012~\nIEA*2*000000801~\n"
    assert iea > ge
    key, value = publish.raw_file_message(mixed, "mixed.835", tenant, "cli")
    [result] = await apply_batch(
        ledger,
        "intake",
        FILES.handle_file,
        [Incoming(INTAKE.name, 0, 0, key, value)],
        file_message_id,
        replay=FILES.replay_file,
    )
    [posted] = await remittances(ledger, tenant)
    assert posted["isa13"] == "000000801"
    dead = [o for o in result.outputs if o.topic == INTAKE.dlt]
    headers = [dict(o.headers) for o in dead]
    assert sorted(h["reason"] for h in headers) == [b"envelope", b"unbalanced"]
    assert any(h.get("location.element") == b"BPR02" for h in headers)
    assert any(o.topic == "remit.claim-payments.v2" for o in result.outputs)
    stored = await ledger.fetch(
        "SELECT reason FROM intake.rejections WHERE tenant_id = $1 ORDER BY transaction_index", tenant
    )
    assert sorted(r["reason"] for r in stored) == ["envelope", "unbalanced"]


async def test_a_file_too_large_for_one_message_goes_as_parts_that_post_what_the_whole_would(
    ledger: asyncpg.Connection, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 3-transaction file over the (here tiny) message limit is cut between transactions (two fit in a
    message); the parts post
    the three remittances once, under the interchange and group control numbers of the file, and a second
    feed of the same large file posts nothing."""
    st, ge = ORIGINAL.index(b"ST*835*"), ORIGINAL.index(b"GE*1*8011")
    transaction = ORIGINAL[st:ge]
    copies = [
        transaction.replace(b"*0001", b"*000" + n).replace(b"EFT260803001", b"EFT26080300" + n)
        for n in (b"2", b"3")
    ]
    large = ORIGINAL[:ge] + b"".join(copies) + b"GE*3*8011~\n" + ORIGINAL[ORIGINAL.index(b"IEA*") :]
    monkeypatch.setattr(publish, "MAX_MESSAGE_BYTES", 1_000 + (2 * len(transaction) + 600) * 4 // 3)
    monkeypatch.setattr(publish, "_ENVELOPE_ROOM", 1_000)
    messages = publish.raw_file_messages(large, "weekly.835", tenant, "cli")
    assert len(messages) == 2
    feed = Feed(ledger, tenant)
    assert [await feed.send_message(m) for m in messages] == ["applied", "applied"]
    posted = await ledger.fetch(
        "SELECT isa13, gs06, st02, trace_number FROM intake.remittances WHERE tenant_id = $1 ORDER BY st02",
        tenant,
    )
    assert [tuple(r) for r in posted] == [
        ("000000801", "8011", f"000{n}", f"EFT26080300{n}") for n in (1, 2, 3)
    ]
    files = await ledger.fetch("SELECT file_name FROM intake.files WHERE tenant_id = $1 ORDER BY 1", tenant)
    assert [f["file_name"] for f in files] == ["weekly.part1of2.835", "weekly.part2of2.835"]
    again = publish.raw_file_messages(large, "weekly.835", tenant, "drop_folder")
    assert [await feed.send_message(m) for m in again] == ["duplicate", "duplicate"]
    assert len(await remittances(ledger, tenant)) == 3


async def test_a_clearinghouse_batch_posts_each_clinics_remittance_under_that_clinic_only(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    """Routed by payee NPI at ingest: the other clinic's remittance, claims and PLB pairs never appear
    under the receiving tenant, and each tenant's file lists only its own transactions."""
    other_clinic = f"{tenant}-b"
    st, ge = ORIGINAL.index(b"ST*835*"), ORIGINAL.index(b"GE*1*8011")
    second = (
        ORIGINAL[st:ge]
        .replace(b"*0001", b"*0002")
        .replace(b"EFT260803001", b"EFT260803002")
        .replace(b"*XX*1234567893", b"*XX*1999999984")
    )
    assert b"*XX*1999999984" in second
    batch = ORIGINAL[:ge] + second + b"GE*2*8011~\n" + ORIGINAL[ORIGINAL.index(b"IEA*") :]
    messages = publish.raw_file_messages(
        batch, "batch.835", tenant, "drop_folder", payees={"1999999984": other_clinic}
    )
    feed = Feed(ledger, tenant)
    assert [await feed.send_message(m) for m in messages] == ["applied", "applied"]
    posted = await ledger.fetch(
        "SELECT tenant_id, payee_id, st02 FROM intake.remittances WHERE tenant_id IN ($1, $2) ORDER BY st02",
        tenant,
        other_clinic,
    )
    assert [tuple(r) for r in posted] == [
        (tenant, "1234567893", "0001"),
        (other_clinic, "1999999984", "0002"),
    ]
    files = await ledger.fetch(
        "SELECT tenant_id, transactions FROM intake.files WHERE tenant_id IN ($1, $2) ORDER BY 1",
        tenant,
        other_clinic,
    )
    assert [tuple(f) for f in files] == [(tenant, 1), (other_clinic, 1)]
