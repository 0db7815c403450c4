"""Interest applies a batch of receivable changes set-based: a constant number of statements whatever the batch's
size, and the same ledger and the same announcements as one change at a time (a change sees the batch's changes
before it, not those after; a receivable changed twice in a batch is written once)."""

import json
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from harness import counted_batch, receivable_change

from contracts.envelope import Envelope
from contracts.events import ReceivableChanged
from contracts.topics import RECEIVABLES
from policies.config import PolicyConfig, PolicyConfigError, PolicyResolver
from policies.payers import PayerPolicy
from services.interest import app
from services.interest.store import InterestStore
from shared import db, plugins
from shared.batches import apply_batch
from shared.messages import Incoming, Result, envelope_event_id
from shared.settings import Settings

pytestmark = pytest.mark.integration

D = Decimal
DET = date(2026, 1, 1)
MEDICARE = "01312"


def change(
    tenant: str,
    reference: str,
    kind: str,
    effective: date,
    recovered: str,
    status: str = "open",
    payer: str = MEDICARE,
) -> Envelope[ReceivableChanged]:
    """What matching announces about a receivable of 1000.00 determined on DET (Medicare's by default)."""
    return receivable_change(
        tenant,
        kind,
        reference=reference,
        effective=effective,
        determination=DET,
        recovered=recovered,
        status=status,
        payer=payer,
        account=f"acct-{reference}",
        source="batch test",
    )


def story(tenant: str, count: int) -> list[Incoming]:
    """``count`` changes: receivables opened on day 100 (three periods due at once), every third one then
    partly recovered in the same batch (dated day 45: a back-dated recovery correcting what was just posted),
    every fourth one recouped during an appeal (an alert), every fifth one paused by an appeal."""
    envs: list[Envelope[ReceivableChanged]] = []
    n = 0
    while len(envs) < count:
        reference = f"FCN-{n:05d}"
        envs.append(change(tenant, reference, "ReceivableOpened", DET + timedelta(days=100), "0.00"))
        if n % 3 == 2:
            envs.append(change(tenant, reference, "ReceivableReduced", DET + timedelta(days=45), "400.00"))
        if n % 4 == 1:  # recouped during an appeal: an alert
            envs.append(
                change(tenant, reference, "ReceivableUpdated", DET + timedelta(days=50), "0.00", "paused")
            )
            envs.append(
                change(tenant, reference, "ReceivableReduced", DET + timedelta(days=60), "300.00", "paused")
            )
        if n % 5 == 4:
            envs.append(
                change(tenant, reference, "ReceivableUpdated", DET + timedelta(days=101), "0.00", "paused")
            )
        n += 1
    return [
        Incoming(RECEIVABLES.name, 0, offset, RECEIVABLES.key_of(env).encode(), env.to_bytes())
        for offset, env in enumerate(envs[:count])
    ]


async def accrue(
    ledger: asyncpg.Connection, batch: list[Incoming], statements: list[str] | None = None
) -> list[Result]:
    """One interest batch, the statements it sends collected into ``statements``."""
    return await counted_batch(ledger, "interest", batch, statements)


