"""The values a stage's handlers take and give: a consumed record (:class:`Incoming`), a message owed to the broker
(:class:`Outgoing`), what became of an input (:class:`Result`), the handler signatures, and :class:`Rejected`,
the one exception that says "this input can never be processed as it is". Independent of Faust's types, so
handlers and engines are testable without a broker."""

import base64
import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg
from pydantic import ValidationError

from contracts.envelope import Envelope
from contracts.topics import P, Topic
from shared.failures import record_size


class Rejected(Exception):
    """Input that can never be processed as it is. ``reason`` is a bounded label; ``message`` has no PHI."""

    def __init__(self, reason: str, message: str, location: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.location = location or {}


@dataclass(frozen=True)
class Incoming:
    """One consumed Kafka record, independent of Faust's types so handlers stay testable."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class Outgoing:
    """A message to publish after the transaction commits."""

    topic: str
    key: str
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()

    def size(self) -> int:
        """Bytes of this message as the producer and the broker count them (see ``shared.failures``)."""
        return record_size(self.key.encode(), self.value, list(self.headers))

    @classmethod
    def event(cls, topic: Topic[P], envelope: Envelope[P]) -> "Outgoing":
        """An envelope on its typed topic, keyed by the topic's key rule (the account, so one account's events
        stay ordered on one partition)."""
        return cls(topic=topic.name, key=topic.key_of(envelope), value=envelope.to_bytes())

    def to_record(self) -> dict[str, Any]:
        """JSON-safe form kept in ``ops.processed_events`` for re-publishing after a crash."""
        return {
            "topic": self.topic,
            "key": self.key,
            "value": base64.b64encode(self.value).decode(),
            "headers": [[k, base64.b64encode(v).decode()] for k, v in self.headers],
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "Outgoing":
        """Inverse of :meth:`to_record`."""
        return cls(
            topic=record["topic"],
            key=record["key"],
            value=base64.b64decode(record["value"]),
            headers=tuple((k, base64.b64decode(v)) for k, v in record["headers"]),
        )


@dataclass(frozen=True)
class Result:
    """What became of one input: the messages owed to the broker and the outcome label."""

    outputs: list[Outgoing]
    outcome: str  # applied | duplicate | dead_lettered


Handler = Callable[[asyncpg.Connection, Incoming], Awaitable[Sequence[Outgoing]]]
"""Handles one consumed record as it came (bytes, position, headers)."""


PerInput = Sequence[Outgoing] | Exception
"""What a batch handler gives for one input: the messages it owes, or (only for an input it wrote nothing
for, such as one that does not parse) the permanent error that makes it a dead letter."""


def refusal(exc: Exception) -> Exception:
    """``exc`` as a batch handler's :data:`PerInput` for an input it refuses, without its traceback.

    Caught inside the handler's loop and kept in its list of answers, the traceback would hold the handler's
    frame, and so the whole batch (every record and every parsed envelope), in a reference cycle that only
    the cyclic collector frees: with the stages' young threshold (``shared.gc_tuning``) that is many batches
    later. The dead letter needs the error's type and message, not where it was raised."""
    return exc.with_traceback(None)


class FailedInput(Exception):
    """Raised by a batch handler that knows which input of its batch failed (``position``, 0-based) with
    ``cause``. The runtime rolls the batch back, re-runs the inputs before it, dead-letters it if it fails
    again alone, and runs the rest: three runs instead of a bisection.

    An input that carries many items (a chunk of claims) fails for one of them: ``where`` says which, in
    PHI-free words (``claim #7 (CLP segment 52)``), and ``location`` the same as ``location.*`` headers; the
    dead-letter record of the input then names the item, not just the input."""

    def __init__(
        self, position: int, cause: Exception, *, where: str = "", location: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"input #{position} failed: {type(cause).__name__}")
        self.position = position
        self.cause = cause
        self.where = where
        self.location = dict(location or {})

    def at(self, position: int) -> "FailedInput":
        """The same failure at another position: for a caller that handed the handler a part of its batch."""
        return FailedInput(position, self.cause, where=self.where, location=self.location)


