"""Transactional outbox for events that timers produce (no input message to hang idempotence on).

A timer writes its domain rows and the messages they imply in one transaction (``add``), then ``flush``
publishes whatever is unpublished and marks it. A crash between the two only delays the messages to the next
flush; message ids are deterministic, so a message published twice is dropped downstream.
"""

import json
import time
from collections.abc import Awaitable, Callable
from datetime import date

import asyncpg
from prometheus_client import Counter, Gauge

from shared import clock
from shared.messages import Outgoing
from shared.stream import Stage

Work = Callable[[asyncpg.Connection, date], Awaitable[object]]
"""A timer's work for one business day: writes its rows and queues its messages (:func:`add`)."""


async def add(conn: asyncpg.Connection, service: str, message_id: str, message: Outgoing) -> bool:
    """Queue a message once per id (inside the caller's transaction); False when already queued."""
    done = await conn.fetchval(
        """INSERT INTO ops.outbox (service, message_id, record) VALUES ($1, $2, $3::jsonb)
           ON CONFLICT DO NOTHING RETURNING 1""",
        service,
        message_id,
        json.dumps(message.to_record()),
    )
    return done is not None


async def flush(stage: Stage, limit: int = 1000) -> int:
    """Publish the service's unpublished messages in order; return how many were published."""
    pool = await stage.pool()
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            """SELECT message_id, record FROM ops.outbox WHERE service = $1 AND NOT published
               ORDER BY created_at, message_id LIMIT $2""",
            stage.service,
            limit,
        )
        if not rows:
            return 0
        await stage.publish([Outgoing.from_record(json.loads(r["record"])) for r in rows])
        await conn.execute(
            "UPDATE ops.outbox SET published = true WHERE service = $1 AND message_id = ANY($2::text[])",
            stage.service,
            [r["message_id"] for r in rows],
        )
    return len(rows)


async def flush_all(stage: Stage) -> int:
    """Publish everything the service has queued, batch after batch; return how many were published."""
    published = 0
    while flushed := await flush(stage):
        published += flushed
    return published


def every(
    stage: Stage,
    seconds: float,
    work: Work,
    name: str,
    *,
    ticks: Counter | None = None,
    last_tick: Gauge | None = None,
) -> None:
    """Run a timer's ``work`` for today's business date every ``seconds`` (``Stage.every``: transient failures
    retried, others logged until the next tick), then publish whatever the outbox holds; count each completed
    run in ``ticks`` and stamp ``last_tick`` with its time."""

    async def tick() -> int:
        pool = await stage.pool()
        async with pool.acquire() as conn:
            await work(conn, clock.today(stage.settings))
        published = await flush_all(stage)
        if ticks is not None:
            ticks.inc()
        if last_tick is not None:
            last_tick.set(time.time())
        return published

    stage.every(seconds, tick, name)
