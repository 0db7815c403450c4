"""Intake's orchestration: one raw payer file in; its remittances, claim payments and PLB pairs out.

Dead letters of intake never copy the payer file: a file with anything rejected is kept once in
``intake.raw_files`` (same transaction as the rejection), and each record names it by SHA-256, with the
transaction and its byte range (``shared.dlt_refs.RawFileRef``), so a record stays a few hundred bytes whatever
the file and however many of its transactions are bad. A transaction whose events cannot fit the broker's
message cap is refused (``too_large``: file, transaction, claim ordinal) while the rest of the file posts.
"""

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial

import asyncpg
from pydantic import ValidationError

from contracts.envelope import parse_envelope
from contracts.events import ClaimPaymentReceived, RawFileReceived
from contracts.topics import CLAIM_PAYMENTS, FILE_REPLAYS, INTAKE
from services.intake import domain, metrics
from services.intake.feeds import FeedError, FeedErrorReason, FeedParser, ParsedRemittance
from services.intake.publish import raw_file_message
from services.intake.store import IntakeStore
from shared import telemetry
from shared.batches import dead_letter_message
from shared.dlt_refs import RawFileRef
from shared.effects import after_commit
from shared.kafka import MAX_MESSAGE_BYTES
from shared.messages import Incoming, Outgoing, Rejected, envelope_event_id

SERVICE = "intake"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _File:
    """One raw-file message, parsed: what both applying and replaying it start from."""

    raw: RawFileReceived
    tenant: str
    event_id: str
    parser: FeedParser
    results: list[ParsedRemittance | FeedError]


def _conflict_warning(parsed: ParsedRemittance) -> str:
    r = parsed.remittance
    return (
        f"TRN02 {r.trace_number} of {r.payment_date} was already posted for this payer and payee with other "
        f"totals (now BPR02 {r.total_paid}, {r.claim_count} claims): posted as its own remittance; check "
        "whether it corrects the earlier one"
    )


def _reference(
    raw: RawFileReceived, tenant: str, event_id: str, index: int | None, spans: dict[int, tuple[int, int]]
) -> RawFileRef:
    return RawFileRef(
        tenant_id=tenant,
        sha256=raw.sha256,
        file_name=raw.file_name,
        size_bytes=len(raw.content),
        source=raw.source,
        format_hint=raw.format_hint,
        event_id=event_id,
        transaction_index=index,
        byte_range=spans.get(index) if index is not None else None,
    )


def _too_large(file: _File, parsed: ParsedRemittance, events: list[Outgoing]) -> FeedError | None:
    """Why a transaction cannot be posted because one of its events exceeds the broker's message cap, or None.

    Checked before anything is written, so the transaction is refused whole (its claims are one remittance's
    money) and the rest of the file posts; nothing is retried, since no retry makes a message smaller. Claims
    travel in parts of bounded lines (``domain.claim_parts``), so a part this large holds one claim whose own
    JSON is over the cap (or text far beyond X12's element lengths from another feed): the error names the
    part's heaviest claim."""
    for out in events:
        size = out.size()
        if size <= MAX_MESSAGE_BYTES:
            continue
        r = parsed.remittance
        claim = _heaviest_claim(out, parsed) if out.topic == CLAIM_PAYMENTS.name else None
        what = (
            f"claim #{claim.claim_ordinal} ({len(claim.adjustments)} adjustments, {len(claim.services)} service "
            "lines) makes its part of the claims"
            if claim is not None
            else "an event of the transaction becomes"
        )
        return FeedError(
            FeedErrorReason.TOO_LARGE,
            f"{what} a {size}-byte message; the broker takes at most {MAX_MESSAGE_BYTES} bytes a message, so "
            "the transaction was not posted (the payer must split the claim, or the cap be raised)",
            file.raw.file_name,
            interchange_control_number=r.interchange_control_number,
            transaction_control_number=r.transaction_control_number,
            transaction_index=r.transaction_index,
            segment_ordinal=claim.segment_ordinal if claim is not None else None,
            segment_id="CLP" if claim is not None else None,
            claim_ordinal=claim.claim_ordinal if claim is not None else None,
        )
    return None


