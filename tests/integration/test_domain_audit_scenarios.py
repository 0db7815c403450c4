"""Stories from the DOMAIN.md audit, through the real handlers and the real PostgreSQL ledger.

- Recoveries that arrive before their receivable are parked, then re-matched: staff who were asked to review
  them hear that they are resolved, and every re-match reaches the interest stage as its own change.
- A state pack's look-back and notice rules read when the overpaid payment was made (NY: no recovery begun
  more than 24 months after payment).
- A write-off (appeal won by the provider) ends interest.
"""

import json
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal
from functools import partial

import asyncpg
import pytest
from harness import receivable_change, remit
from harness import run_files as run

from contracts.envelope import Envelope, parse_envelope
from contracts.events import AlertRaised, OffsetRecorded, ReceivableChanged
from contracts.topics import ALERTS, OFFSETS, RECEIVABLES
from policies.config import PolicyConfig, PolicyResolver
from services.interest.engine import Engine
from services.interest.store import InterestStore
from shared import plugins
from shared.ids import stable_id
from shared.messages import Outgoing
from shared.settings import Settings

pytestmark = pytest.mark.integration
D = Decimal


async def notifications(ledger: asyncpg.Connection, tenant: str) -> list[tuple[str, str, dict[str, str]]]:
    rows = await ledger.fetch(
        "SELECT kind, severity, facts FROM notification.notifications WHERE tenant_id = $1 ORDER BY created_at, kind",
        tenant,
    )
    return [(r["kind"], r["severity"], json.loads(r["facts"])) for r in rows]


def offsets(published: Sequence[Outgoing]) -> list[OffsetRecorded]:
    return [parse_envelope(o.value, OffsetRecorded).payload for o in published if o.topic == OFFSETS.name]


