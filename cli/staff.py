"""Staff commands: views of receivables and offsets, letters, steps on a receivable, and the ledger check.

    offsetstream receivables [--open] [--payer P]     every receivable with its balance
    offsetstream receivable FCN                       one receivable's story: changes, allocations, timeline
    offsetstream unmatched                            withheld money no receivable explains yet
    offsetstream remittance TRN                       how each withheld dollar of one remittance was explained
    offsetstream letter add ... | letter import FILE  enter demand letters / provider-identified overpayments
    offsetstream action KIND FCN ...                  appeal filed/upheld/overturned, write-off, refund sent,
                                                      extended repayment schedule granted (ers-granted)
    offsetstream ledger check                         prove conservation and balances; exit 1 on any break
All take ``--tenant``; views take ``--json`` for machines.
"""

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Literal

import asyncpg
from pydantic import ValidationError

from cli import options
from cli.report import table
from contracts.events import RepaymentSchedule, StaffActionKind
from contracts.topics import LETTERS, STAFF_ACTIONS
from shared.settings import Settings, get_settings

log = logging.getLogger(__name__)

ACTIONS: dict[str, tuple[StaffActionKind, Literal["upheld", "overturned"] | None]] = {
    "appeal-filed": ("appeal_filed", None),
    "appeal-upheld": ("appeal_decided", "upheld"),
    "appeal-overturned": ("appeal_decided", "overturned"),
    "write-off": ("write_off", None),
    "refund-sent": ("refund_sent", None),
    "ers-granted": ("repayment_schedule_granted", None),
}
ERS_OPTIONS = ("installment", "installments", "first_due", "frequency", "final_installment")


class ActionArgumentError(ValueError):
    """The options given do not fit the action (an ERS without its terms, terms on an appeal)."""


def repayment_schedule(args: argparse.Namespace) -> RepaymentSchedule | None:
    """The schedule an ``action ers-granted`` describes, None for every other action.

    Checked before anything is published, so a mistyped grant never reaches the interest stage.
    """
    given = [name for name in ERS_OPTIONS if getattr(args, name, None) is not None]
    if args.kind != "ers-granted":
        if given:
            flags = ", ".join("--" + name.replace("_", "-") for name in given)
            raise ActionArgumentError(f"{flags} only apply to ers-granted")
        return None
    missing = [
        f"--{n}"
        for n in ("installment", "installments", "first-due")
        if getattr(args, n.replace("-", "_")) is None
    ]
    if missing:
        raise ActionArgumentError(f"ers-granted needs {', '.join(missing)}")
    if args.first_due < args.date:
        raise ActionArgumentError("ers-granted: the first installment cannot be due before the grant date")
    try:
        return RepaymentSchedule(
            installment_amount=args.installment,
            installments=args.installments,
            first_due_date=args.first_due,
            frequency=args.frequency or "monthly",
            final_installment_amount=args.final_installment,
        )
    except ValidationError as exc:
        reasons = "; ".join(str(e["msg"]) for e in exc.errors())
        raise ActionArgumentError(f"ers-granted: {reasons}") from exc


def _json(value: Any) -> str:
    return json.dumps(value, default=str, indent=2)


async def _with_conn(work: Callable[[Any], Awaitable[int]], tenant: str | None) -> int:
    """Run a view on a connection scoped to one tenant by the database (role offsetstream_staff, row-level
    security: ``db.staff_scope``); with no tenant (``ledger check`` of every tenant, an operator's audit) the
    configured login's own rights apply."""
    from shared import db

    conn = await db.connect(get_settings())
    try:
        if tenant is None:
            return await work(conn)
        async with db.staff_scope(conn, tenant):
            return await work(conn)
    finally:
        await conn.close()


async def _print_rows(
    args: argparse.Namespace, fetch: Callable[[Any], Awaitable[list[dict[str, Any]]]]
) -> int:
    """A list view: rows from the ledger as a table for people or JSON for machines."""

    async def work(conn: Any) -> int:
        rows = await fetch(conn)
        print(_json(rows) if args.json else table(rows))
        return 0

    return await _with_conn(work, args.tenant)


async def _receivables(args: argparse.Namespace) -> int:
    from cli import matching_views

    return await _print_rows(
        args,
        lambda conn: matching_views.receivables(conn, args.tenant, open_only=args.open, payer=args.payer),
    )


