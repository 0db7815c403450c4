"""The accrual engine against the real PostgreSQL: 400 simulated days, back-dated changes, a restart.

Story: 40 receivables (Medicare, plus a commercial contract charging 12 % with partial periods counted as
full) open over the first 250 days; some letters arrive weeks after their determination date, recoveries
arrive late and dated earlier than periods already accrued, one determination is moved earlier, one receivable
is paused by an appeal and recouped during the pause. Every simulated day delivers that day's changes to the
engine (as the Kafka handler would) and runs the daily tick. Half-way the engine is dropped and rebuilt from
the database, and every change delivered so far is delivered again. At the end, for every receivable: the
ledger total = the sum of its interest events = the closed-form interest of its final history.
"""

import json
import random
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from uuid import UUID

import asyncpg
import pytest
from harness import receivable_change

from cli import interest_views
from contracts.envelope import Envelope, parse_envelope
from contracts.events import AlertRaised, InterestAccrued, ReceivableChanged
from contracts.topics import ALERTS, INTEREST
from policies.config import PolicyConfig, PolicyResolver
from policies.payers import MedicarePolicy
from services.interest.engine import Engine
from services.interest.store import InterestStore
from shared import plugins
from shared.ids import receivable_id, stable_id
from shared.messages import Outgoing
from shared.settings import Settings

pytestmark = pytest.mark.integration

D = Decimal
CENT = D("0.01")
ZERO = D("0.00")
START = date(2026, 1, 5)
DAYS = 400
MEDICARE, CONTRACT = "01312", "60054"
CONFIG = json.dumps(
    {
        "tenants": {
            "*": {
                "payers": {
                    CONTRACT: {
                        "policy": "commercial",
                        "options": {"annual_rate": "0.12", "partial_period_as_full": True},
                    }
                }
            }
        }
    }
)


def make_engine(settings: Settings) -> Engine:
    """What the service builds at start-up: plugins, configuration, resolver."""
    installed = plugins.load_plugins(plugins.PAYER_POLICIES)
    return Engine(PolicyResolver(installed, settings, PolicyConfig.from_json(CONFIG)), InterestStore())


