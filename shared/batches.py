"""One batch of consumed records applied in one PostgreSQL transaction: claim each input's idempotency id,
run the handler over all new inputs at once (isolating a failing input by re-running parts of the batch, not
by a savepoint per input), store their outputs with the claims, and turn an input that can never be processed
into its dead-letter record (the original bytes, or a reference to them, and PHI-free headers), while the rest
of the batch commits. Transient failures propagate so the caller retries the whole batch (see
``shared.failures``). The faust side of the loop (taking batches, publishing, committing offsets) is
:class:`shared.stream.Stage`."""

import hashlib
import logging
from collections.abc import Sequence
from typing import Any

import asyncpg
from pydantic import ValidationError

from contracts.topics import INTAKE, all_topic_names, dlt_name
from shared import db, effects, phi, telemetry
from shared.dlt_refs import OmittedBody
from shared.failures import TooLarge, is_transient, permanent_reason
from shared.kafka import MAX_MESSAGE_BYTES
from shared.messages import (
    BatchHandler,
    DeadLetterHook,
    FailedInput,
    Handler,
    IdOf,
    Incoming,
    Outgoing,
    PerInput,
    Rejected,
    Replay,
    Result,
    safe_validation_message,
)

log = logging.getLogger(__name__)


async def apply_batch(
    conn: asyncpg.Connection,
    service: str,
    handler: Handler | BatchHandler,
    batch: Sequence[Incoming],
    id_of: IdOf,
    *,
    replay: Replay | None = None,
    dead_letter: DeadLetterHook | None = None,
) -> list[Result]:
    """Apply the inputs of ``batch`` in order, in one transaction.

    A new input's id is claimed in ``ops.processed_events`` before its handler runs and its outputs are stored
    with the claim; an input already claimed (a redelivery, or the same message twice in one batch) yields the
    recorded outputs instead (or, with ``replay``, the outputs rebuilt). An input the handler rejects, or whose
    outputs would not fit the broker's message cap, has its effects rolled back, is unclaimed (so a DLT replay
    can re-drive it) and turned into its dead-letter record (rewritten by ``dead_letter`` when given), while
    the rest of the batch commits. Transient errors propagate and roll back the whole batch, to be retried by
    the caller; see ``shared.failures`` for which are which.

    The new inputs run together, in one savepoint, through one call of the batch handler (a per-message
    handler is called for each in turn), not in a savepoint each: PostgreSQL keeps only 64 subtransactions
    per backend in shared memory, and every snapshot of every session pays once a transaction has more
    (``pg_subtrans``). When that run fails for one input, it is rolled back and re-run in parts until the
    input at fault is alone (see :func:`_apply_run`), so the inputs before it run more than once: their
    effects outside the database are deferred with ``shared.effects.after_commit`` and performed here only
    after the commit, for the runs that were kept.
    """
    run = handler if isinstance(handler, BatchHandler) else BatchHandler.each(handler)
    results: list[Result | None] = [None] * len(batch)
    ids: dict[int, str] = {}
    for i, incoming in enumerate(batch):
        try:
            ids[i] = id_of(incoming)
        except Rejected as rejected:
            results[i] = _rejected(service, incoming, rejected.reason, rejected.message, rejected.location)
    committed: list[effects.Effect] = []
    async with conn.transaction():
        recorded = await db.claim_processed(conn, service, set(ids.values()))
        fresh: dict[str, list[dict[str, Any]]] = {}
        dropped: set[str] = set()
        for stretch in _stretches(ids):
            new: list[int] = []
            for i in stretch:
                if ids[i] in recorded:
                    results[i] = await _replayed(conn, service, batch[i], recorded[ids[i]], replay)
                else:
                    new.append(i)
            applied = await _apply_run(conn, service, run, [(i, batch[i]) for i in new], committed)
            for i, result in applied.items():
                results[i] = result
                if result.outcome == "applied":
                    records = [] if replay is not None else [o.to_record() for o in result.outputs]
                    recorded[ids[i]] = fresh[ids[i]] = records
                    dropped.discard(ids[i])
                else:
                    dropped.add(ids[i])
        await db.record_outputs(conn, service, fresh, sorted(dropped))
        if dead_letter is not None:
            for i, letter in enumerate(results):
                if letter is not None and letter.outcome == "dead_lettered":
                    results[i] = await _rewritten(conn, service, batch[i], letter, dead_letter, committed)
    effects.perform(committed)
    return [r for r in results if r is not None]


