"""The drop folder without Kafka: a fake publisher records what would have been sent."""

import json
import os
from pathlib import Path

import pytest
from aiokafka.errors import KafkaConnectionError

from cli.dropfolder import DropFolder, PermanentPublishError
from contracts.topics import INTAKE

X12 = b"ISA*00*          *00*          *ZZ*01312~ST*835*0001~SE*2*0001~"


class FakePublisher:
    """Records (topic, key, value); raises the queued exceptions first."""

    def __init__(self, *errors: BaseException) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.errors = list(errors)

    async def __call__(self, topic: str, key: bytes, value: bytes) -> None:
        if self.errors:
            raise self.errors.pop(0)
        self.sent.append((topic, key, value))


def _touch(path: Path, content: bytes, mtime_ns: int) -> None:
    path.write_bytes(content)
    os.utime(path, ns=(mtime_ns, mtime_ns))


async def test_a_stable_file_is_published_once_and_moved_to_processed(tmp_path: Path) -> None:
    fake = FakePublisher()
    folder = DropFolder(tmp_path, "t1", publisher=fake)
    (tmp_path / "remit.835").write_bytes(X12)

    first = await folder.poll_once()
    assert first.waiting == ["remit.835"] and fake.sent == []  # seen once: maybe still uploading

    second = await folder.poll_once()
    assert second.published == ["remit.835"]
    assert not (tmp_path / "remit.835").exists()
    assert (tmp_path / "processed" / "remit.835").read_bytes() == X12

    [(topic, _key, value)] = fake.sent
    envelope = json.loads(value)
    assert topic == INTAKE.name
    assert envelope["tenant_id"] == "t1"
    assert envelope["payload"]["source"] == "drop_folder"
    assert envelope["payload"]["file_name"] == "remit.835"

    third = await folder.poll_once()  # nothing left: a restart or another poll never re-sends it
    assert third.published == [] and len(fake.sent) == 1


async def test_a_growing_file_waits_until_size_and_mtime_stop_changing(tmp_path: Path) -> None:
    fake = FakePublisher()
    folder = DropFolder(tmp_path, "t1", publisher=fake)
    path = tmp_path / "upload.835"
    _touch(path, X12[:10], 1_000_000_000)
    assert (await folder.poll_once()).waiting == ["upload.835"]
    _touch(path, X12[:30], 2_000_000_000)  # the SFTP upload is still writing
    assert (await folder.poll_once()).waiting == ["upload.835"]
    _touch(path, X12, 3_000_000_000)
    assert (await folder.poll_once()).waiting == ["upload.835"]
    assert fake.sent == []
    # Same size, new mtime (rewritten in place) still counts as a change.
    _touch(path, X12, 4_000_000_000)
    assert (await folder.poll_once()).waiting == ["upload.835"]
    assert (await folder.poll_once()).published == ["upload.835"]
    assert json.loads(fake.sent[0][2])["payload"]["sha256"]  # the complete file was sent


async def test_in_progress_names_empty_files_and_subfolders_are_left_alone(tmp_path: Path) -> None:
    fake = FakePublisher()
    folder = DropFolder(tmp_path, "t1", publisher=fake)
    (tmp_path / "remit.835.part").write_bytes(X12)
    (tmp_path / ".hidden.835").write_bytes(X12)
    (tmp_path / "empty.835").write_bytes(b"")
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "inner.835").write_bytes(X12)
    for _ in range(3):
        report = await folder.poll_once()
    assert fake.sent == []
    assert report.waiting == ["empty.835"]  # visible as waiting, never published while empty
    assert (tmp_path / "remit.835.part").exists() and (tmp_path / "empty.835").exists()


async def test_a_permanent_failure_moves_the_file_to_failed_with_an_error_note(tmp_path: Path) -> None:
    fake = FakePublisher(PermanentPublishError("broker said no"))
    folder = DropFolder(tmp_path, "t1", publisher=fake)
    (tmp_path / "bad.835").write_bytes(X12)
    await folder.poll_once()
    report = await folder.poll_once()
    assert report.failed == ["bad.835"]
    assert (tmp_path / "failed" / "bad.835").read_bytes() == X12
    note = (tmp_path / "failed" / "bad.835.error.txt").read_text()
    assert "PermanentPublishError: broker said no" in note
    assert "move the file back" in note