async def test_a_parked_recovery_rematched_in_full_is_announced_as_resolved(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    # Day 21: the positive WO arrives first: nothing to apply it to, staff are asked to review it.
    await run(ledger, tenant, remit("EFT400002", "20260824", ("WO", "FCN400", "80.00")))
    assert [(k, s) for k, s, _ in await notifications(ledger, tenant)] == [("unmatched_recovery", "action")]
    # The deferral that opens FCN400 arrives late: the parked WO is re-matched in full.
    pipeline = await run(ledger, tenant, remit("EFT400001", "20260803", ("WO", "FCN400", "-80.00")))
    [rematch] = [o for o in offsets(pipeline.published) if o.rematch_of is not None]
    original = await ledger.fetchval(
        "SELECT adjustment_id FROM matching.adjustments WHERE tenant_id = $1 AND trace_number = 'EFT400002'",
        tenant,
    )
    assert (rematch.rematch_of, rematch.unmatched_amount, rematch.bucket) == (
        original,
        D("0.00"),
        "allocated",
    )
    found = await notifications(ledger, tenant)
    [resolved] = [facts for kind, severity, facts in found if kind == "unmatched_recovery_resolved"]
    assert (resolved["applied"], resolved["unmatched"], resolved["applied_to"]) == ("80.00", "0.00", "FCN400")
    assert resolved["rematch_of"] == str(original)
    # The re-matched money is also announced against its receivable, like any applied offset.
    [applied] = [facts for kind, _, facts in found if kind == "offset_applied"]
    assert (applied["reference"], applied["applied"], applied["balance_left"]) == ("FCN400", "80.00", "0.00")


async def test_a_partial_rematch_repeats_the_unmatched_action_with_what_is_left(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    await run(ledger, tenant, remit("EFT410002", "20260824", ("WO", "FCN410", "100.00")))
    await run(ledger, tenant, remit("EFT410001", "20260803", ("WO", "FCN410", "-60.00")))
    kinds = [(kind, facts.get("unmatched")) for kind, _, facts in await notifications(ledger, tenant)]
    assert ("unmatched_recovery", "100.00") in kinds
    assert ("unmatched_recovery", "40.00") in kinds
    assert "unmatched_recovery_resolved" not in [k for k, _ in kinds]


async def test_parked_recoveries_rematched_by_one_deferral_reach_interest_as_separate_changes(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    # Three partial recoupments (30 + 20 + 30) arrive before the deferral of 80 that explains them. The
    # deferral's one event moves the receivable three times: each move must keep its own event id, or
    # downstream stages would drop the second reduction as a replay of the first.
    await run(
        ledger,
        tenant,
        remit("EFT420002", "20260824", ("WO", "FCN420", "30.00")),
        remit("EFT420003", "20260831", ("WO", "FCN420", "20.00")),
        remit("EFT420004", "20260907", ("WO", "FCN420", "30.00")),
    )
    pipeline = await run(ledger, tenant, remit("EFT420001", "20260803", ("WO", "FCN420", "-80.00")))
    changes = [o for o in pipeline.published if o.topic == RECEIVABLES.name]
    seen_changes = [parse_envelope(o.value, ReceivableChanged) for o in changes]
    ids = [c.event_id for c in seen_changes if c.event_type != "InterestAdded"]
    assert len(ids) == len(set(ids)) == 4  # opened, reduced by 30, reduced by 20, settled by 30
    history = await ledger.fetch(
        """SELECT change, amount FROM matching.receivable_history WHERE tenant_id = $1
           AND change <> 'InterestAdded' ORDER BY seq""",
        tenant,
    )
    assert [(r["change"], r["amount"]) for r in history] == [
        ("ReceivableOpened", D("80.00")),
        ("ReceivableReduced", D("30.00")),
        ("ReceivableReduced", D("20.00")),
        ("ReceivableSettled", D("30.00")),
    ]
    seen = await ledger.fetchval(
        "SELECT count(*) FROM interest.principal_history WHERE tenant_id = $1 AND event_type <> 'InterestAdded'",
        tenant,
    )
    assert seen == 4
    row = await ledger.fetchrow(
        "SELECT principal_recovered, interest_recovered FROM matching.receivables WHERE tenant_id = $1",
        tenant,
    )
    # Period 1 (due day 31) was charged on the 30.00 still owed on day 30; the last 30.00 (day 35) paid that
    # interest first, so 0.29 of principal is still owed.
    assert (row["principal_recovered"], row["interest_recovered"]) == (D("79.71"), D("0.29"))


# --- the interest engine on its own --------------------------------------------------------------------------

NY_PAYER = "87726"
CONFIG = json.dumps({"tenants": {"*": {"payers": {NY_PAYER: "ny"}}}})


def change(
    tenant: str,
    kind: str,
    *,
    payer: str,
    policy: str,
    determination: date,
    effective: date,
    principal: str,
    recovered: str = "0.00",
    status: str = "open",
    amount: str | None = None,
    paid_on: date | None = None,
    written_off: str = "0.00",
) -> Envelope[ReceivableChanged]:
    return receivable_change(
        tenant,
        kind,
        reference="FCN-AUDIT",
        effective=effective,
        determination=determination,
        principal=principal,
        recovered=recovered,
        written_off=written_off,
        amount=amount or principal,
        status=status,
        payer=payer,
        policy=policy,
        account="acct",
        event_id=stable_id(tenant, kind, effective),
        source="audit",
        original_payment_date=paid_on,
    )


def engine(settings: Settings) -> Engine:
    installed = plugins.load_plugins(plugins.PAYER_POLICIES)
    return Engine(PolicyResolver(installed, settings, PolicyConfig.from_json(CONFIG)), InterestStore())


async def test_ny_recovery_begun_more_than_24_months_after_payment_is_flagged(
    stack_settings: Settings, tenant: str
) -> None:
    paid_on, determination = date(2024, 1, 10), date(2025, 12, 1)
    ny_change = partial(change, payer=NY_PAYER, policy="ny", determination=determination, principal="200.00")
    conn = await asyncpg.connect(stack_settings.database_url)
    try:
        the_engine = engine(stack_settings)
        async with conn.transaction():
            await the_engine.on_change(
                conn, ny_change(tenant, "ReceivableOpened", effective=determination, paid_on=paid_on)
            )
        recouped = date(
            2026, 2, 2
        )  # after the notice's 30 days, but 24 months after payment ran out 2026-01-10
        async with conn.transaction():
            outputs = await the_engine.on_change(
                conn,
                ny_change(
                    tenant,
                    "ReceivableSettled",
                    effective=recouped,
                    recovered="200.00",
                    status="settled",
                    amount="200.00",
                    paid_on=paid_on,
                ),
            )
        alerts = [parse_envelope(o.value, AlertRaised).payload for o in outputs if o.topic == ALERTS.name]
        assert [(a.kind, a.observed_on) for a in alerts] == [("recoupment_rule_violation", recouped)]
        assert "recovery begun after 2026-01-10" in alerts[0].detail
        milestones = await conn.fetch(
            "SELECT label, day FROM interest.timelines WHERE tenant_id = $1", tenant
        )
        assert ("recovery_lookback_limit", date(2026, 1, 10)) in [(m["label"], m["day"]) for m in milestones]
    finally:
        await conn.close()


async def test_an_overturned_appeal_written_off_stops_medicare_interest(
    stack_settings: Settings, tenant: str
) -> None:
    det = date(2026, 1, 1)
    medicare_change = partial(
        change, payer="01312", policy="medicare", determination=det, principal="1000.00"
    )
    conn = await asyncpg.connect(stack_settings.database_url)
    try:
        the_engine = engine(stack_settings)
        async with conn.transaction():
            await the_engine.on_change(conn, medicare_change(tenant, "ReceivableOpened", effective=det))
        await the_engine.tick(conn, det + timedelta(days=40), [tenant])  # period 1 charged on day 31
        async with conn.transaction():
            await the_engine.on_change(
                conn,
                medicare_change(
                    tenant,
                    "ReceivableWrittenOff",
                    effective=det + timedelta(days=45),
                    status="written_off",
                    amount="1009.58",
                    written_off="1009.58",
                ),
            )
        assert await the_engine.tick(conn, det + timedelta(days=400), [tenant]) == 0
        rows = await conn.fetch(
            "SELECT period_number, amount FROM interest.accruals WHERE tenant_id = $1 ORDER BY period_number",
            tenant,
        )
        assert [(r["period_number"], r["amount"]) for r in rows] == [(1, D("9.58"))]
    finally:
        await conn.close()