def _stretches(ids: dict[int, str]) -> list[list[int]]:
    """The positions of ``ids`` cut into consecutive stretches in which no id repeats: a message seen twice
    in one batch is a duplicate of its first occurrence, which must be applied (or rejected) before it."""
    stretches: list[list[int]] = [[]]
    seen: set[str] = set()
    for i, message_id in ids.items():
        if message_id in seen:
            stretches.append([])
            seen = set()
        seen.add(message_id)
        stretches[-1].append(i)
    return stretches


async def _apply_run(
    conn: asyncpg.Connection,
    service: str,
    handler: BatchHandler,
    run: list[tuple[int, Incoming]],
    committed: list[effects.Effect],
) -> dict[int, Result]:
    """Apply ``run`` (positions and inputs) in one savepoint; each position's result.

    When the run fails permanently it is rolled back and applied again in parts: before and after the input a
    :class:`FailedInput` names (that input alone in between), else in halves, recursively, so a poison input
    ends alone and becomes a dead letter while every other input is applied, in order, each part seeing the
    effects of the parts before it. The deferred effects of the parts that were kept join ``committed``."""
    if not run:
        return {}
    try:
        given, pending = await _run_once(conn, service, handler, [incoming for _, incoming in run])
    except Exception as exc:
        failed = exc.cause if isinstance(exc, FailedInput) else exc
        if is_transient(failed):
            raise failed from exc if failed is not exc else None
        if len(run) == 1:
            return {
                run[0][0]: _dead(service, run[0][1], failed, exc if isinstance(exc, FailedInput) else None)
            }
        if isinstance(exc, FailedInput) and 0 <= exc.position < len(run):
            parts = [run[: exc.position], run[exc.position : exc.position + 1], run[exc.position + 1 :]]
        else:
            parts = [run[: len(run) // 2], run[len(run) // 2 :]]
        results: dict[int, Result] = {}
        for part in parts:
            results |= await _apply_run(conn, service, handler, part, committed)
        return results
    for outputs in given:
        if isinstance(outputs, Exception) and is_transient(outputs):
            raise outputs
    committed += pending
    return {
        i: _dead(service, incoming, outputs)
        if isinstance(outputs, Exception)
        else Result(list(outputs), "applied")
        for (i, incoming), outputs in zip(run, given, strict=True)
    }


async def _run_once(
    conn: asyncpg.Connection, service: str, handler: BatchHandler, inputs: list[Incoming]
) -> tuple[list[PerInput], list[effects.Effect]]:
    """One call of ``handler`` over ``inputs`` in a savepoint, with the sizes of its outputs checked inside
    (an input whose outputs can never be sent is undone); what it gave and the effects it deferred."""
    current = phi.CURRENT_RECORD.set(tuple(i.value for i in inputs))  # what a log line must not show
    try:
        async with conn.transaction():
            with effects.deferred() as pending:
                given = list(await handler.apply(conn, inputs))
                if len(given) != len(inputs):
                    raise RuntimeError(
                        f"{service}: a batch handler gave {len(given)} results for {len(inputs)}"
                    )
                for position, outputs in enumerate(given):
                    if not isinstance(outputs, Exception):
                        try:
                            _check_sizes(outputs)
                        except TooLarge as exc:
                            raise FailedInput(position, exc) from exc
        return given, pending
    finally:
        phi.CURRENT_RECORD.reset(current)


def item_dead_letter(
    service: str, item: Incoming, exc: Exception, where: str, location: dict[str, str]
) -> Outgoing:
    """The DLT record of one item of a message that carries many (a claim of a chunk, ``shared.bundles``),
    written as the item would have travelled alone (``item``: its own topic and bytes), so ``dlt replay``
    re-drives that item alone while the message's other items stand. Reason and PHI-free message as for an
    input (:func:`_dead`)."""
    [record] = _dead(service, item, exc, FailedInput(0, exc, where=where, location=location)).outputs
    reason = dict(record.headers)["reason"].decode()
    # Counted with the stage's other dead letters once the batch commits (its input itself was applied).
    effects.after_commit(telemetry.DEAD_LETTERS.labels(service, reason).inc)
    return record


def _dead(service: str, incoming: Incoming, exc: Exception, failed: FailedInput | None = None) -> Result:
    """The dead letter of an input that failed permanently with ``exc``; ``failed``, when the handler named
    the item of the input at fault (a claim of a chunk), puts that item into the reason and location."""
    current = phi.CURRENT_RECORD.set(incoming.value)  # a traceback logged for it must not show its PHI
    try:
        reason, message, location = _why(service, incoming, exc)
    finally:
        phi.CURRENT_RECORD.reset(current)
    if failed is not None and failed.where:
        message = f"{failed.where}: {message}"
        location = {**location, **failed.location}
    return _rejected(service, incoming, reason, message, location)


async def _replayed(
    conn: asyncpg.Connection,
    service: str,
    incoming: Incoming,
    recorded: list[dict[str, Any]],
    replay: Replay | None,
) -> Result:
    """The outputs owed for an input already applied. Rebuilding them can fail for the same permanent reasons
    as applying (an output now too large): then the input is dead-lettered instead of retried forever."""
    if replay is None:
        return Result([Outgoing.from_record(r) for r in recorded], "duplicate")
    try:
        async with conn.transaction():
            outputs = list(await replay(conn, incoming))
            _check_sizes(outputs)
    except Exception as exc:
        if is_transient(exc):
            raise
        reason, message, location = _why(service, incoming, exc)
        return _rejected(service, incoming, reason, message, location)
    return Result(outputs, "duplicate")


async def _rewritten(
    conn: asyncpg.Connection,
    service: str,
    incoming: Incoming,
    result: Result,
    hook: DeadLetterHook,
    committed: list[effects.Effect],
) -> Result:
    """``result``'s dead-letter records as the stage's hook writes them; the generic ones if the hook fails for
    any reason but a transient one (a dead letter must never be lost to a bug in its rewriting). The effects
    the hook defers join ``committed`` (it runs once per dead letter, so it is where a stage counts them)."""
    rewritten: list[Outgoing] = []
    for record in result.outputs:
        try:
            with effects.deferred() as pending:
                async with conn.transaction():
                    rewritten.append(await hook(conn, incoming, record))
            committed += pending
        except Exception as exc:
            if is_transient(exc):
                raise
            log.exception(
                "%s: dead-letter hook failed (%s); the generic record is kept", service, type(exc).__name__
            )
            rewritten.append(record)
    return Result(rewritten, result.outcome)


def _check_sizes(outputs: Sequence[Outgoing]) -> None:
    """:class:`TooLarge` naming the first output the broker would refuse (our check before anything is sent)."""
    for position, out in enumerate(outputs, start=1):
        if (size := out.size()) > MAX_MESSAGE_BYTES:
            event_type = _event_type(out.value)
            raise TooLarge(
                f"output #{position} ({event_type} for {out.topic}) would be a {size}-byte message; the broker "
                f"takes at most {MAX_MESSAGE_BYTES} bytes a message, so it can never be published"
            )


def _event_type(value: bytes) -> str:
    """The envelope's event type from the start of its JSON, without parsing megabytes (no PHI: a type name)."""
    head = value[:4096].decode("utf-8", errors="replace")
    marker = '"event_type":"'
    at = head.find(marker)
    if at < 0:
        return "a message"
    name = head[at + len(marker) : head.find('"', at + len(marker))]
    return name if name.isidentifier() else "a message"


def _why(service: str, incoming: Incoming, exc: BaseException) -> tuple[str, str, dict[str, str]]:
    """(reason, PHI-free message, location) of a permanent failure of one input."""
    if isinstance(exc, Rejected):
        return exc.reason, exc.message, exc.location
    if isinstance(exc, ValidationError):
        return "invalid_message", safe_validation_message(exc), {}
    if isinstance(exc, TooLarge):
        return "too_large", exc.message, {}
    reason = permanent_reason(exc)
    if reason is not None:
        return reason, type(exc).__name__, {}
    log.exception(
        "%s: unexpected %s at %s[%d]@%d",
        service,
        type(exc).__name__,
        incoming.topic,
        incoming.partition,
        incoming.offset,
    )
    return "processing_error", type(exc).__name__, {}


def _rejected(
    service: str, incoming: Incoming, reason: str, message: str, location: dict[str, str]
) -> Result:
    return Result([dead_letter_message(service, incoming, reason, message, location)], "dead_lettered")


def dead_letter_message(
    service: str,
    incoming: Incoming,
    reason: str,
    message: str,
    location: dict[str, str],
    body: bytes | None = None,
) -> Outgoing:
    """The DLT record of an input: its original key and bytes (or ``body``, a reference to them, see
    ``shared.dlt_refs``), and PHI-free headers saying why and where.

    A record that would not fit the broker's message cap (an input close to the cap plus these headers)
    carries an :class:`~shared.dlt_refs.OmittedBody` instead: the original is where the headers say it was
    consumed from. So a dead letter is always publishable and never stalls its partition."""
    headers = [
        ("reason", reason),
        ("error", message[:1000]),
        ("service", service),
        ("source_topic", incoming.topic),
        ("source_partition", str(incoming.partition)),
        ("source_offset", str(incoming.offset)),
    ]
    headers += [(f"location.{k}", v) for k, v in sorted(location.items())]
    headers = phi.dead_letter_headers(headers, incoming.value)  # the outbound scrubber: no names, no numbers
    record = Outgoing(
        topic=dlt_name(incoming.topic),
        key=(incoming.key or b"").decode(errors="replace"),
        value=incoming.value if body is None else body,
        headers=tuple((k, v.encode()) for k, v in headers),
    )
    if record.size() <= MAX_MESSAGE_BYTES:
        return record
    omitted = OmittedBody(len(record.value), hashlib.sha256(record.value).hexdigest(), "source_position")
    return Outgoing(record.topic, record.key, omitted.to_bytes(), record.headers)


def refused_record(service: str, out: Outgoing, source: Incoming | None) -> Outgoing:
    """What is sent instead of a message the broker refused as too large.

    A dead-letter record keeps its headers and an :class:`~shared.dlt_refs.OmittedBody` (the original input is
    at its source position). An event whose effects are already committed cannot be taken back: a dead letter
    to the DLT of the input that produced it (else of its own topic) says so, so staff see it, raise the
    broker's cap and replay; its body names the event's size and SHA-256."""
    digest = hashlib.sha256(out.value).hexdigest()
    if out.topic.endswith(".dlt"):
        omitted = OmittedBody(len(out.value), digest, "source_position")
        return Outgoing(out.topic, out.key, omitted.to_bytes(), out.headers)
    topic = dlt_name(source.topic) if source is not None else dlt_name(out.topic)
    if topic not in all_topic_names():
        topic = dlt_name(out.topic) if dlt_name(out.topic) in all_topic_names() else INTAKE.dlt
    headers = [
        ("reason", "too_large"),
        (
            "error",
            f"the broker refused a {len(out.value)}-byte {_event_type(out.value)} for {out.topic} as too large "
            "after its effects were committed; raise the topic's max.message.bytes, then replay this input",
        ),
        ("service", service),
        ("source_topic", source.topic if source else out.topic),
        ("source_partition", str(source.partition) if source else ""),
        ("source_offset", str(source.offset) if source else ""),
    ]
    omitted = OmittedBody(len(out.value), digest, "nowhere", topic=out.topic)
    return Outgoing(topic, out.key, omitted.to_bytes(), tuple((k, v.encode()) for k, v in headers))
