"""One receivable's story against the real PostgreSQL: ticks accrue, a back-dated payoff corrects them.

Medicare, 1000.00 determined 2026-01-01 at 11.50 % (9.58 a period). The tick runs to day 100 and charges
periods 1–3 through the outbox. On day 101 a remittance dated day 45 reports the whole principal recouped:
periods 2 and 3 were never owed, so the engine posts version-2 corrections of −9.58 each, as handler outputs.
"""

import json
from datetime import date, timedelta
from decimal import Decimal
from uuid import UUID

import asyncpg
import pytest
from harness import receivable_change

from contracts.envelope import Envelope, parse_envelope
from contracts.events import InterestAccrued, ReceivableChanged
from policies.config import PolicyConfig, PolicyResolver
from services.interest.engine import Engine
from services.interest.ledger import accrual_id
from services.interest.store import InterestStore
from shared import plugins
from shared.ids import receivable_id, stable_id
from shared.settings import Settings

pytestmark = pytest.mark.integration

D = Decimal
DET = date(2026, 1, 1)


def change(
    tenant: str, kind: str, effective: date, recovered: str, status: str
) -> Envelope[ReceivableChanged]:
    return receivable_change(
        tenant,
        kind,
        reference="FCN-STORY",
        effective=effective,
        determination=DET,
        recovered=recovered,
        status=status,
        account="acct",
        event_id=stable_id(tenant, kind, effective),
        source="story",
    )


async def test_back_dated_payoff_reverses_accrued_periods(stack_settings: Settings, tenant: str) -> None:
    installed = plugins.load_plugins(plugins.PAYER_POLICIES)
    engine = Engine(PolicyResolver(installed, stack_settings, PolicyConfig()), InterestStore())
    rid: UUID = receivable_id(tenant, "01312", "FCN-STORY")
    conn = await asyncpg.connect(stack_settings.database_url)
    try:
        # Day 0: the letter. Nothing is due yet.
        async with conn.transaction():
            assert await engine.on_change(conn, change(tenant, "ReceivableOpened", DET, "0.00", "open")) == []
        # Days 1..100: the daily tick charges periods 1, 2 and 3 (days 31, 61, 91) through the outbox.
        for n in range(1, 101):
            await engine.tick(conn, DET + timedelta(days=n), [tenant])
        queued = await conn.fetch(
            "SELECT message_id, record FROM ops.outbox WHERE service = 'interest' AND message_id = ANY($1::text[])",
            [str(accrual_id(rid, n, 1)) for n in (1, 2, 3)],
        )
        assert len(queued) == 3
        # Day 101: the payoff dated day 45 arrives; periods 2 and 3 are reversed by new versions.
        async with conn.transaction():
            outputs = await engine.on_change(
                conn, change(tenant, "ReceivableSettled", DET + timedelta(days=45), "1000.00", "settled")
            )
        corrections = [parse_envelope(o.value, InterestAccrued) for o in outputs]
        assert [
            (c.event_id, c.payload.period_number, c.payload.version, c.payload.amount) for c in corrections
        ] == [
            (accrual_id(rid, 2, 2), 2, 2, D("-9.58")),
            (accrual_id(rid, 3, 2), 3, 2, D("-9.58")),
        ]
        rows = await conn.fetch(
            "SELECT period_number, version, amount FROM interest.accruals WHERE tenant_id = $1 "
            "ORDER BY period_number, version",
            tenant,
        )
        assert [(r["period_number"], r["version"], r["amount"]) for r in rows] == [
            (1, 1, D("9.58")),
            (2, 1, D("9.58")),
            (2, 2, D("-9.58")),
            (3, 1, D("9.58")),
            (3, 2, D("-9.58")),
        ]
        # Accrued through the last charge day (91); settled, so the tick no longer visits it.
        state = await conn.fetchrow(
            "SELECT accrued_through, next_due FROM interest.receivables WHERE tenant_id = $1", tenant
        )
        assert (state["accrued_through"], state["next_due"]) == (DET + timedelta(days=91), None)
        assert await engine.tick(conn, DET + timedelta(days=400), [tenant]) == 0
        assert json.loads(queued[0]["record"])["topic"] == "remit.interest.v1"
    finally:
        await conn.close()