async def _receivable(args: argparse.Namespace) -> int:
    from cli import matching_views

    async def work(conn: Any) -> int:
        detail = await matching_views.receivable(conn, args.tenant, args.reference)
        if detail is None:
            print(f"no receivable {args.reference!r} for tenant {args.tenant}")
            return 1
        from cli import interest_views

        settings = get_settings()
        head = detail["receivable"]
        interest = await interest_views.receivable_timeline(settings, args.tenant, head["reference"])
        policy = _policy_of(settings, head, interest)
        if args.json:
            print(_json({**detail, "policy": policy, "interest": interest}))
            return 0
        print(
            f"{head['reference']}  payer {head['payer_id']}  {head['status']}  balance {head['balance']}  "
            f"(principal {head['principal']}, interest {head['interest_accrued']}, "
            f"recovered {head['principal_recovered'] + head['interest_recovered']}, "
            f"written off {head['written_off']})"
        )
        print(interest_views.policy_line(policy))
        if head.get("merged_into_reference"):
            print(
                f"Merged into {head['merged_into_reference']} on {head['merged_on']}: the same overpayment, "
                f"shown there (offsetstream receivable {head['merged_into_reference']})"
            )
        for merged in detail.get("merged_from", []):
            print(f"Absorbed {merged['reference']} on {merged['merged_on']}: the same overpayment")
        for title, rows in (
            ("History", detail["history"]),
            ("Allocations", detail["allocations"]),
            ("Keys", detail["keys"]),
        ):
            print(f"\n{title}\n{table(rows)}")
        print(f"\nTimeline and interest\n{interest_views.render_timeline(interest)}")
        return 0

    return await _with_conn(work, args.tenant)


def _policy_of(settings: Settings, head: dict[str, Any], interest: dict[str, Any]) -> dict[str, Any]:
    """Which payer policy applied to the receivable and why (configured / table / default): what interest
    recorded for it, or, before interest has seen it, what the policy configuration resolves now."""
    from cli import interest_views

    rid = str(head["receivable_id"])
    for entry in interest["receivables"]:
        if entry["receivable_id"] == rid:
            keys = ("policy", "policy_reason", "policy_source", "policy_recorded")
            return {key: entry[key] for key in keys}
    return interest_views.applied_policy(settings, head)


async def _unmatched(args: argparse.Namespace) -> int:
    from cli import matching_views

    return await _print_rows(args, lambda conn: matching_views.unmatched(conn, args.tenant))


async def _remittance(args: argparse.Namespace) -> int:
    from cli import matching_views

    async def work(conn: Any) -> int:
        found = await matching_views.remittance(conn, args.tenant, args.trace)
        if found is None:
            print(f"no remittance with TRN02 {args.trace!r} for tenant {args.tenant}")
            return 1
        if args.json:
            print(_json(found))
        else:
            print(table([found["remittance"]]))
            print(f"\nPLB pairs\n{table(found['pairs'])}")
        return 0

    return await _with_conn(work, args.tenant)


async def _letter(args: argparse.Namespace) -> int:
    from cli import letters

    if args.letter_action == "import":
        try:
            entries = letters.read_import(args.file)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValidationError) as exc:
            print(f"offsetstream letter import: {args.file}: {_import_error(exc)}", file=sys.stderr)
            return 2
    else:
        entries = [
            letters.LetterEntry(
                kind=args.kind,
                payer_id=args.payer,
                payee_id=args.payee,
                fcn=args.fcn,
                amount=args.amount,
                letter_date=args.date,
                claims=tuple(args.claim or ()),
            )
        ]
    count = await letters.publish(get_settings(), entries, args.tenant, args.entered_by)
    print(f"published {count} letter(s) to {LETTERS.name} for tenant {args.tenant}")
    return 0


def _import_error(exc: Exception) -> str:
    """One line for a letter file that cannot be read: where and why, never the values (they may be PHI)."""
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "entry"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        return f"not a letter: {where}: {first['msg']}{more}"
    if isinstance(exc, json.JSONDecodeError):
        return f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    return str(exc)


async def _live_reference(tenant: str, typed: str) -> str:
    """The reference of the live receivable staff mean: the one typed, or, when it names a receivable merged
    into another or is one of its other identifiers (a claim number), that receivable's own. Every stage then
    finds the same receivable (interest keys an ERS plan by it). Without a reachable ledger, the typed one."""
    from cli import matching_views

    try:
        conn = await db_connect()
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        log.debug("ledger not reachable to resolve %s: %s", typed.strip(), type(exc).__name__)
        return typed.strip()
    from shared import db

    try:
        async with db.staff_scope(conn, tenant):
            detail = await matching_views.receivable(conn, tenant, typed)
    finally:
        await conn.close()
    if detail is None:
        return typed.strip()
    head = detail["receivable"]
    return str(head["merged_into_reference"] or head["reference"])


async def db_connect() -> Any:
    """A ledger connection with the configured settings."""
    from shared import db

    return await db.connect(get_settings())


async def _action(args: argparse.Namespace) -> int:
    from cli import letters

    kind, outcome = ACTIONS[args.kind]
    try:
        schedule = repayment_schedule(args)
    except ActionArgumentError as exc:
        print(f"offsetstream action: {exc}", file=sys.stderr)
        return 2
    reference = await _live_reference(args.tenant, args.reference)
    message = letters.action_event(
        kind,
        tenant_id=args.tenant,
        payer_id=args.payer,
        payee_id=args.payee,
        reference=reference,
        effective=args.date,
        entered_by=args.entered_by,
        amount=args.amount,
        outcome=outcome,
        schedule=schedule,
    )
    await letters.publish_events(get_settings(), STAFF_ACTIONS, [message])
    named = "" if reference == args.reference.strip() else f" (known as {args.reference.strip()})"
    print(f"recorded {args.kind} for {reference}{named} (tenant {args.tenant})")
    return 0