def _heaviest_claim(out: Outgoing, parsed: ParsedRemittance) -> ClaimPaymentReceived | None:
    """The claim of a too-large claims event with the most JSON (the one to blame), found by its ordinals."""
    part = CLAIM_PAYMENTS.parse(out.value).payload
    ordinals = {claim.claim_ordinal for claim in part.claims}
    carried = [claim for claim in parsed.claims if claim.claim_ordinal in ordinals]
    return max(carried, key=lambda claim: len(claim.model_dump_json()), default=None)


def _log_warnings(file_name: str, parser: str, parsed: ParsedRemittance) -> None:
    for warning in parsed.warnings:  # segment ids, ordinals and codes: never element values (PHI)
        log.warning("file %s ST02 %s: %s", file_name, parsed.remittance.transaction_control_number, warning)
    metrics.WARNINGS.labels(parser).inc(len(parsed.warnings))


def _count_posted(parser: str, parsed: ParsedRemittance) -> None:
    metrics.REMITTANCES.labels(parser).inc()
    metrics.CLAIM_PAYMENTS.labels(parser).inc(len(parsed.claims))
    metrics.PROVIDER_ADJUSTMENTS.labels(parser).inc(len(parsed.adjustments))
    metrics.DOLLARS.labels("paid").inc(float(parsed.remittance.total_paid))
    for adjustment in parsed.adjustments:
        kind = "withheld" if adjustment.amount > 0 else "added"
        metrics.DOLLARS.labels(kind).inc(float(abs(adjustment.amount)))


def _count_rejected(errors: list[FeedError]) -> None:
    for error in errors:
        metrics.REJECTED.labels(error.reason.value).inc()
        telemetry.DEAD_LETTERS.labels(SERVICE, error.reason.value).inc()


def _positions(results: list[ParsedRemittance | FeedError]) -> dict[object, int]:
    """Each remittance's first position among the file's results (the key of its rejection row)."""
    found: dict[object, int] = {}
    for position, result in enumerate(results, start=1):
        if isinstance(result, ParsedRemittance):
            found.setdefault(result.remittance.remittance_id, position)
    return found


def file_message_id(incoming: Incoming) -> str:
    """A file's idempotency id; a DLT replay (header ``replayed_from``) is a new attempt, so a file whose
    transaction was rejected is parsed again after the cause was fixed. Remittance dedupe keeps the
    transactions already posted from posting twice."""
    replayed = incoming.headers.get("replayed_from")
    base = envelope_event_id(incoming)
    return f"{base}@{replayed.decode(errors='replace')}" if replayed else base


