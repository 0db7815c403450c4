"""The interest stage (wiring only): consume receivable changes and repayment schedules, tick daily, publish on
remit.interest.v1.

Logic lives in ``engine`` (orchestration), ``domain`` and ``policies`` (pure) and ``store`` (SQL). The tick's
events go through the transactional outbox; the handler's outputs are exactly-once through the Stage.
"""

import logging
import time
from collections.abc import Sequence

import asyncpg

from contracts.envelope import parse_envelope
from contracts.events import ReceivableChanged, StaffActionRecorded
from policies.config import PolicyConfig, PolicyConfigError, PolicyResolver
from services.interest import metrics
from services.interest.engine import Engine
from shared import clock, outbox, plugins
from shared.stream import Incoming, Outgoing, Rejected, Stage

log = logging.getLogger(__name__)

stage = Stage("interest")
app = stage.app
engine = Engine(
    PolicyResolver(
        plugins.load_plugins(plugins.PAYER_POLICIES),
        stage.settings,
        PolicyConfig.from_settings(stage.settings),
    )
)


async def handle(conn: asyncpg.Connection, incoming: Incoming) -> Sequence[Outgoing]:
    """A receivable changed (accrue what was due by the change's business date), or staff recorded an
    extended repayment schedule (store it and recompute)."""
    try:
        if incoming.topic == "remit.staff-actions.v1":
            return await engine.on_staff_action(conn, parse_envelope(incoming.value, StaffActionRecorded))
        return await engine.on_change(conn, parse_envelope(incoming.value, ReceivableChanged))
    except PolicyConfigError as exc:
        raise Rejected("unknown_policy", str(exc)) from exc


async def tick() -> int:
    """Accrue periods that came due by today, then publish whatever the outbox holds."""
    pool = await stage.pool()
    async with pool.acquire() as conn:
        await engine.tick(conn, clock.today(stage.settings))
    published = await outbox.flush_all(stage)
    metrics.TICKS.inc()
    metrics.LAST_TICK.set(time.time())
    return published


stage.every(stage.settings.interest_tick_seconds, tick, "interest tick")
stage.consume(["remit.receivables.v1", "remit.staff-actions.v1"], handle)
