"""Steps on work-queue items — ``offsetstream queue list|link|not-ours|assign|note|show`` — and the reads of what
staff did with them (assignee, notes, history), shared by the command line and the console.

Each step is one ``WorkItemActionRecorded`` on ``remit.work-items.v1``, keyed by the provider–payer account;
matching, which owns the work queue, applies it (``services/matching/work_items.py``). Its id is deterministic
from the tenant, the item, the kind, what it names, who entered it and a request id: the console's form carries
one request id (a double submit is one action), a command line run is one request unless ``--request-id`` is
given again. A note's text may hold PHI: it is published and shown, never logged or printed in errors.

    offsetstream queue list                   the work queue with item ids, assignee and note count
    offsetstream queue link ITEM FCN          apply the item's waiting money to that receivable (same account)
    offsetstream queue not-ours ITEM          dismiss it: staff say this money is not ours
    offsetstream queue assign ITEM [USER]     give it to a staff user (no USER: unassign)
    offsetstream queue note ITEM TEXT         add a note to its history
    offsetstream queue show ITEM              the item, its assignee and its history
"""

# ruff: noqa: T201 - a command line prints

import argparse
import asyncio
import json
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg

from cli import options
from cli.report import table
from contracts.events import (
    NOTE_MAX_LENGTH,
    WORK_ITEM_EVENT_TYPES,
    WorkItemActionKind,
    WorkItemActionRecorded,
)
from contracts.topics import WORK_ITEMS
from shared import envelopes
from shared.ids import account_key, stable_id
from shared.settings import Settings, get_settings

KINDS: dict[str, WorkItemActionKind] = {
    "link": "link",
    "not-ours": "not_ours",
    "assign": "assign",
    "note": "note",
}


def action_event(
    kind: WorkItemActionKind,
    *,
    tenant_id: str,
    item_id: str | UUID,
    payer_id: str,
    payee_id: str,
    entered_by: str,
    request_id: str,
    receivable_reference: str | None = None,
    assignee: str | None = None,
    note: str | None = None,
    entered_at: datetime | None = None,
) -> tuple[str, bytes]:
    """(partition key, envelope bytes) of one step on a work item. Raises ``pydantic.ValidationError`` when
    the values do not fit the kind (a link without a receivable, an empty note)."""
    reference = receivable_reference.strip() if receivable_reference else None
    action = WorkItemActionRecorded(
        action_id=stable_id(
            "work-item", tenant_id, str(item_id), kind, reference, assignee, note, entered_by, request_id
        ),
        kind=kind,
        item_id=UUID(str(item_id)),
        payer_id=payer_id,
        payee_id=payee_id,
        receivable_reference=reference,
        assignee=assignee or None,
        note=note,
        entered_by=entered_by,
        entered_at=entered_at or datetime.now(UTC),
    )
    key = account_key(tenant_id, payer_id, payee_id)
    env = envelopes.build(
        action,
        event_id=action.action_id,
        event_type=WORK_ITEM_EVENT_TYPES[kind],
        tenant_id=tenant_id,
        account_key=key,
        causation_id=f"staff:{entered_by}",
    )
    return key, env.to_bytes()


# --- reads (in the caller's db.staff_scope) -----------------------------------------------------------------------


async def item(conn: asyncpg.Connection, tenant: str, item_id: str) -> dict[str, Any] | None:
    """A work item whether or not it is still in the queue: its pair, payee, bucket, assignee, dismissal."""
    try:
        UUID(item_id)
    except ValueError:
        return None
    row = await conn.fetchrow(
        """SELECT a.adjustment_id::text AS item, a.payment_date, a.payer_id, m.payee_id, a.trace_number,
                  a.reason_code, a.reference, a.amount, a.bucket, a.unmatched_amount, a.dismissed_amount, a.reason,
                  m.file_name, a.segment_ordinal, a.pair_index, w.assignee, w.assigned_by, w.assigned_at,
                  w.dismissed_by, w.dismissed_at
           FROM matching.adjustments a
           LEFT JOIN intake.remittances m ON m.tenant_id = a.tenant_id AND m.remittance_id = a.remittance_id
           LEFT JOIN matching.work_items w ON w.tenant_id = a.tenant_id AND w.adjustment_id = a.adjustment_id
           WHERE a.tenant_id = $1 AND a.adjustment_id = $2::uuid""",
        tenant,
        item_id,
    )
    return None if row is None else dict(row.items())


async def history(conn: asyncpg.Connection, tenant: str, item_id: str) -> list[dict[str, Any]]:
    """Every step taken on the item, applied or refused (with why), oldest first; notes with their text."""
    rows = await conn.fetch(
        """SELECT entered_at, entered_by, kind, outcome, detail, note FROM matching.work_item_actions
           WHERE tenant_id = $1 AND adjustment_id = $2::uuid ORDER BY entered_at, recorded_at""",
        tenant,
        item_id,
    )
    return [dict(r.items()) for r in rows]


async def annotate(conn: asyncpg.Connection, tenant: str, items: Sequence[dict[str, Any]]) -> None:
    """Add each queue item's ``assignee`` and ``notes`` (count) in place."""
    rows = await conn.fetch(
        """SELECT a.adjustment_id::text AS item, w.assignee,
                  (SELECT count(*) FROM matching.work_item_actions n WHERE n.tenant_id = a.tenant_id
                       AND n.adjustment_id = a.adjustment_id AND n.kind = 'note' AND n.outcome = 'applied') AS notes
           FROM matching.adjustments a
           LEFT JOIN matching.work_items w ON w.tenant_id = a.tenant_id AND w.adjustment_id = a.adjustment_id
           WHERE a.tenant_id = $1 AND a.adjustment_id = ANY($2::uuid[])""",
        tenant,
        [i["item"] for i in items],
    )
    found = {r["item"]: (r["assignee"], int(r["notes"])) for r in rows}
    for i in items:
        i["assignee"], i["notes"] = found.get(i["item"], (None, 0))


