"""An extended repayment schedule through the interest service on the real broker: granted by staff, two
installments missed, the rest of the debt re-rated from the default date.

Story (business date pinned to 2023-10-20; Medicare rate table: 10.00 % from 2017-04-18, 11.50 % from
2023-07-17). FCN-ERS, 1000.00 determined 2023-05-15, so its rate is locked at 10.00 %. Staff record, with the
same event `offsetstream action ers-granted` publishes, an ERS granted 2023-06-01: ten installments of 100.00
on the 1st of each month from July. The provider mails one check of 100.00 on 2023-06-28 (July's
installment); August and September go unpaid, so the schedule defaults on 2023-09-02, when 11.50 % is in
force — higher, so periods charged from then on are re-rated.

Hand computation (period n is charged on day 30n+1 on the principal owed at the end of day 30n;
principal × rate × 30/360, half-up to the cent):
- period 1, due 2023-06-15: 1000.00 × 0.10 / 12 = 8.333 → 8.33
- the check of 06-28 pays that interest first: 8.33 interest, 91.67 principal → 908.33 owed
- period 2, due 07-15: 908.33 × 0.10 / 12 = 7.569 → 7.57
- period 3, due 08-14: 7.57
- period 4, due 09-13 (after the default): 908.33 × 0.115 / 12 = 8.705 → 8.70
- period 5, due 10-13: 8.70
Total 40.87 (at the locked 10.00 % periods 4 and 5 would be 7.57 each, 38.61 in all: the default costs 2.26).
"""

import asyncio
import json
from collections import defaultdict
from datetime import date
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from harness import receivable_change
from integration.test_interest_service import read_all, wait_for

from cli import interest_views, letters
from cli.local_infra import Stack, free_port
from contracts.events import DatedRecovery, RepaymentSchedule
from contracts.topics import ALERTS, INTEREST, RECEIVABLES, STAFF_ACTIONS
from shared.ids import account_key
from shared.kafka_security import client_kwargs
from shared.settings import SERVICES, Settings

pytestmark = pytest.mark.integration

D = Decimal
PAYER, PAYEE, REF = "01312", "1234567893", "FCN-ERS"
DET = date(2023, 5, 15)
TODAY = date(2023, 10, 20)
EXPECTED = {  # period → (net amount, rate of its latest posting)
    1: (D("8.33"), D("0.10000")),
    2: (D("7.57"), D("0.10000")),
    3: (D("7.57"), D("0.10000")),
    4: (D("8.70"), D("0.11500")),
    5: (D("8.70"), D("0.11500")),
}


def change_message(
    tenant: str,
    kind: str,
    effective: date,
    amount: str | None = None,
    recovered: str = "0.00",
    **figures: Any,
) -> tuple[bytes, bytes]:
    """A ``ReceivableChanged`` as matching would publish it (opened, or the installment check received)."""
    env = receivable_change(
        tenant,
        kind,
        reference=REF,
        effective=effective,
        determination=DET,
        payer=PAYER,
        account=account_key(tenant, PAYER, PAYEE),
        source="ers test",
        amount=amount,
        recovered=recovered,
        **figures,
    )
    return env.account_key.encode(), env.to_bytes()


def net_by_period(found: list[dict[str, Any]]) -> dict[int, tuple[Decimal, Decimal]]:
    """Per period: the sum of its postings and the rate of its latest version."""
    total: dict[int, Decimal] = defaultdict(lambda: D("0.00"))
    latest: dict[int, tuple[int, Decimal]] = {}
    for env in found:
        p = env["payload"]
        if p["reference"] != REF:
            continue
        n, version = int(p["period_number"]), int(p.get("version", 1))
        total[n] += D(p["amount"])
        if version >= latest.get(n, (0, D(0)))[0]:
            latest[n] = (version, D(p["annual_rate"]))
    return {n: (amount, latest[n][1]) for n, amount in total.items()}


