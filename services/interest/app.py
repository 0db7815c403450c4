"""The interest stage: accrue payer-policy interest on receivables, event-driven and on a daily tick.

Event-driven accrual runs up to the change's *business* date (a remittance's payment date), so replaying
historical files accrues what was due then; the tick accrues up to today (``OFFSETSTREAM_TODAY`` overrides the
clock). Each period is one row and one event keyed by (receivable, period): replays never double-accrue.
"""

import logging
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime
from uuid import UUID

import asyncpg

from contracts.envelope import parse_envelope
from contracts.events import InterestAccrued, ReceivableChanged
from services.interest import domain, metrics, store
from services.interest.policies import MedicarePolicy
from shared import envelopes, plugins
from shared.ids import stable_id
from shared.stream import Incoming, Outgoing, Stage

log = logging.getLogger(__name__)

stage = Stage("interest")
app = stage.app
POLICIES: dict[str, MedicarePolicy] = plugins.load_plugins(plugins.PAYER_POLICIES)
INTEREST = "remit.interest.v1"


def today() -> date:
    """Business date: the injectable clock for tests and back-dated runs."""
    return stage.settings.today or datetime.now(UTC).date()


def _accrual_event(
    tenant: str,
    account: str,
    rid: UUID,
    payer: str,
    reference: str,
    policy: str,
    period: domain.Period,
    cause: str,
) -> Outgoing:
    payload = InterestAccrued(
        receivable_id=rid,
        payer_id=payer,
        reference=reference,
        policy=policy,
        period_number=period.number,
        period_start=period.start,
        period_end=period.end,
        principal_basis=period.basis,
        annual_rate=period.rate,
        amount=period.amount,
    )
    return Outgoing.event(
        INTEREST,
        envelopes.build(
            payload,
            event_id=stable_id(rid, "interest", period.number),
            event_type="InterestAccrued",
            tenant_id=tenant,
            account_key=account,
            causation_id=cause,
        ),
    )


async def accrue(
    conn: asyncpg.Connection,
    tenant: str,
    account: str,
    rid: UUID,
    payer: str,
    reference: str,
    policy_name: str,
    determination: date,
    through: date,
    cause: str,
    *,
    published: bool,
) -> list[Outgoing]:
    """Write every newly due period up to ``through`` and return their events."""
    policy = POLICIES.get(policy_name)
    if policy is None:
        log.warning("no payer policy %r installed; receivable %s accrues no interest", policy_name, rid)
        return []
    history = await store.history(conn, tenant, rid)
    first = await store.last_period(conn, tenant, rid) + 1
    periods = domain.due_periods(
        determination,
        through,
        domain.outstanding_from_history(history),
        policy.annual_rate(determination),
        first_period=first,
    )
    outputs = []
    for period in periods:
        if await store.add_accrual(
            conn, tenant, rid, stable_id(rid, "interest", period.number), period, published=published
        ):
            metrics.INTEREST_PERIODS.labels(policy_name).inc()
            metrics.INTEREST_DOLLARS.labels(policy_name).inc(float(period.amount))
            outputs.append(_accrual_event(tenant, account, rid, payer, reference, policy_name, period, cause))
    return outputs


async def handle(conn: asyncpg.Connection, incoming: Incoming) -> Sequence[Outgoing]:
    """A receivable changed: record it and accrue what was due by the change's business date."""
    env = parse_envelope(incoming.value, ReceivableChanged)
    change = env.payload
    # An InterestAdded change is dated at its period's due day but carries today's recovery totals: it says
    # nothing about principal at that date, so it must not enter the principal history.
    await store.record_change(
        conn,
        env.tenant_id,
        env.account_key,
        env.event_id,
        change,
        principal_changed=env.event_type != "InterestAdded",
    )
    return await accrue(
        conn,
        env.tenant_id,
        env.account_key,
        change.receivable_id,
        change.payer_id,
        change.reference,
        change.policy,
        change.determination_date,
        change.effective_date,
        str(env.event_id),
        published=True,
    )


async def tick() -> int:
    """Accrue periods that came due by today for every receivable with principal owed; publish them."""
    pool = await stage.pool()
    day = today()
    async with pool.acquire() as conn:
        async with conn.transaction():
            for row in await store.open_receivables(conn):
                await accrue(
                    conn,
                    row["tenant_id"],
                    row["account_key"],
                    row["receivable_id"],
                    row["payer_id"],
                    row["reference"],
                    row["policy"],
                    row["determination_date"],
                    day,
                    f"interest tick {day.isoformat()}",
                    published=False,
                )
        pending = await store.unpublished(conn)
        for row in pending:
            period = domain.Period(
                row["period_number"],
                row["period_start"],
                row["period_end"],
                row["principal_basis"],
                row["annual_rate"],
                row["amount"],
            )
            await stage.publish(
                [
                    _accrual_event(
                        row["tenant_id"],
                        row["account_key"],
                        row["receivable_id"],
                        row["payer_id"],
                        row["reference"],
                        row["policy"],
                        period,
                        f"interest tick {day.isoformat()}",
                    )
                ]
            )
            await store.mark_published(conn, row["tenant_id"], row["receivable_id"], row["period_number"])
    metrics.TICKS.inc()
    metrics.LAST_TICK.set(time.time())
    return len(pending)


async def interest_timer() -> None:
    """The time-driven half of accrual; errors are logged and retried on the next tick."""
    try:
        await stage.retrying(tick)
    except Exception:
        log.exception("interest tick failed; will retry on the next tick")


app.timer(interval=stage.settings.interest_tick_seconds)(interest_timer)
stage.consume(["remit.receivables.v1"], handle)
