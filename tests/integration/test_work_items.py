"""Work-queue steps staff take (``remit.work-items.v1``) applied by matching on the real ledger: once with the
in-process pipeline (every stage's handler, PostgreSQL, Kafka routing simulated), once through the real broker
with the five services as processes and the command line's ``operator`` principal publishing."""

import asyncio
import json
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from harness import remit, run_files
from matching.ledger_story import LedgerStory
from matching.work_item_story import act

from cli import ledger_check, letters, matching_views, work_items
from cli.local_infra import Stack
from cli.runner import Pipeline
from contracts.topics import WORK_ITEMS
from services.matching.store import PgMatchingRepository
from shared import db
from shared.messages import Outgoing
from shared.settings import REPO_ROOT

pytestmark = pytest.mark.integration
D = Decimal


def cli(stack: Stack, *args: str) -> str:
    """``offsetstream`` as staff run it, logged in to Kafka as ``operator``."""
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=REPO_ROOT,
        env=stack.env(),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout


def files() -> tuple[bytes, bytes]:
    """A deferral opens FCN700 (100.00); a later remittance withholds 60.00 and 25.00 under references that
    name nothing, so both wait in the work queue."""
    return (
        remit("EFT700001", "20260803", ("WO", "FCN700", "-100.00")),
        remit("EFT700002", "20260824", ("WO", "ZZUNKNOWN1", "60.00"), ("WO", "ZZUNKNOWN2", "25.00")),
    )


async def queue(conn: asyncpg.Connection, tenant: str) -> list[dict[str, Any]]:
    async with db.staff_scope(conn, tenant):
        items = await matching_views.work_queue(conn, tenant)
        await work_items.annotate(conn, tenant, items)
    return items


def steps(tenant: str, items: list[dict[str, Any]], user: str) -> list[tuple[str, bytes]]:
    """Link the 60.00 to FCN700, dismiss the 25.00 as not ours with a note, assign the first."""
    by_amount = {i["to_identify"]: i for i in items}
    sixty, twenty_five = by_amount[D("60.00")], by_amount[D("25.00")]

    def step(item: dict[str, Any], kind: Any, **kw: Any) -> tuple[str, bytes]:
        return work_items.action_event(
            kind,
            tenant_id=tenant,
            item_id=item["item"],
            payer_id=item["payer_id"],
            payee_id=item["payee_id"],
            entered_by=user,
            request_id="req-1",
            **kw,
        )

    return [
        step(sixty, "assign", assignee="biller-2"),
        step(sixty, "link", receivable_reference="FCN700"),
        step(twenty_five, "note", note="payer says this belongs to another group's NPI"),
        step(twenty_five, "not_ours"),
    ]


async def assert_applied(conn: asyncpg.Connection, tenant: str) -> None:
    row = await conn.fetchrow(
        "SELECT principal_recovered, status FROM matching.receivables WHERE tenant_id = $1 AND reference = $2",
        tenant,
        "FCN700",
    )
    assert row is not None and (row["principal_recovered"], row["status"]) == (
        D("60.00"),
        "partially_recovered",
    )
    pairs = await conn.fetch(
        """SELECT reference, bucket, unmatched_amount, dismissed_amount FROM matching.adjustments
           WHERE tenant_id = $1 AND amount > 0 ORDER BY reference""",
        tenant,
    )
    assert [tuple(p.values()) for p in pairs] == [
        ("ZZUNKNOWN1", "allocated", D("0.00"), D("0.00")),
        ("ZZUNKNOWN2", "staff_dismissed", D("0.00"), D("25.00")),
    ]
    assert await queue(conn, tenant) == []
    actions = await conn.fetch(
        "SELECT kind, outcome FROM matching.work_item_actions WHERE tenant_id = $1 ORDER BY kind", tenant
    )
    assert [tuple(a.values()) for a in actions] == [
        ("assign", "applied"),
        ("link", "applied"),
        ("not_ours", "applied"),
        ("note", "applied"),
    ]
    assert await ledger_check.check(conn, tenant) == []


