"""What a console form becomes: a staff-action or letter event on Kafka, built exactly as ``offsetstream
action`` / ``letter add`` build them (``cli.letters``), with the logged-in user as ``entered_by``.

The console never writes the ledger: matching, detection and interest apply these events, so the console and
the command line cannot disagree about what an action means. Form values are checked with the command line's
own validators (``cli.options``) before anything is published; a problem comes back as :class:`FormError`
with a message for the person at the form (never the typed values beyond what they typed themselves).
"""

from argparse import ArgumentTypeError
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any, TypeVar

from pydantic import ValidationError

from cli import letters, options
from cli.staff import ACTIONS
from contracts.events import RepaymentSchedule
from contracts.topics import LETTERS, STAFF_ACTIONS
from services.intake import publish as intake_publish
from shared.settings import Settings

T = TypeVar("T")
LETTER_KINDS = ("provider_identified", "demand_letter")


class FormError(ValueError):
    """A form value that cannot become an event: which field and why."""


def _field(
    form: Mapping[str, str], name: str, convert: Callable[[str], T], *, required: bool = True
) -> T | None:
    text = (form.get(name) or "").strip()
    if not text:
        if required:
            raise FormError(f"{name.replace('_', ' ')}: required")
        return None
    try:
        return convert(text)
    except ArgumentTypeError as exc:
        raise FormError(f"{name.replace('_', ' ')}: {exc}") from exc


def identification(item: Mapping[str, Any], form: Mapping[str, str], user: str) -> tuple[str, bytes]:
    """A work-queue item identified by staff: the overpayment the withheld money settles, entered as a letter
    (a payer's demand letter, or an overpayment the provider identified) naming the FCN/reference. Detection
    opens (or joins) its receivable and matching re-matches the waiting money to it."""
    kind = form.get("kind") or "provider_identified"
    if kind not in LETTER_KINDS:
        raise FormError("kind: demand_letter or provider_identified")
    if not item.get("payee_id"):
        raise FormError(
            "this item's remittance names no payee; enter the letter with `offsetstream letter add`"
        )
    try:
        entry = letters.LetterEntry(
            kind=kind,
            payer_id=str(item["payer_id"]),
            payee_id=str(item["payee_id"]),
            fcn=_field(form, "fcn", options.identifier) or "",
            amount=_field(form, "amount", options.money),
            letter_date=_field(form, "letter_date", options.iso_date),
            claims=tuple(c for c in [_field(form, "claim", options.identifier, required=False)] if c),
        )
    except ValidationError as exc:
        raise FormError("; ".join(str(e["msg"]) for e in exc.errors())) from exc
    return letters.to_event(entry, str(item["tenant_id"]), user)


def staff_action(
    head: Mapping[str, Any], payee: str, form: Mapping[str, str], user: str
) -> tuple[str, bytes]:
    """A step on a receivable (the ``offsetstream action`` kinds), on the live receivable the page shows."""
    name = form.get("action") or ""
    if name not in ACTIONS:
        raise FormError(f"action: one of {', '.join(sorted(ACTIONS))}")
    kind, outcome = ACTIONS[name]
    effective: date = _field(form, "date", options.iso_date)  # type: ignore[assignment]  # required
    schedule = None
    if name == "ers-granted":
        try:
            schedule = RepaymentSchedule(
                installment_amount=_field(form, "installment", options.money),
                installments=_field(form, "installments", options.bounded_int(1, 600)),
                first_due_date=_field(form, "first_due", options.iso_date),
                frequency=form.get("frequency") or "monthly",
            )
        except ValidationError as exc:
            raise FormError("; ".join(str(e["msg"]) for e in exc.errors())) from exc
        if schedule.first_due_date < effective:
            raise FormError("first due: cannot be before the grant date")
    amount = (
        _field(form, "amount", options.money, required=False)
        if name in ("write-off", "refund-sent")
        else None
    )
    return letters.action_event(
        kind,
        tenant_id=str(head["tenant_id"]),
        payer_id=str(head["payer_id"]),
        payee_id=payee,
        reference=str(head["merged_into_reference"] or head["reference"]),
        effective=effective,
        entered_by=user,
        amount=amount,
        outcome=outcome,
        schedule=schedule,
    )


async def publish_letter(settings: Settings, message: tuple[str, bytes]) -> None:
    """Send one letter and wait for the broker's acknowledgement."""
    await letters.publish_events(settings, LETTERS, [message])


async def publish_action(settings: Settings, message: tuple[str, bytes]) -> None:
    """Send one staff action and wait for the broker's acknowledgement."""
    await letters.publish_events(settings, STAFF_ACTIONS, [message])


def file_replay(tenant: str, sha256: str, form: Mapping[str, str], user: str) -> tuple[bytes, bytes]:
    """An admin's Replay of a file with rejected transactions: a FileReplayRequested for intake, which re-reads
    the file it keeps and processes it again as ``offsetstream dlt replay`` of its dead letters would. The form's
    request id makes a double submit one replay."""
    request_id = (form.get("request_id") or "").strip()[:64]
    if not request_id:
        raise FormError("request id: required (reload the page)")
    return intake_publish.file_replay_message(tenant, sha256, user, request_id)


async def publish_file_replay(settings: Settings, message: tuple[bytes, bytes]) -> None:
    """Send one replay request and wait for the broker's acknowledgement."""
    await intake_publish.request_file_replay(settings, message)
