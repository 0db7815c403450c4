"""Payer policy by payer, through every stage's real handler and the real PostgreSQL ledger.

Two deferred overpayments with the same story, one from a Medicare contractor (01312, in the Medicare
contractor table) and one from a commercial plan that no configuration names (60054): the Medicare one gets
DOMAIN.md §3 (rebuttal to day 15, interest from day 31, recoupment from day 41, a recoupment on day 35 flagged),
the commercial one the commercial default (no interest, no waiting period, nothing flagged). Each receivable
says which policy applied and why, as ``offsetstream receivable FCN`` prints it.
"""

import argparse
import json
import zlib
from datetime import date, timedelta
from decimal import Decimal

import asyncpg
import pytest
from harness import InProcessPipeline, interest_engine, remit
from harness import run_files as run
from x12_builder import Claim, Plb, PlbPair, Service, Transaction, build_835

from cli import interest_views, ledger_check, staff
from contracts.envelope import parse_envelope
from contracts.events import AlertRaised, InterestAccrued, NotificationEmitted
from contracts.topics import ALERTS, INTEREST, NOTIFICATIONS
from shared.settings import Settings

pytestmark = pytest.mark.integration
D = Decimal
MEDICARE, COMMERCIAL = "01312", "60054"
DETERMINED = date(2026, 6, 1)


def commercial_remit(trace: str, paid_on: str, *pairs: tuple[str, str, str]) -> bytes:
    """The harness's remittance, from a commercial plan instead of Medicare."""
    txn = Transaction(
        claims=[Claim(f"PCN-{trace}", [Service(D("500.00"))], icn=f"8{trace[-6:]}")],
        plbs=[Plb([PlbPair(code, ref, D(amount)) for code, ref, amount in pairs])],
        trace=trace,
        payment_date=paid_on,
        payer_name="ACME HEALTH PLAN",
        payer_id=COMMERCIAL,
    )
    return build_835(txn, isa13=f"{zlib.crc32(trace.encode()) % 999_999_999:09d}", created=paid_on).encode()


def published(pipeline: InProcessPipeline, topic: str) -> list[bytes]:
    return [o.value for o in pipeline.published if o.topic == topic]


async def test_a_commercial_deferral_gets_commercial_rules_and_a_medicare_one_medicare_rules(
    ledger: asyncpg.Connection,
    tenant: str,
    stack_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Day 0: both payers defer the recovery of 400.00 (negative WO); day 35: both recoup 100.00.
    pipeline = await run(
        ledger,
        tenant,
        remit("EFTM00001", "20260601", ("WO", "FCN-MCR-1", "-400.00")),
        commercial_remit("EFTC00001", "20260601", ("WO", "CPL-1", "-400.00")),
        remit("EFTM00002", "20260706", ("WO", "FCN-MCR-1", "100.00")),
        commercial_remit("EFTC00002", "20260706", ("WO", "CPL-1", "100.00")),
    )
    rows = {
        r["reference"]: r
        for r in await ledger.fetch("SELECT * FROM interest.receivables WHERE tenant_id = $1", tenant)
    }
    assert set(rows) == {"FCN-MCR-1", "CPL-1"}
    medicare, commercial = rows["FCN-MCR-1"], rows["CPL-1"]
    assert medicare["determination_date"] == commercial["determination_date"] == DETERMINED
    # Which policy applied and why, as interest recorded it.
    assert (medicare["payer_id"], medicare["policy_applied"], medicare["policy_reason"]) == (
        MEDICARE,
        "medicare",
        "table",
    )
    assert "01312" in medicare["policy_source"] and "JE Part B" in medicare["policy_source"]
    assert (commercial["payer_id"], commercial["policy_applied"], commercial["policy_reason"]) == (
        COMMERCIAL,
        "commercial",
        "default",
    )
    assert "no configuration" in commercial["policy_source"]

    # Timelines: Medicare's day-15/31/41 dates; the commercial plan has none of them.
    async def timeline(rid: object) -> dict[str, date]:
        found = await ledger.fetch(
            "SELECT label, day FROM interest.timelines WHERE tenant_id = $1 AND receivable_id = $2",
            tenant,
            rid,
        )
        return {r["label"]: r["day"] for r in found}

    medicare_dates = await timeline(medicare["receivable_id"])
    assert medicare_dates["rebuttal_deadline"] == DETERMINED + timedelta(days=15)
    assert medicare_dates["interest_start"] == DETERMINED + timedelta(days=31)
    assert medicare_dates["recoupment_start"] == DETERMINED + timedelta(days=41)
    assert await timeline(commercial["receivable_id"]) == {"determination": DETERMINED}

    # The day-35 recoupment breaks Medicare's day-41 rule only.
    flagged = {
        (a.reference, a.kind)
        for a in (parse_envelope(v, AlertRaised).payload for v in published(pipeline, ALERTS.name))
    }
    assert ("FCN-MCR-1", "recoupment_rule_violation") in flagged
    assert not any(reference == "CPL-1" for reference, _ in flagged)

    # Staff are told the Medicare dates for the Medicare receivable only.
    opened = {
        n.facts["reference"]: n.facts
        for n in (
            parse_envelope(v, NotificationEmitted).payload for v in published(pipeline, NOTIFICATIONS.name)
        )
        if n.kind == "receivable_opened"
    }
    assert opened["FCN-MCR-1"]["policy"] == "medicare"
    assert opened["FCN-MCR-1"]["recoupment_start"] == (DETERMINED + timedelta(days=41)).isoformat()
    assert opened["CPL-1"]["policy"] == "commercial"
    assert not {"interest_start", "recoupment_start", "rebuttal_deadline"} & set(opened["CPL-1"])

    # Months later: Medicare interest has come due on the 300.00 still owed; the commercial plan charges none.
    later = DETERMINED + timedelta(days=95)
    accrued: dict[str, Decimal] = {}
    for reference, row in rows.items():
        async with ledger.transaction():
            emitted = await interest_engine().recompute(
                ledger, tenant, row["receivable_id"], later, "test: the daily tick"
            )
        accrued[reference] = sum(
            (
                parse_envelope(e.message.value, InterestAccrued).payload.amount
                for e in emitted
                if e.message.topic == INTEREST.name
            ),
            D("0"),
        )
    assert accrued["FCN-MCR-1"] > 0
    assert accrued["CPL-1"] == 0

    # `offsetstream receivable FCN` says which policy applied and why.
    for reference, policy, reason in (("FCN-MCR-1", "medicare", "table"), ("CPL-1", "commercial", "default")):
        view = await interest_views.receivable_timeline(stack_settings, tenant, reference)
        [entry] = view["receivables"]
        assert (entry["policy"], entry["policy_reason"], entry["policy_recorded"]) == (policy, reason, True)
        assert f"Policy {policy} ({reason}: " in interest_views.render_timeline(view)
    # The command itself, for people and with --json.
    monkeypatch.setattr(staff, "get_settings", lambda: stack_settings)
    for as_json in (False, True):
        args = argparse.Namespace(tenant=tenant, reference="CPL-1", json=as_json)
        assert await staff._receivable(args) == 0
        out = capsys.readouterr().out
        if as_json:
            shown = json.loads(out)
            assert (shown["policy"]["policy"], shown["policy"]["policy_reason"]) == ("commercial", "default")
            assert shown["interest"]["receivables"][0]["policy_reason"] == "default"
        else:
            assert out.splitlines()[1] == f"Policy commercial (default: {commercial['policy_source']})"
    assert await ledger_check.check(ledger, tenant) == []