# --- offsetstream queue ---------------------------------------------------------------------------------------------


def work_item(text: str) -> str:
    """A work item id: the UUID the queue shows (``offsetstream unmatched --json``, the console's item URL)."""
    try:
        return str(UUID(text.strip()))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text.strip()[:40]!r} is not a work item id (a UUID)") from None


def note_text(text: str) -> str:
    """A note: 1 to NOTE_MAX_LENGTH characters once trimmed (its content is never echoed back)."""
    value = text.strip()
    if not value:
        raise argparse.ArgumentTypeError("a note must not be empty")
    if len(value) > NOTE_MAX_LENGTH:
        raise argparse.ArgumentTypeError(f"a note holds at most {NOTE_MAX_LENGTH} characters")
    return value


async def _list(args: argparse.Namespace) -> int:
    from cli import matching_views
    from shared import db

    async with db.staff_connection(get_settings(), args.tenant) as conn:
        rows = await matching_views.work_queue(conn, args.tenant)
        await annotate(conn, args.tenant, rows)
    keys = (
        "item",
        "payment_date",
        "payer_id",
        "trace_number",
        "reference",
        "to_identify",
        "assignee",
        "notes",
    )
    shown = [{k: r[k] for k in keys} for r in rows]
    print(json.dumps(rows, default=str, indent=2) if args.json else table(shown))
    return 0


async def _queue(args: argparse.Namespace) -> int:
    from cli import letters
    from shared import db

    if args.queue_action == "list":
        return await _list(args)
    settings = get_settings()
    async with db.staff_connection(settings, args.tenant) as conn:
        found = await item(conn, args.tenant, args.item)
        steps = await history(conn, args.tenant, args.item) if found and args.queue_action == "show" else []
    if found is None:
        print(f"offsetstream queue: no work item {args.item} for tenant {args.tenant}", file=sys.stderr)
        return 1
    if args.queue_action == "show":
        print(json.dumps({"item": found, "history": steps}, default=str, indent=2) if args.json else "")
        if not args.json:
            print(table([found]))
            print(f"\nHistory\n{table(steps)}")
        return 0
    payee = args.payee or found["payee_id"]
    if not payee:
        print("offsetstream queue: the item's remittance names no payee; give --payee", file=sys.stderr)
        return 2
    message = action_event(
        KINDS[args.queue_action],
        tenant_id=args.tenant,
        item_id=args.item,
        payer_id=str(found["payer_id"]),
        payee_id=str(payee),
        entered_by=args.entered_by,
        request_id=args.request_id or str(uuid.uuid4()),
        receivable_reference=getattr(args, "reference", None),
        assignee=getattr(args, "assignee", None),
        note=getattr(args, "text", None),
    )
    await letters.publish_events(settings, WORK_ITEMS, [message])
    print(
        f"sent {args.queue_action} for work item {args.item} (tenant {args.tenant}); matching applies it: "
        f"offsetstream queue show {args.item}"
    )
    return 0


def add_parsers(sub: Any, settings: Settings) -> None:
    """Register ``offsetstream queue``."""
    queue = sub.add_parser("queue", help="steps on work-queue items: link, not-ours, assign, note, show")
    acts = queue.add_subparsers(dest="queue_action", required=True)
    listing = acts.add_parser("list", help="the work queue with item ids, assignee and note count")
    listing.add_argument(
        "--tenant", type=options.tenant_id, default=settings.default_tenant, help="clinic (tenant) id"
    )
    listing.add_argument("--json", action="store_true")
    parsers = {
        "link": acts.add_parser("link", help="apply the item's waiting money to a receivable of its account"),
        "not-ours": acts.add_parser("not-ours", help="dismiss the item: this money is not ours"),
        "assign": acts.add_parser("assign", help="give the item to a staff user (none: unassign)"),
        "note": acts.add_parser("note", help="add a note to the item's history"),
        "show": acts.add_parser("show", help="the item, its assignee and the steps taken on it"),
    }
    for name, p in parsers.items():
        p.add_argument(
            "item", type=work_item, help="work item id (offsetstream unmatched / the console's queue)"
        )
        if name == "link":
            p.add_argument("reference", type=options.identifier, help="FCN / claim number of the receivable")
        elif name == "assign":
            p.add_argument(
                "assignee", nargs="?", type=options.identifier, help="staff user (omit to unassign)"
            )
        elif name == "note":
            p.add_argument("text", type=note_text, help="the note (may hold PHI: never logged)")
        p.add_argument(
            "--tenant", type=options.tenant_id, default=settings.default_tenant, help="clinic (tenant) id"
        )
        if name == "show":
            p.add_argument("--json", action="store_true")
            continue
        p.add_argument("--entered-by", type=options.identifier, default="staff")
        p.add_argument(
            "--payee", type=options.identifier, help="payee NPI/TIN when the item's remittance has none"
        )
        p.add_argument(
            "--request-id", type=options.identifier, help="the same id sent again is the same step (retries)"
        )


def dispatch(args: argparse.Namespace) -> int | None:
    """Run ``offsetstream queue``, or None for another command."""
    return asyncio.run(_queue(args)) if args.command == "queue" else None
