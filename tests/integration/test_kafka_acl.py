"""The local broker enforces what docker-compose.yml deploys: SASL/SCRAM logins and one principal per service,
allowed only what shared.kafka_security derives from the topic registry (issue 16, "safe by default")."""

import asyncio
import os
import subprocess
import sys
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError

from cli.local_infra import Stack, free_port
from shared.kafka_security import PRINCIPALS, client_kwargs
from shared.settings import REPO_ROOT

INTAKE = "remit.intake.v1"


def _login(stack: Stack, principal: str, **overrides: Any) -> dict[str, Any]:
    return {**client_kwargs(stack.settings(principal)), **overrides}


async def _read(kafka: dict[str, Any], topic: str, group: str | None) -> int:
    """Records read from ``topic`` with a consumer of ``group`` (subscribing, as a stage does)."""
    consumer = AIOKafkaConsumer(
        topic, **kafka, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False
    )
    try:
        await consumer.start()
        got = await consumer.getmany(timeout_ms=5000)
        return sum(len(records) for records in got.values())
    finally:
        await consumer.stop()


async def _put(kafka: dict[str, Any], topic: str) -> None:
    producer = AIOKafkaProducer(**kafka, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, key=b"acl-test", value=b"not an envelope: intake dead-letters it")
    finally:
        await producer.stop()


def test_every_principal_has_its_own_generated_password(stack: Stack) -> None:
    assert set(stack.kafka.users) == set(PRINCIPALS)
    passwords = list(stack.kafka.users.values())
    assert len(set(passwords)) == len(passwords)
    assert all(len(p) >= 32 for p in passwords)


async def test_notification_is_refused_the_raw_files_that_intake_reads(stack: Stack) -> None:
    # Step: the command line (operator) publishes to the raw-file topic; it may write there, not read.
    await _put(_login(stack, "operator"), INTAKE)
    # Step: notification, with its own group, is refused the topic itself (not only the group).
    with pytest.raises(TopicAuthorizationFailedError) as refused:
        await _read(_login(stack, "notification"), INTAKE, "offsetstream-notification")
    assert INTAKE in str(refused.value)
    # Step: also when it borrows intake's group id: the topic is what is denied.
    with pytest.raises(TopicAuthorizationFailedError):
        await _read(_login(stack, "notification"), INTAKE, f"offsetstream-intake-probe-{uuid.uuid4().hex}")
    with pytest.raises(TopicAuthorizationFailedError):
        await _read(_login(stack, "operator"), INTAKE, None)
    # Step: intake reads it (without a group, so the running pipeline's offsets are not touched).
    consumer = AIOKafkaConsumer(**_login(stack, "intake"), enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [
            TopicPartition(INTAKE, p) for p in sorted(consumer.partitions_for_topic(INTAKE) or {0, 1, 2})
        ]
        ends = await consumer.end_offsets(parts)
    finally:
        await consumer.stop()
    assert sum(ends.values()) >= 1


async def test_a_service_cannot_write_a_topic_it_does_not_produce(stack: Stack) -> None:
    # notification produces remit.notifications.v1 only; a receivable event from it would be forged.
    with pytest.raises(TopicAuthorizationFailedError):
        await _put(_login(stack, "notification", request_timeout_ms=10000), "remit.receivables.v1")


async def test_a_wrong_password_is_refused(stack: Stack) -> None:
    wrong = _login(stack, "intake", sasl_plain_password="not-" + stack.kafka.users["intake"])
    with pytest.raises(KafkaConnectionError):
        await _read(wrong, INTAKE, None)
    anonymous = {"bootstrap_servers": stack.kafka.bootstrap, "request_timeout_ms": 5000}
    with pytest.raises(KafkaConnectionError):
        await _read(anonymous, INTAKE, None)


def test_a_command_without_a_login_says_what_to_set(stack: Stack) -> None:
    env = {k: v for k, v in stack.env().items() if k not in {"OFFSETSTREAM_KAFKA_PASSWORD"}}
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "dlt", "list", "--topic", "remit.intake.dlt"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert "OFFSETSTREAM_KAFKA_USERNAME and OFFSETSTREAM_KAFKA_PASSWORD" in done.stderr
    assert "Traceback" not in done.stderr


async def test_a_worker_without_a_login_stops_naming_the_variables(stack: Stack) -> None:
    env = {k: v for k, v in stack.env("interest").items() if not k.startswith("OFFSETSTREAM_KAFKA_PASS")}
    env["OFFSETSTREAM_WEB_PORT"] = str(free_port())
    env["OFFSETSTREAM_DATA_DIR"] = str(REPO_ROOT / ".local" / f"acl-{os.getpid()}")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.interest",
        "worker",
        "-l",
        "info",
        cwd=REPO_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 90)
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
        raise AssertionError(f"the worker kept running without a login:\n{out.decode()[-3000:]}") from None
    assert proc.returncode != 0
    assert "OFFSETSTREAM_KAFKA_PASSWORD" in out.decode()


async def test_the_console_may_only_write_letters_and_staff_actions(stack: Stack) -> None:
    from datetime import date
    from decimal import Decimal

    from cli import letters

    console = _login(stack, "console")
    # Step: a letter, as the console publishes one for a logged-in user (its own tenant: touches no other test).
    entry = letters.LetterEntry(
        payer_id="01312",
        payee_id="1234567893",
        fcn="FCNACL0001",
        amount=Decimal("1.00"),
        letter_date=date(2026, 1, 5),
    )
    key, value = letters.to_event(entry, f"acl-{uuid.uuid4().hex[:8]}", "acl-test")
    producer = AIOKafkaProducer(**console, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait("remit.letters.v1", key=key.encode(), value=value)
    finally:
        await producer.stop()
    # Step: it may not write the raw payer files, nor read anything (it reads the ledger's staff views).
    with pytest.raises(TopicAuthorizationFailedError):
        await _put(console, INTAKE)
    with pytest.raises(TopicAuthorizationFailedError):
        await _read(console, "remit.staff-actions.v1", None)


async def test_the_console_may_ask_for_a_file_replay_but_never_read_dead_letters(stack: Stack) -> None:
    from services.intake.publish import file_replay_message, request_file_replay

    console = _login(stack, "console")
    # Step: a replay request, as the console's Replay button sends one (its own tenant, a file nobody keeps:
    # intake dead-letters it on the requests' DLT, touching no other test).
    message = file_replay_message(f"acl-{uuid.uuid4().hex[:8]}", "0" * 64, "acl-admin", uuid.uuid4().hex)
    await request_file_replay(stack.settings("console"), message)
    # Step: replaying needs no read right: the dead letters (payer files' records) and the requests stay unread.
    for topic in ("remit.intake.dlt", "remit.file-replays.dlt", "remit.file-replays.v1"):
        with pytest.raises(TopicAuthorizationFailedError):
            await _read(console, topic, None)