async def test_a_batch_of_changes_costs_the_same_statements_whatever_its_size(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    counted: dict[int, list[str]] = {}
    for count in (5, 10, 200):  # the first batch warms the connection's type cache up
        batch = story(f"{tenant}-{count}", count)
        counted[count] = statements = list[str]()
        results = await accrue(ledger, batch, statements)
        assert [r.outcome for r in results] == ["applied"] * count
        assert all(r.outputs for r in results[:1])
        print(f"{count} changes: {len(statements)} statements: {statements}")

    # BEGIN, claim the ids, SAVEPOINT, five reads (receivables locked, history, postings, plans, alerts), six
    # writes (receivables, history, postings, alerts, timelines out and in), RELEASE, outputs stored, COMMIT:
    # nothing per change (before: about 12 a change, 2 463 for these 200 and 129 for 10)
    assert len(counted[10]) == len(counted[200]) == 17, counted[200]
    assert sum("interest.receivables" in s and "UPDATE" in s for s in counted[200]) <= 1


async def test_a_batch_leaves_the_ledger_one_change_at_a_time_would(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    """The same changes as one batch and one by one (each in a tenant of its own) post the same interest,
    keep the same receivables, timelines and alerts, and publish the same events."""
    outcomes: dict[str, list[Any]] = {}
    for mode in ("batch", "one by one"):
        who = f"{tenant}-{mode.replace(' ', '')}"
        changes = story(who, 40)
        if mode == "batch":
            results = await accrue(ledger, changes)
        else:
            results = [r for c in changes for r in await accrue(ledger, [c])]
        assert [r.outcome for r in results] == ["applied"] * len(changes)
        outcomes[mode] = [[announced(o.value) for o in r.outputs] for r in results] + [
            await ledger_rows(ledger, who)
        ]
    assert outcomes["batch"] == outcomes["one by one"]
    assert any(len(out) > 1 for out in outcomes["batch"][:-1])  # periods were posted
    [_, postings, *_] = outcomes["batch"][-1]
    assert any(version == "2" for _, _, version, _ in postings)  # and corrected within the batch
    assert outcomes["batch"][-1][-1]  # alerts were raised


def announced(value: bytes) -> tuple[Any, ...]:
    """What an interest or alert event says, without the ids derived from the tenant."""
    body = json.loads(value)
    payload = {k: v for k, v in body["payload"].items() if k not in ("receivable_id", "alert_id")}
    return body["event_type"], json.dumps(payload, sort_keys=True)


async def ledger_rows(ledger: asyncpg.Connection, tenant: str) -> list[list[tuple[str, ...]]]:
    queries = [
        """SELECT reference, principal, principal_recovered, status, accrued_through, next_due, policy_applied,
                  policy_reason, paid_on, duplicate FROM interest.receivables WHERE tenant_id = $1""",
        """SELECT r.reference, a.period_number, a.version, a.amount FROM interest.accruals a
           JOIN interest.receivables r USING (tenant_id, receivable_id) WHERE tenant_id = $1""",
        """SELECT r.reference, t.ordinal, t.label, t.day FROM interest.timelines t
           JOIN interest.receivables r USING (tenant_id, receivable_id) WHERE tenant_id = $1""",
        """SELECT r.reference, h.event_type, h.outstanding,
                  rank() OVER (PARTITION BY h.receivable_id ORDER BY h.seq) FROM interest.principal_history h
           JOIN interest.receivables r USING (tenant_id, receivable_id) WHERE tenant_id = $1""",
        """SELECT r.reference, a.kind, a.observed_on, a.amount FROM interest.alerts a
           JOIN interest.receivables r USING (tenant_id, receivable_id) WHERE tenant_id = $1""",
    ]
    return [sorted(tuple(map(str, r.values())) for r in await ledger.fetch(q, tenant)) for q in queries]


async def test_a_change_whose_payer_policy_is_not_installed_costs_only_itself(
    ledger: asyncpg.Connection, stack_settings: Settings, tenant: str
) -> None:
    """A payer whose policy cannot be resolved (its plugin gone since the configuration was read): that payer's
    change is dead-lettered as ``unknown_policy`` and every other change of the batch is applied, in order."""

    class Uninstalled(PolicyResolver[PayerPolicy]):
        def resolve(self, tenant: str, payer: str) -> PayerPolicy:
            if payer == "77777":
                raise PolicyConfigError("payer policy 'gone' is not installed")
            return super().resolve(tenant, payer)

    resolver = Uninstalled(plugins.load_plugins(plugins.PAYER_POLICIES), stack_settings, PolicyConfig())
    [(_, handler)] = app.build(stack_settings, resolver, InterestStore()).subscriptions
    envs = [
        change(tenant, "FCN-1", "ReceivableOpened", DET + timedelta(days=100), "0.00"),
        change(tenant, "FCN-2", "ReceivableOpened", DET + timedelta(days=100), "0.00", payer="77777"),
        change(tenant, "FCN-3", "ReceivableOpened", DET + timedelta(days=100), "0.00"),
    ]
    batch = [
        Incoming(RECEIVABLES.name, 0, n, RECEIVABLES.key_of(e).encode(), e.to_bytes())
        for n, e in enumerate(envs)
    ]
    await ledger.execute(f'SET ROLE "{db.service_role("interest")}"')
    try:
        results = await apply_batch(ledger, "interest", handler, batch, envelope_event_id)
    finally:
        await ledger.execute("RESET ROLE")
    assert [r.outcome for r in results] == ["applied", "dead_lettered", "applied"]
    assert dict(results[1].outputs[0].headers)["reason"] == b"unknown_policy"
    assert [len(r.outputs) for r in results] == [3, 1, 3]  # three periods due on day 100
    kept = await ledger.fetch("SELECT reference FROM interest.receivables WHERE tenant_id = $1", tenant)
    assert sorted(r["reference"] for r in kept) == ["FCN-1", "FCN-3"]


async def test_a_timeline_is_rewritten_only_where_it_changed(ledger: asyncpg.Connection) -> None:
    """A receivable's milestones end exactly as last computed (shorter, longer, a day moved, emptied), and a
    milestone that did not change is not written again (its row version stays): most changes move no
    deadline, and rewriting every milestone on every change was most of interest's rows written."""
    from uuid import uuid4

    from services.interest.store import Writes

    store = InterestStore()
    key = ("t-timeline-rewrite", uuid4())

    async def write(milestones: list[tuple[str, date]]) -> list[tuple[str, date, str]]:
        async with ledger.transaction():
            await store.write(ledger, Writes((), (), (), (), [(key, milestones)], ()))
        rows = await ledger.fetch(
            "SELECT ordinal, label, day, xmin::text AS version FROM interest.timelines"
            " WHERE tenant_id = $1 AND receivable_id = $2 ORDER BY ordinal",
            *key,
        )
        assert [r["ordinal"] for r in rows] == list(range(1, len(rows) + 1))
        return [(r["label"], r["day"], r["version"]) for r in rows]

    first = [
        ("demand", DET),
        ("interest", DET + timedelta(days=30)),
        ("recoupment", DET + timedelta(days=41)),
    ]
    before = await write(first)
    assert [(label, day) for label, day, _ in before] == first
    again = await write(first)
    assert again == before, "an unchanged timeline writes no row"
    moved = [first[0], ("interest", DET + timedelta(days=31))]
    after = await write(moved)
    assert [(label, day) for label, day, _ in after] == moved
    assert after[0][2] == before[0][2] and after[1][2] != before[1][2]
    longer = [*moved, ("referral", DET + timedelta(days=120)), ("closed", DET + timedelta(days=200))]
    assert [(label, day) for label, day, _ in await write(longer)] == longer
    assert await write([]) == []