async def test_an_ers_in_default_is_re_rated_from_the_default_date(
    stack: Stack, tenant: str, ledger: asyncpg.Connection
) -> None:
    kafka = client_kwargs(stack.settings())
    env = {
        "OFFSETSTREAM_TODAY": TODAY.isoformat(),
        "OFFSETSTREAM_INTEREST_TICK_SECONDS": "1",
        "OFFSETSTREAM_WEB_PORTS": json.dumps({s: free_port() for s in SERVICES}),
    }
    stack.start_service("interest", worker_id=8, extra_env=env)
    producer = AIOKafkaProducer(**kafka, acks="all")
    await producer.start()
    try:
        # Step: the receivable opens (matching's first ReceivableChanged).
        key, value = change_message(tenant, "ReceivableOpened", DET)
        await producer.send_and_wait(RECEIVABLES.name, key=key, value=value)
        # Step: staff record the ERS exactly as `offsetstream action ers-granted` does.
        key_s, grant = letters.action_event(
            "repayment_schedule_granted",
            tenant_id=tenant,
            payer_id=PAYER,
            payee_id=PAYEE,
            reference=REF,
            effective=date(2023, 6, 1),
            entered_by="staff-7",
            schedule=RepaymentSchedule(
                installment_amount=D("100.00"), installments=10, first_due_date=date(2023, 7, 1)
            ),
        )
        await producer.send_and_wait(STAFF_ACTIONS.name, key=key_s.encode(), value=grant)
        # Step: July's installment arrives by check on 06-28; matching splits it interest first.
        key, value = change_message(
            tenant,
            "ReceivableReduced",
            date(2023, 6, 28),
            status="partially_recovered",
            amount="100.00",
            recovered="91.67",
            interest_accrued=D("8.33"),
            interest_recovered=D("8.33"),
            recovery_kind="refund",
            recovery_schedule=(
                DatedRecovery(
                    effective_date=date(2023, 6, 28),
                    kind="refund",
                    to_interest=D("8.33"),
                    to_principal=D("91.67"),
                ),
            ),
        )
        await producer.send_and_wait(RECEIVABLES.name, key=key, value=value)
        # Step: August and September go unpaid; the tick (today 2023-10-20) accrues and re-rates.
        found = await wait_for(
            kafka, INTEREST.name, tenant, lambda f: net_by_period(f) == EXPECTED, within=120.0
        )
    finally:
        await producer.stop()
        await asyncio.to_thread(stack.stop_service, "interest-8")

    assert sum(amount for amount, _ in net_by_period(found).values()) == D("40.87")
    assert len({e["event_id"] for e in found}) == len(found)
    # The ledger holds the same figures as the topic.
    rows = await ledger.fetch(
        """SELECT period_number, sum(amount) AS net FROM interest.accruals
           WHERE tenant_id = $1 GROUP BY period_number ORDER BY period_number""",
        tenant,
    )
    assert {r["period_number"]: r["net"] for r in rows} == {n: a for n, (a, _) in EXPECTED.items()}
    # The installment was paid by check, so nothing was recouped during the schedule: no alert.
    assert await ledger.fetchval("SELECT count(*) FROM interest.alerts WHERE tenant_id = $1", tenant) == 0
    assert await read_all(kafka, ALERTS.name, tenant) == []

    # `offsetstream receivable FCN-ERS` shows the schedule, its standing and the timeline it changed.
    settings = Settings(database_url=stack.postgres.dsn, today=TODAY)
    view = await interest_views.receivable_timeline(settings, tenant, REF)
    [r] = view["receivables"]
    ers = r["ers"]
    assert (ers["granted_on"], ers["standing"], ers["default_since"]) == (
        date(2023, 6, 1),
        "in_default",
        date(2023, 9, 2),
    )
    assert [i["status"] for i in ers["installments"]] == ["paid", "missed", "missed", "missed"] + ["open"] * 6
    milestones = {t["label"]: t["date"] for t in r["timeline"]}
    assert milestones["ers_granted"] == date(2023, 6, 1)
    assert milestones["ers_defaulted"] == milestones["recoupment_start"] == date(2023, 9, 2)
    text = interest_views.render_timeline(view)
    assert "Extended repayment schedule granted 2023-06-01: 10 installments, 1 paid, 3 missed" in text
    assert "in default since 2023-09-02" in text
