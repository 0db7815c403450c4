"""Publishing payer files to intake: one Kafka message per file (or per self-contained part of a file too large
for one message), keyed so that files of one X12 sender stay in order. Used by the CLI, the drop folder and the
tests; intake owns the raw-file message format, so the code that writes it lives beside the code that reads it."""

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path

from aiokafka import AIOKafkaProducer

from contracts.events import FileReplayRequested, RawFileReceived
from contracts.topics import FILE_REPLAYS, INTAKE
from services.intake.x12.split import NotX12, SplitRefused, cut_x12
from shared import envelopes, kafka_security
from shared.failures import record_size
from shared.ids import account_key, stable_id
from shared.kafka import MAX_MESSAGE_BYTES
from shared.settings import Settings


def files_under(paths: Iterable[Path]) -> list[Path]:
    """Files named, and files inside folders named (recursively, sorted; hidden files skipped)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    return found


def interchange_sender(content: bytes) -> str | None:
    """ISA06 (interchange sender id) of an X12 file, read from its fixed-width ISA header; None otherwise.

    Raw files are keyed by tenant and sender so that one payer's files reach intake in the order they were
    published (one partition). Order matters downstream: a duplicate payment is recognised against the earlier
    payment already seen, and a recovery against the receivable it settles.
    """
    head = content[:128].lstrip(b"\xef\xbb\xbf \t\r\n")
    if len(head) < 106 or not head.startswith(b"ISA"):
        return None
    fields = head[:106].decode("latin-1").split(head[3:4].decode("latin-1"))
    if len(fields) < 7:
        return None
    sender = fields[6].strip()
    return sender or None


def raw_file_message(
    content: bytes, file_name: str, tenant_id: str, source: str, format_hint: str | None = None
) -> tuple[bytes, bytes]:
    """(key, value) of a RawFileReceived envelope; the same file always gets the same event id, and files of
    one X12 sender share a key (see :func:`interchange_sender`)."""
    sha = hashlib.sha256(content).hexdigest()
    payload = RawFileReceived(
        file_name=file_name,
        content=content,
        sha256=sha,
        source=source,
        format_hint=format_hint,
    )
    sender = interchange_sender(content)
    key = account_key(tenant_id, "sender", sender) if sender else account_key(tenant_id, "file", sha)
    env = envelopes.build(
        payload,
        event_id=stable_id("file", tenant_id, sha),
        event_type="RawFileReceived",
        tenant_id=tenant_id,
        account_key=key,
        causation_id=f"{source}:{file_name}",
    )
    return key.encode(), env.to_bytes()


def file_replay_message(tenant_id: str, sha256: str, entered_by: str, request_id: str) -> tuple[bytes, bytes]:
    """(key, value) of a FileReplayRequested envelope: intake processes the stored file with this content again.
    The event id is (tenant, SHA-256, ``request_id``): the console's form carries one request id, so a double
    submit replays once; another request is another replay (harmless: posted remittances are skipped)."""
    request = FileReplayRequested(
        request_id=stable_id("file-replay", tenant_id, sha256, request_id),
        sha256=sha256,
        entered_by=entered_by,
    )
    key = account_key(tenant_id, "file", sha256)
    env = envelopes.build(
        request,
        event_id=request.request_id,
        event_type="FileReplayRequested",
        tenant_id=tenant_id,
        account_key=key,
        causation_id=f"staff:{entered_by}",
    )
    return key.encode(), env.to_bytes()


async def request_file_replay(settings: Settings, message: tuple[bytes, bytes]) -> None:
    """Send one replay request to ``remit.file-replays.v1`` and wait for the broker's acknowledgement."""
    producer = AIOKafkaProducer(**kafka_security.client_kwargs(settings), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        key, value = message
        await producer.send_and_wait(FILE_REPLAYS.name, value=value, key=key)
    finally:
        await producer.stop()


class FileRefused(ValueError):
    """A file that must be cut before it can be sent (too large for one intake message, or holding other
    tenants' transactions) and cannot be: the message says why; nothing of it was sent."""


def too_large(content_size: int, message_size: int) -> str | None:
    """Why a raw file cannot travel as one intake message (the bytes ride base64 in the envelope), or None.
    ``message_size`` is the record's size as the producer and the broker count it (``record_size``: key,
    value and batch overhead), not the value's alone: a file whose value fits with less than that overhead to
    spare would pass here and then be refused by the producer (``MessageSizeTooLargeError``)."""
    if message_size <= MAX_MESSAGE_BYTES:
        return None
    return (
        f"file too large: {content_size} bytes become a {message_size}-byte message; the limit is "
        f"{MAX_MESSAGE_BYTES} (about {MAX_MESSAGE_BYTES * 3 // 4 // 1_000_000} MB of file)"
    )


def part_name(file_name: str, index: int, count: int) -> str:
    """``era.835`` → ``era.part2of5.835``: the extension stays last, so the part sniffs like the file."""
    path = Path(file_name)
    return f"{path.stem}.part{index}of{count}{path.suffix}"


def raw_file_messages(
    content: bytes,
    file_name: str,
    tenant_id: str,
    source: str,
    format_hint: str | None = None,
    payees: Mapping[str, str] | None = None,
) -> list[tuple[bytes, bytes]]:
    """(key, value) of each intake message a file travels as. Usually one. An X12 file is cut between its
    transactions (``services.intake.x12.split``: the parts post exactly the remittances, under the same ids,
    the whole file would) when it is too large for one message, and when ``payees`` (payee id → tenant, see
    :func:`load_payee_directory`) sends some of its transactions to other tenants than ``tenant_id``: each
    tenant then gets only its own transactions. Raises :class:`FileRefused` when the file must be cut and
    cannot be. A tenant's parts share its key for the sender, so they stay in order."""
    message = raw_file_message(content, file_name, tenant_id, source, format_hint)
    problem = too_large(len(content), record_size(message[0], message[1], []))
    routing = bool(payees) and format_hint in (None, "x12_835")
    if problem is None and not routing:
        return [message]
    directory = payees or {}

    def tenant_of(ids: tuple[str, ...]) -> str:
        return next((directory[i] for i in ids if i in directory), tenant_id)

    try:
        cut = cut_x12(content, (MAX_MESSAGE_BYTES - _ENVELOPE_ROOM) * 3 // 4, tenant_of)
    except NotX12 as refused:  # CSV, JSON: never cut nor routed
        if problem is None:
            return [message]
        raise FileRefused(f"{problem}; it cannot be cut into parts: {refused}") from None
    except SplitRefused as refused:
        why = problem or "its transactions could not be routed to their payees' tenants"
        raise FileRefused(f"{why}; it cannot be cut into parts: {refused}") from None
    if problem is None and {tenant for tenant, _ in cut} == {tenant_id}:
        return [message]  # every transaction is the receiving tenant's: the file goes as it came
    counts = Counter(tenant for tenant, _ in cut)
    seen: Counter[str] = Counter()
    messages = []
    for tenant, part in cut:
        seen[tenant] += 1
        name = file_name if counts[tenant] == 1 else part_name(file_name, seen[tenant], counts[tenant])
        key, value = raw_file_message(part, name, tenant, source, format_hint)
        # the room left for the envelope was too small
        if refused_part := too_large(len(part), record_size(key, value, [])):
            raise FileRefused(f"a part of {file_name} is still too large: {refused_part}")
        messages.append((key, value))
    return messages


def load_payee_directory(settings: Settings) -> dict[str, str]:
    """``settings.payee_directory`` read: ``{"payee NPI or tax id": "tenant", ...}`` (empty without one)."""
    if settings.payee_directory is None:
        return {}
    loaded = json.loads(settings.payee_directory.read_text())
    if not isinstance(loaded, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and k.strip() and v.strip() for k, v in loaded.items()
    ):
        raise ValueError(f"{settings.payee_directory}: expected a JSON object of payee id → tenant id")
    return {k.strip(): v.strip() for k, v in loaded.items()}


_ENVELOPE_ROOM = 64 * 1024
"""Bytes of a message kept for the envelope around the base64 file (its fields are well under 1 KiB)."""


async def publish_files(
    settings: Settings,
    files: Iterable[Path],
    tenant_id: str,
    *,
    source: str = "cli",
    format_hint: str | None = None,
) -> int:
    """Publish each file's exact bytes to the intake topic; the intake service parses them.

    A file too large for one message goes as parts (see :func:`raw_file_messages`); one that cannot be cut
    is not sent, the rest are, then :class:`FileRefused` names the ones left out. Returns the number of
    files sent (a file sent as parts counts once)."""
    producer = AIOKafkaProducer(
        **kafka_security.client_kwargs(settings),
        max_request_size=MAX_MESSAGE_BYTES,
        acks="all",
        enable_idempotence=True,
    )
    payees = load_payee_directory(settings)
    await producer.start()
    count = 0
    refused: list[str] = []
    try:
        for path in files:
            try:
                messages = raw_file_messages(
                    path.read_bytes(), path.name, tenant_id, source, format_hint, payees
                )
            except FileRefused as problem:
                refused.append(f"{path}: {problem}")
                continue
            for key, value in messages:
                await producer.send_and_wait(INTAKE.name, value=value, key=key)
            count += 1
    finally:
        await producer.stop()
    if refused:
        raise FileRefused(f"published {count} file(s); not sent:\n" + "\n".join(refused))
    return count