@dataclass
class Receivable:
    """The simulated matching side of one receivable: what it will report, and its running totals."""

    payer: str
    reference: str
    determination: date
    principal: Decimal
    rid: UUID = field(init=False)
    recovered: Decimal = ZERO
    status: str = "open"
    final_determination: date = field(init=False)
    recoveries: list[tuple[date, Decimal]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.final_determination = self.determination


@dataclass(frozen=True)
class Planned:
    """A change matching will emit on ``arrival`` (a simulated day), dated ``effective``."""

    arrival: date
    effective: date
    receivable: int
    kind: str
    amount: Decimal = ZERO
    determination: date | None = None


def plan(rng: random.Random, tenant: str) -> tuple[list[Receivable], list[Planned]]:
    """The scenario: receivables and the changes matching will report about them, with their arrival days."""
    receivables: list[Receivable] = []
    changes: list[Planned] = []
    for i in range(40):
        payer = CONTRACT if i % 5 == 4 else MEDICARE
        det = START + timedelta(days=rng.randint(-90, 250))
        principal = D(rng.randint(10_000, 500_000)) / 100
        r = Receivable(payer, f"FCN{i:05d}", det, principal)
        r.rid = receivable_id(tenant, payer, r.reference)
        receivables.append(r)
        opened = max(det + timedelta(days=rng.choice([0, 0, 3, 25, 70])), START)  # letters entered late
        changes.append(Planned(opened, det, i, "ReceivableOpened"))
        left = principal
        for _ in range(rng.randint(0, 3) if i != 1 else 0):
            effective = det + timedelta(days=rng.randint(41, 330))
            amount = left if rng.random() < 0.3 else (left * D(rng.randint(10, 60)) / 100).quantize(CENT)
            if amount <= 0:
                break
            left -= amount
            late = rng.choice([0, 0, 0, 5, 40, 90])  # a file received weeks after its payment date
            changes.append(
                Planned(
                    max(effective + timedelta(days=late), opened), effective, i, "ReceivableReduced", amount
                )
            )
    # Receivable 0: a later letter moves its determination 45 days earlier (and adds 100.00 of principal).
    first = receivables[0]
    earlier = first.determination - timedelta(days=45)
    changes.append(
        Planned(
            first.determination + timedelta(days=100), earlier, 0, "ReceivableIncreased", D("100.00"), earlier
        )
    )
    # Receivable 1: appeal filed on day 35 (entered on day 50), recouped on day 60, upheld on day 120.
    appealed = receivables[1]
    day = appealed.determination
    changes += [
        Planned(max(day + timedelta(days=50), START), day + timedelta(days=35), 1, "RecoupmentPaused"),
        Planned(
            max(day + timedelta(days=61), START), day + timedelta(days=60), 1, "ReceivableReduced", D("10.00")
        ),
        Planned(max(day + timedelta(days=120), START), day + timedelta(days=120), 1, "RecoupmentResumed"),
    ]
    return receivables, changes


def emit(tenant: str, r: Receivable, p: Planned, seq: int) -> Envelope[ReceivableChanged]:
    """The ReceivableChanged matching would publish, with its running totals at that moment."""
    if p.kind == "ReceivableIncreased":
        r.principal += p.amount
        r.final_determination = min(r.final_determination, p.determination or r.final_determination)
    elif p.kind == "ReceivableReduced":
        r.recovered += p.amount
        r.recoveries.append((p.effective, p.amount))
    if p.kind == "RecoupmentPaused":
        r.status = "paused"
    elif r.status != "paused" or p.kind == "RecoupmentResumed":
        r.status = (
            "settled" if r.recovered == r.principal else "partially_recovered" if r.recovered else "open"
        )
    return receivable_change(
        tenant,
        p.kind,
        reference=r.reference,
        effective=p.effective,
        determination=r.final_determination,
        principal=r.principal,
        recovered=r.recovered,
        amount=p.amount,
        status=r.status,
        payer=r.payer,
        event_id=stable_id(tenant, r.reference, "sim", seq),
        source=f"simulated change {seq}",
    )


def closed_form(r: Receivable, rate: Decimal, through: date, partial_as_full: bool) -> Decimal:
    """Interest of the final history, written independently of the engine (DOMAIN.md §3 read literally)."""
    det = r.final_determination

    def owed(day: date) -> Decimal:
        return r.principal - sum((a for d, a in r.recoveries if d <= day), D("0"))

    total, n = D("0.00"), 1
    while det + timedelta(days=30 * (n - 1) + 1) <= through:
        start, end = det + timedelta(days=30 * (n - 1) + 1), det + timedelta(days=30 * n)
        if owed(end) > 0 and end + timedelta(days=1) <= through:
            total += (owed(end) * rate / 12).quantize(CENT, rounding=ROUND_HALF_UP)
        elif owed(end) <= 0 < owed(start) and partial_as_full and n >= 2:
            payoff = min(d for d, _ in r.recoveries if start < d <= end and owed(d) <= 0)
            if payoff <= through:
                total += (owed(payoff - timedelta(days=1)) * rate / 12).quantize(CENT, rounding=ROUND_HALF_UP)
        n += 1
    return total


def interest_amounts(messages: list[Outgoing]) -> Iterator[tuple[str, UUID, Decimal]]:
    for m in messages:
        if m.topic == INTEREST.name:
            env = parse_envelope(m.value, InterestAccrued)
            yield str(env.event_id), env.payload.receivable_id, env.payload.amount


async def outbox_messages(conn: asyncpg.Connection, tenant: str) -> list[Outgoing]:
    rows = await conn.fetch("SELECT record FROM ops.outbox WHERE service = 'interest' ORDER BY created_at")
    found = [Outgoing.from_record(json.loads(r["record"])) for r in rows]
    return [m for m in found if json.loads(m.value)["tenant_id"] == tenant]


async def test_400_days_of_ticks_equal_the_closed_form_across_a_restart(
    stack_settings: Settings, tenant: str
) -> None:
    rng = random.Random(20260105)
    receivables, planned = plan(rng, tenant)
    by_day: dict[date, list[Planned]] = defaultdict(list)
    for p in sorted(planned, key=lambda p: (p.arrival, p.kind != "ReceivableOpened")):
        by_day[p.arrival].append(p)
    conn = await asyncpg.connect(stack_settings.database_url)
    engine = make_engine(stack_settings)
    handler_outputs: list[Outgoing] = []
    delivered: list[Envelope[ReceivableChanged]] = []
    end = START + timedelta(days=DAYS)
    try:
        day = START
        while day <= end:
            # The day's changes, each in its own transaction, as the stage's handler runs them.
            for p in by_day.get(day, []):
                env = emit(tenant, receivables[p.receivable], p, len(delivered))
                delivered.append(env)
                async with conn.transaction():
                    handler_outputs += await engine.on_change(conn, env)
            await engine.tick(conn, day, [tenant])
            if day == START + timedelta(days=200):
                # Restart: drop every in-memory object, reconnect, redeliver everything, tick the same day again.
                await conn.close()
                conn = await asyncpg.connect(stack_settings.database_url)
                engine = make_engine(stack_settings)
                for env in delivered:
                    async with conn.transaction():
                        assert await engine.on_change(conn, env) == []
                assert await engine.tick(conn, day, [tenant]) == 0
            day += timedelta(days=1)

        # Every interest event once, and per receivable: events = ledger = closed form.
        events = list(interest_amounts(handler_outputs + await outbox_messages(conn, tenant)))
        assert len({event_id for event_id, _, _ in events}) == len(events)
        from_events: dict[UUID, Decimal] = defaultdict(lambda: D("0.00"))
        for _, rid, amount in events:
            from_events[rid] += amount
        ledger = {
            r["receivable_id"]: r["total"]
            for r in await conn.fetch(
                "SELECT receivable_id, sum(amount) AS total FROM interest.accruals WHERE tenant_id = $1 "
                "GROUP BY receivable_id",
                tenant,
            )
        }
        medicare = MedicarePolicy()
        corrections = await conn.fetchval(
            "SELECT count(*) FROM interest.accruals WHERE tenant_id = $1 AND version > 1", tenant
        )
        for r in receivables:
            if r.payer == CONTRACT:
                expected = closed_form(r, D("0.12"), end, partial_as_full=True)
            else:
                expected = closed_form(
                    r, medicare.rates.rate_on(r.final_determination), end, partial_as_full=False
                )
            assert ledger.get(r.rid, D("0.00")) == expected, r.reference
            assert from_events.get(r.rid, D("0.00")) == expected, r.reference
        assert sum(ledger.values()) > D("1000.00")
        assert corrections > 0  # the back-dated changes really did correct earlier postings

        # The recoupment during the appeal was flagged, once.
        alerts = [
            parse_envelope(m.value, AlertRaised).payload for m in handler_outputs if m.topic == ALERTS.name
        ]
        assert [(a.kind, a.reference, a.amount) for a in alerts] == [
            ("recoupment_during_pause", receivables[1].reference, D("10.00"))
        ]
        assert len({a.alert_id for a in alerts}) == len(alerts)
    finally:
        await conn.close()

    # The staff view of the appealed receivable.
    view = await interest_views.receivable_timeline(stack_settings, tenant, receivables[1].reference)
    [only] = view["receivables"]
    labels = [t["label"] for t in only["timeline"]]
    assert {"rebuttal_deadline", "interest_start", "recoupment_start", "appeal_deadline"} <= set(labels)
    assert {"recoupment_paused", "recoupment_resumed"} <= set(labels)
    assert only["interest_total"] == sum(p["amount"] for p in only["interest"])
    text = interest_views.render_timeline(view)
    assert "recoupment paused" in text and "recoupment_during_pause" in text
    assert "no receivable" in interest_views.render_timeline(
        await interest_views.receivable_timeline(stack_settings, tenant, "NO-SUCH-FCN")
    )
