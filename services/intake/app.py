"""The intake stage: raw payer files in, remittances, claim payments and PLB pairs out."""

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

import asyncpg

from contracts.envelope import parse_envelope
from contracts.events import RawFileReceived
from services.intake import domain, metrics, store, x12
from shared import plugins, telemetry
from shared.admin import MAX_MESSAGE_BYTES
from shared.feeds import FeedError, FeedParser, ParsedRemittance
from shared.stream import Incoming, Outgoing, Rejected, Stage, dead_letter_message, envelope_event_id

stage = Stage("intake", fetch_bytes=MAX_MESSAGE_BYTES)
app = stage.app
PARSERS: dict[str, FeedParser] = plugins.load_plugins(plugins.FEED_PARSERS)
metrics.X12_COMPILED.set(1 if x12.NATIVE else 0)
log = logging.getLogger(__name__)
log.info("X12 reader: %s", "compiled (mypyc)" if x12.NATIVE else "from source")


@dataclass(frozen=True)
class _File:
    """One raw-file message, parsed: what both applying and replaying it start from."""

    raw: RawFileReceived
    tenant: str
    parser: FeedParser
    results: list[ParsedRemittance | FeedError]


def _read(incoming: Incoming) -> _File:
    envelope = parse_envelope(incoming.value, RawFileReceived)
    raw = envelope.payload
    tenant = envelope.tenant_id
    if hashlib.sha256(raw.content).hexdigest() != raw.sha256:
        raise Rejected("invalid_message", "file content does not match its SHA-256", {"file": raw.file_name})
    parser = domain.choose_parser(PARSERS, raw.content, raw.file_name, raw.format_hint)
    if isinstance(parser, FeedError):
        metrics.FILES.labels("rejected").inc()
        raise Rejected(parser.reason.value, str(parser), parser.location())
    results = list(
        parser.parse(raw.content, file_name=raw.file_name, file_sha256=raw.sha256, tenant_id=tenant)
    )
    return _File(raw, tenant, parser, results)


async def _note_receipt(conn: asyncpg.Connection, incoming: Incoming, file: _File, kind: str) -> bool:
    position = (incoming.topic, incoming.partition, incoming.offset)
    return await store.record_receipt(conn, file.tenant, file.raw.sha256, file.raw.source, kind, position)


def _conflict_warning(parsed: ParsedRemittance) -> str:
    r = parsed.remittance
    return (
        f"TRN02 {r.trace_number} of {r.payment_date} was already posted for this payer and payee with other "
        f"totals (now BPR02 {r.total_paid}, {r.claim_count} claims): posted as its own remittance; check "
        "whether it corrects the earlier one"
    )


def _dead_letters(incoming: Incoming, bad: list[tuple[int, FeedError]]) -> list[Outgoing]:
    return [
        dead_letter_message(stage.service, incoming, error.reason.value, str(error), error.location())
        for _, error in bad
    ]


async def replay_file(conn: asyncpg.Connection, incoming: Incoming) -> Sequence[Outgoing]:
    """The messages of a file already applied, rebuilt: the events of every remittance this file posted and
    the dead letters of its bad transactions (same event ids, fresh ``occurred_at``). Storing them instead
    would keep a second, base64 copy of every claim of every file in ``ops.processed_events``.

    An identical file fed again lands here too (same event id, new Kafka position): that receipt is noted, so
    ``offsetstream files`` says the file came again and posted nothing."""
    file = _read(incoming)
    if await _note_receipt(conn, incoming, file, "copy"):
        metrics.FILES.labels("already_received").inc()
        log.info(
            "file %s (sha256 %s) received again: already processed, nothing new posted",
            file.raw.file_name,
            file.raw.sha256[:12],
        )
    good, bad = domain.split_results(file.results)
    good, _ = domain.collapse_repeats(good)
    posted = await store.remittances_posted_by(conn, file.tenant, file.raw.sha256)
    outputs = [
        Outgoing.event(topic, env)
        for parsed in good
        if parsed.remittance.remittance_id in posted
        for topic, env in domain.remittance_events(file.tenant, parsed)
    ]
    return outputs + _dead_letters(incoming, bad)


async def handle_file(conn: asyncpg.Connection, incoming: Incoming) -> Sequence[Outgoing]:
    """Parse one file; post new remittances; dead-letter bad transactions; skip ones already posted."""
    file = _read(incoming)
    raw, tenant, parser, results = file.raw, file.tenant, file.parser, file.results
    await _note_receipt(
        conn, incoming, file, "replayed" if "replayed_from" in incoming.headers else "received"
    )
    good, bad = domain.split_results(results)
    good, duplicates = domain.collapse_repeats(good)  # the file's own copies: a warning on the first
    if duplicates:
        metrics.DUPLICATES.labels(parser.name).inc(duplicates)
    outputs: list[Outgoing] = []
    for transaction in good:
        parsed = transaction
        before = await store.posted_before(conn, tenant, parsed)
        if before in ("same", "reissue"):
            duplicates += 1
            metrics.DUPLICATES.labels(parser.name).inc()
            continue
        if before == "conflict":
            parsed = replace(parsed, warnings=(*parsed.warnings, _conflict_warning(parsed)))
        await store.record_remittance(conn, tenant, domain.account_of(tenant, parsed), parsed)
        for warning in parsed.warnings:  # segment ids, ordinals and codes: never element values (PHI)
            log.warning(
                "file %s ST02 %s: %s", raw.file_name, parsed.remittance.transaction_control_number, warning
            )
        metrics.WARNINGS.labels(parser.name).inc(len(parsed.warnings))
        outputs += [Outgoing.event(topic, env) for topic, env in domain.remittance_events(tenant, parsed)]
        metrics.REMITTANCES.labels(parser.name).inc()
        metrics.CLAIM_PAYMENTS.labels(parser.name).inc(len(parsed.claims))
        metrics.PROVIDER_ADJUSTMENTS.labels(parser.name).inc(len(parsed.adjustments))
        metrics.DOLLARS.labels("paid").inc(float(parsed.remittance.total_paid))
        for adjustment in parsed.adjustments:
            kind = "withheld" if adjustment.amount > 0 else "added"
            metrics.DOLLARS.labels(kind).inc(float(abs(adjustment.amount)))
    for index, error in bad:
        await store.record_rejection(conn, tenant, raw.sha256, index, error)
        metrics.REJECTED.labels(error.reason.value).inc()
        telemetry.DEAD_LETTERS.labels(stage.service, error.reason.value).inc()
    outputs += _dead_letters(incoming, bad)
    await store.record_file(
        conn,
        tenant,
        raw.sha256,
        raw.file_name,
        len(raw.content),
        raw.source,
        parser.name,
        len(results),
        len(bad),
        duplicates,
    )
    metrics.FILES.labels("partial" if bad and good else "rejected" if bad else "posted").inc()
    return outputs


def file_message_id(incoming: Incoming) -> str:
    """A file's idempotency id; a DLT replay (header ``replayed_from``) is a new attempt, so a file whose
    transaction was rejected is parsed again after the cause was fixed. Remittance dedupe keeps the
    transactions already posted from posting twice."""
    replayed = incoming.headers.get("replayed_from")
    base = envelope_event_id(incoming)
    return f"{base}@{replayed.decode(errors='replace')}" if replayed else base


# A file can carry tens of thousands of claims; a few files per transaction already pay off the round trips,
# and more would hold all their parsed claims and outputs in memory at once.
stage.consume(["remit.intake.v1"], handle_file, id_of=file_message_id, batch=4, replay=replay_file)