async def _ledger(args: argparse.Namespace) -> int:
    from cli import ledger_check

    async def work(conn: Any) -> int:
        breaches = await ledger_check.check(conn, args.tenant)
        if not breaches:
            print(
                f"ledger consistent: {len(ledger_check.CHECKS)} rules hold"
                + (f" for tenant {args.tenant}" if args.tenant else " for every tenant")
            )
            return 0
        for breach in breaches:
            print(f"BREACH: {breach.rule} ({len(breach.rows)} row(s))\n{table(breach.rows[:20])}")
        return 1

    return await _with_conn(work, args.tenant)


COMMANDS: dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, int]]] = {
    "receivables": _receivables,
    "receivable": _receivable,
    "unmatched": _unmatched,
    "remittance": _remittance,
    "letter": _letter,
    "action": _action,
    "ledger": _ledger,
}


def add_parsers(sub: Any, settings: Settings) -> None:
    """Register the staff subcommands on the main parser."""
    tenant = {"type": options.tenant_id, "default": settings.default_tenant, "help": "clinic (tenant) id"}
    p = sub.add_parser("receivables", help="every receivable with its balance")
    p.add_argument("--open", action="store_true", help="only receivables with money still owed")
    p.add_argument("--payer", type=options.identifier, help="only this payer id")
    p.add_argument("--tenant", **tenant)
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("receivable", help="one receivable: every change, allocation and deadline")
    p.add_argument("reference", type=options.identifier, help="FCN / reference of the receivable")
    p.add_argument("--tenant", **tenant)
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("unmatched", help="withheld money that no receivable explains yet (work queue)")
    p.add_argument("--tenant", **tenant)
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("remittance", help="how each withheld dollar of one remittance was explained")
    p.add_argument("trace", type=options.identifier, help="TRN02 check/EFT trace number")
    p.add_argument("--tenant", **tenant)
    p.add_argument("--json", action="store_true")
    letter = sub.add_parser("letter", help="enter demand letters or provider-identified overpayments")
    acts = letter.add_subparsers(dest="letter_action", required=True)
    add = acts.add_parser("add", help="one letter")
    add.add_argument("--payer", required=True, type=options.identifier)
    add.add_argument(
        "--payee", required=True, type=options.identifier, help="NPI or TIN the letter is addressed to"
    )
    add.add_argument("--fcn", required=True, type=options.identifier, help="FCN / AR number on the letter")
    add.add_argument("--amount", required=True, type=options.money, help="amount demanded, e.g. 125.00")
    add.add_argument("--date", required=True, type=options.iso_date, help="letter date YYYY-MM-DD")
    add.add_argument(
        "--claim",
        action="append",
        type=options.identifier,
        help="claim number (ICN) listed in the letter; repeatable",
    )
    add.add_argument("--kind", choices=["demand_letter", "provider_identified"], default="demand_letter")
    imp = acts.add_parser(
        "import", help="a JSON list of letters (fields as for add; fcn, letter_date, claims)"
    )
    imp.add_argument("file", type=options.input_file)
    for parser in (add, imp):
        parser.add_argument("--tenant", **tenant)
        parser.add_argument("--entered-by", type=options.identifier, default="staff")
    act = sub.add_parser(
        "action",
        help="record a step on a receivable: appeal, decision, write-off, refund, repayment schedule (ERS)",
    )
    act.add_argument("kind", choices=sorted(ACTIONS))
    act.add_argument("reference", type=options.identifier, help="FCN / reference of the receivable")
    act.add_argument("--payer", required=True, type=options.identifier)
    act.add_argument("--payee", required=True, type=options.identifier)
    act.add_argument(
        "--date", required=True, type=options.iso_date, help="date of the step (ers-granted: the grant date)"
    )
    act.add_argument(
        "--amount", type=options.money, help="write-off or refund amount (default: the open balance)"
    )
    ers = act.add_argument_group("ers-granted (extended repayment schedule)")
    ers.add_argument("--installment", type=options.money, help="amount of each installment")
    ers.add_argument("--installments", type=options.bounded_int(1, 600), help="number of installments")
    ers.add_argument("--first-due", type=options.iso_date, help="due date of the first installment")
    ers.add_argument("--frequency", choices=["monthly", "biweekly", "weekly"], help="default: monthly")
    ers.add_argument("--final-installment", type=options.money, help="last installment when it differs")
    act.add_argument("--tenant", **tenant)
    act.add_argument("--entered-by", type=options.identifier, default="staff")
    led = sub.add_parser("ledger", help="ledger audit")
    led.add_argument("ledger_action", choices=["check"])
    led.add_argument(
        "--tenant", type=options.tenant_id, default=None, help="only this tenant (default: every tenant)"
    )


def dispatch(args: argparse.Namespace) -> int | None:
    """Run a staff command, or None when the command is not one of these."""
    command = COMMANDS.get(args.command)
    return None if command is None else asyncio.run(command(args))