@dataclass(frozen=True)
class FileIntake:
    """Intake's handlers over the installed feed parsers and its repository."""

    parsers: Mapping[str, FeedParser]
    store: IntakeStore

    def _read(self, incoming: Incoming) -> _File:
        envelope = parse_envelope(incoming.value, RawFileReceived)
        raw = envelope.payload
        tenant = envelope.tenant_id
        if hashlib.sha256(raw.content).hexdigest() != raw.sha256:
            raise Rejected(
                "invalid_message", "file content does not match its SHA-256", {"file": raw.file_name}
            )
        parser = domain.choose_parser(self.parsers, raw.content, raw.file_name, raw.format_hint)
        if isinstance(parser, FeedError):
            raise Rejected(parser.reason.value, str(parser), parser.location())
        results = list(
            parser.parse(raw.content, file_name=raw.file_name, file_sha256=raw.sha256, tenant_id=tenant)
        )
        return _File(raw, tenant, str(envelope.event_id), parser, results)

    async def _note_receipt(
        self, conn: asyncpg.Connection, incoming: Incoming, file: _File, kind: str
    ) -> bool:
        position = (incoming.topic, incoming.partition, incoming.offset)
        return await self.store.record_receipt(
            conn, file.tenant, file.raw.sha256, file.raw.source, kind, position
        )

    async def _dead_letters(
        self, conn: asyncpg.Connection, incoming: Incoming, file: _File, bad: list[tuple[int, FeedError]]
    ) -> list[Outgoing]:
        """One small record per bad transaction, naming the file kept once in ``intake.raw_files``."""
        if not bad:
            return []
        raw = file.raw
        await self.store.keep_raw_file(
            conn, file.tenant, raw.sha256, raw.file_name, raw.source, raw.format_hint, raw.content
        )
        if incoming.topic != INTAKE.name:
            # A file processed again on request (remit.file-replays.v1): what failed is still a transaction of a
            # payer file, so its record is intake's like any other and `dlt replay` re-drives it to intake. The
            # source partition/offset headers are then those of the request.
            incoming = replace(incoming, topic=INTAKE.name)
        spans = domain.transaction_spans(raw.content) if file.parser.name == "x12_835" else {}
        records = []
        for _, error in bad:
            ref = _reference(raw, file.tenant, file.event_id, error.transaction_index, spans)
            # The record is about one transaction: whatever inspects the input a dead letter describes (a header
            # scrubber) looks at that transaction's bytes, not at the whole file once per bad transaction.
            start, end = ref.byte_range or (0, 0)
            about = replace(incoming, value=raw.content[start:end]) if ref.byte_range else incoming
            body = ref.to_bytes()
            records.append(
                dead_letter_message(
                    SERVICE, about, error.reason.value, str(error), error.location(), body=body
                )
            )
        return records

    async def dead_letter_file(
        self, conn: asyncpg.Connection, incoming: Incoming, record: Outgoing
    ) -> Outgoing:
        """A whole file rejected (no parser for it, an envelope the stage refuses): keep it once and let the
        record name it, like a bad transaction's. A message that is no RawFileReceived, or whose content does not
        match its SHA-256, keeps the generic record (its original bytes, or where they are when too large)."""
        try:
            envelope = parse_envelope(incoming.value, RawFileReceived)
        except (ValidationError, ValueError):
            return record
        raw = envelope.payload
        if hashlib.sha256(raw.content).hexdigest() != raw.sha256:
            return record
        await self.store.keep_raw_file(
            conn, envelope.tenant_id, raw.sha256, raw.file_name, raw.source, raw.format_hint, raw.content
        )
        after_commit(metrics.FILES.labels("rejected").inc)
        body = _reference(raw, envelope.tenant_id, str(envelope.event_id), None, {}).to_bytes()
        return replace(record, value=body)

    async def replay_file(self, conn: asyncpg.Connection, incoming: Incoming) -> Sequence[Outgoing]:
        """The messages of a file already applied, rebuilt: the events of every remittance this file posted and
        the dead letters of its bad transactions (same event ids, fresh ``occurred_at``). Storing them instead
        would keep a second, base64 copy of every claim of every file in ``ops.processed_events``.

        An identical file fed again lands here too (same event id, new Kafka position): that receipt is noted, so
        ``offsetstream files`` says the file came again and posted nothing."""
        file = self._read(incoming)
        if await self._note_receipt(conn, incoming, file, "copy"):
            after_commit(metrics.FILES.labels("already_received").inc)
            after_commit(
                partial(
                    log.info,
                    "file %s (sha256 %s) received again: already processed, nothing new posted",
                    file.raw.file_name,
                    file.raw.sha256[:12],
                )
            )
        good, bad = domain.split_results(file.results)
        good, _ = domain.collapse_repeats(good)
        posted = await self.store.remittances_posted_by(conn, file.tenant, file.raw.sha256)
        positions = _positions(file.results)
        outputs: list[Outgoing] = []
        for parsed in good:
            events = [
                Outgoing.event(topic, env) for topic, env in domain.remittance_events(file.tenant, parsed)
            ]
            if parsed.remittance.remittance_id in posted:
                outputs += events
            elif refused := _too_large(file, parsed, events):
                bad.append((positions[parsed.remittance.remittance_id], refused))
        bad.sort(key=lambda item: item[0])
        return outputs + await self._dead_letters(conn, incoming, file, bad)

    async def _requested_file(self, conn: asyncpg.Connection, incoming: Incoming) -> Incoming:
        """The file a FileReplayRequested names, as the message a DLT replay of it would send (the envelope
        rebuilt from ``intake.raw_files``: same event id), tagged ``replayed_from`` the request's position and
        consumed at that position, so its receipt is a ``replayed`` one of its own."""
        envelope = FILE_REPLAYS.parse(incoming.value)
        tenant, sha256 = envelope.tenant_id, envelope.payload.sha256
        kept = await self.store.raw_file(conn, tenant, sha256)
        if kept is None:
            raise Rejected(
                "unknown_file",
                "no payer file with this SHA-256 is kept for the tenant (intake keeps the files that had a "
                "rejected transaction)",
                {"sha256": sha256},
            )
        key, value = raw_file_message(kept.content, kept.file_name, tenant, kept.source, kept.format_hint)
        where = f"{incoming.topic}:{incoming.partition}:{incoming.offset}".encode()
        return replace(incoming, key=key, value=value, headers={**incoming.headers, "replayed_from": where})

    async def handle_replay_request(self, conn: asyncpg.Connection, incoming: Incoming) -> Sequence[Outgoing]:
        """Staff asked for a kept file to be processed again (console, ``offsetstream files --replay``): exactly
        what a DLT replay of the file does (:meth:`handle_file` with ``replayed_from``): remittances already
        posted are skipped, rejected transactions get another try, and the file gets a ``replayed`` receipt.
        Idempotent per request (the request id is the event id); a new request is a new, harmless attempt."""
        request = FILE_REPLAYS.parse(incoming.value).payload
        outputs = await self.handle_file(conn, await self._requested_file(conn, incoming))
        after_commit(
            partial(
                log.info,
                "file sha256 %s processed again on request of %s",
                request.sha256[:12],
                request.entered_by,
            )
        )
        return outputs

    async def replay_replay_request(self, conn: asyncpg.Connection, incoming: Incoming) -> Sequence[Outgoing]:
        """A replay request applied before and delivered again: the messages it owed, rebuilt
        (:meth:`replay_file` of the requested file; nothing is posted or noted again)."""
        return await self.replay_file(conn, await self._requested_file(conn, incoming))

    async def handle_file(self, conn: asyncpg.Connection, incoming: Incoming) -> Sequence[Outgoing]:
        """Parse one file; post new remittances; dead-letter bad transactions; skip ones already posted.

        The ledger is asked about all of the file's transactions at once and they are recorded at once, a
        constant number of round trips a file (issue #18); classifying each against the file's transactions
        posted before it (``domain.PostedInFile``) keeps what the one-at-a-time loop decided."""
        file = self._read(incoming)
        raw, tenant, parser, results = file.raw, file.tenant, file.parser, file.results
        await self._note_receipt(
            conn, incoming, file, "replayed" if "replayed_from" in incoming.headers else "received"
        )
        good, bad = domain.split_results(results)
        positions = _positions(results)
        good, duplicates = domain.collapse_repeats(good)  # the file's own copies: a warning on the first
        if duplicates:
            after_commit(partial(metrics.DUPLICATES.labels(parser.name).inc, duplicates))
        outputs: list[Outgoing] = []
        stored = await self.store.posted_before(conn, tenant, good)
        so_far = domain.PostedInFile()
        recorded: list[tuple[str, ParsedRemittance]] = []
        for transaction, in_ledger in zip(good, stored, strict=True):
            parsed = transaction
            before = so_far.posted_before(parsed, in_ledger)
            if before in ("same", "reissue"):
                duplicates += 1
                after_commit(metrics.DUPLICATES.labels(parser.name).inc)
                continue
            if before == "conflict":
                parsed = replace(parsed, warnings=(*parsed.warnings, _conflict_warning(parsed)))
            events = [Outgoing.event(topic, env) for topic, env in domain.remittance_events(tenant, parsed)]
            if refused := _too_large(file, parsed, events):
                bad.append((positions[parsed.remittance.remittance_id], refused))
                continue
            so_far.add(parsed)
            recorded.append((domain.account_of(tenant, parsed), parsed))
            after_commit(partial(_log_warnings, raw.file_name, parser.name, parsed))
            outputs += events
            after_commit(partial(_count_posted, parser.name, parsed))
        await self.store.record_remittances(conn, tenant, recorded)
        bad.sort(key=lambda item: item[0])
        await self.store.record_rejections(conn, tenant, raw.sha256, bad)
        after_commit(partial(_count_rejected, [error for _, error in bad]))
        outputs += await self._dead_letters(conn, incoming, file, bad)
        await self.store.record_file(
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
        after_commit(metrics.FILES.labels("partial" if bad and good else "rejected" if bad else "posted").inc)
        return outputs