async def test_an_unexpected_publisher_error_also_fails_the_file(tmp_path: Path) -> None:
    folder = DropFolder(tmp_path, "t1", publisher=FakePublisher(ValueError("unexpected")))
    (tmp_path / "x.835").write_bytes(X12)
    await folder.poll_once()
    assert (await folder.poll_once()).failed == ["x.835"]
    assert "ValueError: unexpected" in (tmp_path / "failed" / "x.835.error.txt").read_text()


async def test_a_broker_outage_leaves_the_file_in_place_and_retries(tmp_path: Path) -> None:
    fake = FakePublisher(KafkaConnectionError("down"), ConnectionRefusedError("down"))
    folder = DropFolder(tmp_path, "t1", publisher=fake)
    (tmp_path / "remit.835").write_bytes(X12)
    await folder.poll_once()
    assert (await folder.poll_once()).retrying == ["remit.835"]
    assert (await folder.poll_once()).retrying == ["remit.835"]
    assert (tmp_path / "remit.835").exists() and not list((tmp_path / "failed").iterdir())
    assert (await folder.poll_once()).published == ["remit.835"]  # stable all along: no new wait
    assert len(fake.sent) == 1


async def test_a_reused_file_name_never_overwrites_a_processed_file(tmp_path: Path) -> None:
    fake = FakePublisher()
    folder = DropFolder(tmp_path, "t1", publisher=fake)
    for content in (X12, X12 + b"\n"):
        (tmp_path / "remit.835").write_bytes(content)
        await folder.poll_once()
        await folder.poll_once()
    assert (tmp_path / "processed" / "remit.835").read_bytes() == X12
    assert (tmp_path / "processed" / "remit-1.835").read_bytes() == X12 + b"\n"
    assert len(fake.sent) == 2


async def test_a_file_too_large_for_one_message_fails_without_publishing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("services.intake.publish.MAX_MESSAGE_BYTES", 100)
    fake = FakePublisher()
    folder = DropFolder(tmp_path, "t1", publisher=fake)
    (tmp_path / "big.835").write_bytes(X12 * 5)
    await folder.poll_once()
    assert (await folder.poll_once()).failed == ["big.835"]
    assert fake.sent == []
    assert "file too large" in (tmp_path / "failed" / "big.835.error.txt").read_text()


async def test_run_stops_cleanly_when_asked(tmp_path: Path) -> None:
    fake = FakePublisher()
    folder = DropFolder(tmp_path, "t1", publisher=fake, interval=0.01)
    (tmp_path / "remit.835").write_bytes(X12)
    reports = []

    def on_report(report: object) -> None:
        reports.append(report)
        if len(reports) == 3:
            folder.stop()

    await folder.run(on_report)
    assert len(reports) == 3
    assert (tmp_path / "processed" / "remit.835").exists()


def test_a_folder_needs_settings_or_a_publisher(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="settings"):
        DropFolder(tmp_path, "t1")


async def test_a_batch_of_several_clinics_is_published_to_each_clinic(tmp_path: Path) -> None:
    from test_x12_split import _batch_of_three_clinics

    from contracts.envelope import parse_envelope
    from contracts.events import RawFileReceived

    fake = FakePublisher()
    folder = DropFolder(tmp_path, "inbox", publisher=fake, payees={"1999999984": "clinic-b", "7": "clinic-c"})
    (tmp_path / "batch.835").write_bytes(_batch_of_three_clinics().encode())
    await folder.poll_once()
    assert (await folder.poll_once()).published == ["batch.835"]
    assert [parse_envelope(value, RawFileReceived).tenant_id for _, _, value in fake.sent] == [
        "inbox",
        "clinic-b",
        "clinic-c",
    ]
