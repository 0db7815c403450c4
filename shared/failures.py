"""Which failures are worth retrying, and which must go to the dead-letter topic at once.

A stage retries a batch only when waiting can change the outcome: the database or the broker is down or busy,
two workers deadlocked, a serialisable transaction lost a race, a call timed out. Everything else is a
property of the input and fails the same way on every attempt (invalid input, a message larger than the
broker accepts), so retrying it would stall its partition forever, and every later message with it: such
input is rejected at once and dead-lettered with a bounded reason. The tables below are the whole rule; a
failure in neither is treated as permanent for one input (dead-lettered as ``processing_error``), because a
bug that a particular input triggers must not hold the inputs behind it hostage.

Exceptions are looked at with their explicit causes (``raise … from``): Faust wraps every Kafka error of a send in a
``ProducerSendError``, which would otherwise hide whether the broker was away or the record too large.
"""

import asyncio
from collections.abc import Iterator

import asyncpg
from aiokafka.errors import (
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from pydantic import ValidationError


class TooLarge(Exception):
    """An output larger than the broker takes in one message, found before anything was sent or committed.
    ``message`` says what and where, without PHI."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


TRANSIENT: tuple[tuple[type[BaseException], str], ...] = (
    (asyncpg.PostgresConnectionError, "the connection to PostgreSQL failed or was cut"),
    (asyncpg.InterfaceError, "the connection was closed or reset under the pool"),
    (asyncpg.CannotConnectNowError, "PostgreSQL is starting up or shutting down"),
    (asyncpg.TooManyConnectionsError, "every PostgreSQL connection slot is taken for now"),
    (asyncpg.exceptions.InsufficientResourcesError, "disk, memory or connections ran out on the server"),
    (
        asyncpg.exceptions.OperatorInterventionError,
        "shutdown, crash, or statement_timeout cancelled the query",
    ),
    (asyncpg.exceptions.DeadlockDetectedError, "two workers' batches locked rows in opposite orders"),
    (asyncpg.exceptions.SerializationError, "a concurrent transaction won a serialisation race"),
    (asyncpg.exceptions.LockNotAvailableError, "lock_timeout expired while another worker held the rows"),
    (asyncio.TimeoutError, "a call timed out (TimeoutError is also an OSError)"),
    (OSError, "network or socket failure: a peer is down or unreachable"),
)
"""Failures worth waiting out: they say nothing about the input, and the same input succeeds once the
database or broker is back. A batch hitting one is rolled back whole and retried with backoff, because
dead-lettering a valid remittance during a PostgreSQL restart would lose money from the ledger."""

PERMANENT: tuple[tuple[type[BaseException], str, str], ...] = (
    (TooLarge, "too_large", "our own check against MAX_MESSAGE_BYTES before anything is sent"),
    (MessageSizeTooLargeError, "too_large", "the producer (max_request_size) or broker (MESSAGE_TOO_LARGE)"),
    (RecordListTooLargeError, "too_large", "the broker refused the record batch as too large"),
    (RecordTooLargeError, "too_large", "the record cannot fit any batch the producer may send"),
    (ValidationError, "invalid_message", "the message does not match its contract"),
)
"""(type, DLT reason, why) of failures that no retry can change. Stage handlers also raise
``shared.messages.Rejected`` for invalid input, which carries its own reason."""

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = tuple(kind for kind, _ in TRANSIENT)
"""The transient types, for ``except`` clauses."""


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__  # explicit causes only: an exception merely handled before is no reason


def permanent_reason(exc: BaseException) -> str | None:
    """The DLT reason of a failure no retry can change (looking through its causes), else None."""
    for link in _chain(exc):
        for kind, reason, _ in PERMANENT:
            if isinstance(link, kind):
                return reason
    return None


def is_transient(exc: BaseException, *, broker: bool = False) -> bool:
    """True when retrying the same work later can succeed. ``broker``: any Kafka error but a size error
    counts as transient too (leader elections, timeouts, a broker restarting), which is right for publishing
    messages already owed to the broker: they must get there, never be dropped."""
    if permanent_reason(exc) is not None:
        return False
    for link in _chain(exc):
        if isinstance(link, TRANSIENT_ERRORS):
            return True
        if broker and isinstance(link, KafkaError):
            return True
    return False


RECORD_OVERHEAD = 128
"""Bytes the broker may count on top of the producer's own estimate of a record (batch header, varints)."""


def record_size(key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> int:
    """The size the producer and the broker see for one record (the producer's own estimate plus headroom)."""
    return int(DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers)) + RECORD_OVERHEAD