@dataclass(frozen=True)
class BatchHandler:
    """Handles all inputs of a batch (for one topic, in the order consumed) in one call, inside the batch
    transaction, and returns one :data:`PerInput` per input, in the same order.

    The point is constant round trips: load every related row of the batch in one query, write in one
    ``unnest`` statement. The inputs must see each other's effects in order, as if handled one by one. An
    exception fails the whole call (its effects are rolled back) and the runtime isolates the input at fault
    by re-running parts of the batch (:class:`FailedInput` names it, else halves); so a batch handler may run
    several times before its effects commit, and defers effects outside the database with
    ``shared.effects.after_commit``."""

    apply: Callable[[asyncpg.Connection, Sequence[Incoming]], Awaitable[Sequence[PerInput]]]

    @classmethod
    def each(cls, handler: Handler) -> "BatchHandler":
        """A per-message handler run over the inputs one after another; a failure names its input."""

        async def apply(conn: asyncpg.Connection, batch: Sequence[Incoming]) -> list[PerInput]:
            outputs: list[PerInput] = []
            for position, incoming in enumerate(batch):
                try:
                    outputs.append(list(await handler(conn, incoming)))
                except Exception as exc:
                    raise FailedInput(position, exc) from exc
            return outputs

        return cls(apply)


class EventHandler(Protocol[P]):
    """Handles one envelope of a typed topic, parsed by the runtime as the topic's payload model."""

    def __call__(self, conn: asyncpg.Connection, envelope: Envelope[P], /) -> Awaitable[Sequence[Outgoing]]:
        """The messages owed for this envelope (written in the caller's transaction)."""
        ...


class EventBatchHandler(Protocol[P]):
    """Handles every envelope of a typed topic in a batch at once (see :class:`BatchHandler`)."""

    def __call__(
        self, conn: asyncpg.Connection, envelopes: Sequence[Envelope[P]], /
    ) -> Awaitable[Sequence[Sequence[Outgoing]]]:
        """The messages owed for each envelope, in order (written in the caller's transaction)."""
        ...


Replay = Handler
"""Rebuilds the outputs of an input already applied, from the input and the ledger, without writing anything."""


IdOf = Callable[[Incoming], str]


DeadLetterHook = Callable[[asyncpg.Connection, Incoming, Outgoing], Awaitable[Outgoing]]
"""Turns the generic dead-letter record of an input into the stage's own, inside the batch transaction (after
the input's effects were rolled back): intake keeps the payer file once and writes a record naming it."""


_EVENT_ID_PREFIX = b'{"event_id":"'
_EVENT_ID_END = len(_EVENT_ID_PREFIX) + 36
_UUID_TEXT = re.compile(rb"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def envelope_event_id(incoming: Incoming) -> str:
    """The idempotency id of an envelope message: its deterministic ``event_id``.

    Read from the first bytes when the message starts as :meth:`Envelope.to_bytes` writes every envelope
    (``{"event_id":"<uuid>",``): parsing the whole message only for its id cost detection 7 % of its CPU on
    parts of 100 claims (session 11). Any other layout is parsed whole, as before."""
    value = incoming.value
    if value.startswith(_EVENT_ID_PREFIX) and value[_EVENT_ID_END : _EVENT_ID_END + 2] == b'",':
        candidate = value[len(_EVENT_ID_PREFIX) : _EVENT_ID_END]
        if _UUID_TEXT.fullmatch(candidate):
            return candidate.decode("ascii")
    try:
        event_id = json.loads(value)["event_id"]
    except (ValueError, KeyError, TypeError) as exc:
        raise Rejected("invalid_message", "message is not an offsetstream envelope (no event_id)") from exc
    if not isinstance(event_id, str):
        raise Rejected("invalid_message", "event_id is not a string")
    return event_id


def safe_validation_message(exc: ValidationError) -> str:
    """A pydantic error summary without the offending input values (they may be PHI)."""
    parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_input=False)]
    return "; ".join(parts[:5])