async def test_link_not_ours_assign_and_note_on_the_real_ledger(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    pipeline = await run_files(ledger, tenant, *files())
    items = await queue(ledger, tenant)
    assert sorted(i["to_identify"] for i in items) == [D("25.00"), D("60.00")]
    assert {(i["assignee"], i["notes"]) for i in items} == {(None, 0)}
    messages = steps(tenant, items, "biller-1")
    for _ in range(2):  # the second time: a redelivery, which changes nothing
        for key, value in messages:
            pipeline.send(Outgoing(WORK_ITEMS.name, key, value))
        await pipeline.run()
        await assert_applied(ledger, tenant)
    assert pipeline.dead_letters == []
    # Notification closes both items' "unmatched recovery" (the link as a re-match, the dismissal as such).
    resolved = await ledger.fetch(
        """SELECT summary FROM notification.notifications WHERE tenant_id = $1
           AND kind = 'unmatched_recovery_resolved' ORDER BY summary""",
        tenant,
    )
    assert len(resolved) == 2
    assert "dismissed by staff as not ours" in resolved[0]["summary"] + resolved[1]["summary"]
    async with db.staff_scope(ledger, tenant):
        shown = await work_items.item(ledger, tenant, items[0]["item"])
        history = await work_items.history(ledger, tenant, items[0]["item"])
    assert shown is not None and len(history) >= 1


async def test_work_item_steps_travel_through_kafka_to_matching(stack: Stack, tmp_path: Path) -> None:
    tenant = f"tenant-{uuid.uuid4().hex[:12]}"
    for number, content in enumerate(files()):
        (tmp_path / f"wq{number}.835").write_bytes(content)
    async with Pipeline(stack) as pipeline:
        await pipeline.ingest([tmp_path], tenant)
        await pipeline.settle(timeout=150)
        conn = await asyncpg.connect(stack.postgres.dsn)
        try:
            items = await queue(conn, tenant)
            assert len(items) == 2
            # The command line (principal operator): `queue list` shows the ids, `queue assign` sends a step.
            listed = json.loads(cli(stack, "queue", "list", "--json", "--tenant", tenant))
            assert sorted(r["item"] for r in listed) == sorted(i["item"] for i in items)
            sixty = next(i["item"] for i in items if i["to_identify"] == D("60.00"))
            cli(stack, "queue", "assign", sixty, "biller-2", "--tenant", tenant, "--entered-by", "biller-1")
            # The other steps as the console builds them, published with the same principal.
            sent = await letters.publish_events(
                pipeline.settings, WORK_ITEMS, steps(tenant, items, "biller-1")[1:]
            )
            assert sent == 3
            for _ in range(60):
                if not await queue(conn, tenant):
                    break
                await asyncio.sleep(1)
            await pipeline.settle(timeout=90)
            await assert_applied(conn, tenant)
            shown = json.loads(cli(stack, "queue", "show", sixty, "--json", "--tenant", tenant))
            assert shown["item"]["assignee"] == "biller-2"
            assert [h["kind"] for h in shown["history"]] == ["assign", "link"]
        finally:
            await conn.close()


async def work_item_story(story: LedgerStory) -> None:
    """Two parked recoveries, a receivable; assignments out of order, a note, a partial link, a refused link,
    a dismissal, and every step delivered twice."""
    first = story.pair_event("WO", "ZZPARKED1", "80.00", "2026-08-24", trace="P1")
    second = story.pair_event("WO", "ZZPARKED2", "30.00", "2026-08-25", trace="P2")
    await story.deliver(first)
    await story.deliver(second)
    await story.deferral("FCN-W", "50.00", "2026-08-03", trace="P0")
    for _ in range(2):
        await act(story, "assign", first.event_id, assignee="b2", at="2026-09-01T12:00:00")
        await act(story, "assign", first.event_id, assignee="b1", at="2026-09-01T10:00:00", request="r0")
        await act(story, "note", first.event_id, note="called the payer")
        await act(story, "link", first.event_id, reference="FCN-W")
        await act(story, "link", second.event_id, reference="FCN-W")  # settled by the first: refused
        await act(story, "not_ours", second.event_id)


async def test_both_repositories_apply_work_item_steps_alike(ledger: asyncpg.Connection, tenant: str) -> None:
    in_memory = LedgerStory(tenant=tenant)
    await work_item_story(in_memory)
    in_postgres = LedgerStory(tenant=tenant, backend=PgMatchingRepository(ledger))
    async with ledger.transaction():
        await work_item_story(in_postgres)
        assignees = await ledger.fetch(
            "SELECT adjustment_id, assignee FROM matching.work_items WHERE tenant_id = $1 AND assignee IS NOT NULL",
            tenant,
        )
        actions = await ledger.fetch(
            """SELECT action_id, kind, outcome, detail, note FROM matching.work_item_actions
               WHERE tenant_id = $1""",
            tenant,
        )
        pairs = await ledger.fetch(
            """SELECT adjustment_id, bucket, unmatched_amount, dismissed_amount FROM matching.adjustments
               WHERE tenant_id = $1 AND amount > 0""",
            tenant,
        )
    assert in_postgres.facts() == in_memory.facts()
    memory = in_memory.repo
    assert {(r["adjustment_id"], r["assignee"]) for r in assignees} == {
        (item, row.assignee) for (_, item), row in memory.work_items.items() if row.assignee
    }
    assert {(r["action_id"], r["kind"], r["outcome"], r["detail"], r["note"]) for r in actions} == {
        (action, a.kind, a.outcome, a.detail, a.note) for (_, action), a in memory.work_item_actions.items()
    }
    dismissed = {item: row.dismissed_amount for (_, item), row in memory.work_items.items()}
    assert {tuple(r.values()) for r in pairs} == {
        (p.adjustment_id, p.bucket, p.unmatched_amount, dismissed.get(p.adjustment_id, D("0.00")))
        for (_, _), p in memory.pairs.items()
        if p.amount > 0
    }
    assert len(actions) == 6
