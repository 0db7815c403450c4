"""The work-queue item page and its steps: link to a receivable, not ours, assign, note (issue 19 point 3).

Each step is one ``WorkItemActionRecorded`` on ``remit.work-items.v1`` built by ``cli.work_items`` (what
``offsetstream queue`` sends), with the logged-in user as ``entered_by``; matching applies it. The console
writes nothing: the item's assignee, notes and history on the page are matching's tables, read in the clinic's
staff scope. Every form carries a request id rendered with the page, so a double submit is one step. A note's
text may hold PHI: it is shown on this page to the clinic's staff and never logged.
"""

import logging
import uuid
from argparse import ArgumentTypeError

from aiohttp import web
from pydantic import ValidationError

from cli import letters, matching_views, options
from cli import work_items as views
from contracts.topics import WORK_ITEMS
from services.console import pages, state, users

log = logging.getLogger(__name__)

STEPS: dict[str, str] = {"link": "link", "not_ours": "not_ours", "assign": "assign", "note": "note"}
DONE = {
    "link": "link sent",
    "not_ours": "marked not ours",
    "assign": "assignment sent",
    "note": "note sent",
}


async def item_page(
    request: web.Request,
    tenant: str,
    *,
    status: int = 200,
    error: str | None = None,
    form: dict[str, str] | None = None,
) -> web.Response:
    """The item (in the queue or no longer), its assignee, its history, and the forms a biller may use."""
    user = request["user"]
    item_id = request.match_info["item"]
    async with pages.scope(request, tenant) as conn:
        queued = await matching_views.work_queue(conn, tenant, item_id)
        found = await views.item(conn, tenant, item_id)
        history = await views.history(conn, tenant, item_id) if found else []
    if found is None:
        raise web.HTTPNotFound(text="not found")
    item = {**found, **queued[0]} if queued else {**found, "to_identify": found["unmatched_amount"]}
    item.setdefault("suggested_reference", None)
    item.setdefault("suggestion_score", None)
    return pages.render(
        request,
        "queue_item.html",
        status=status,
        item=item,
        in_queue=bool(queued),
        history=history,
        error=error,
        form=form or {},
        may_act=user.may("biller"),
        request_id=uuid.uuid4().hex,
    )


async def queue_item(request: web.Request) -> web.Response:
    _, tenant = pages._tenant(request)
    return await item_page(request, tenant)


async def _assignee(request: web.Request, tenant: str, text: str) -> str | None:
    """The staff user an item is given to (empty: unassign): an enabled console user of this clinic."""
    if not text:
        return None
    try:
        name = options.identifier(text).lower()
    except ArgumentTypeError as exc:
        raise FormError(f"assignee: {exc}") from exc
    async with request.app[state.POOL].acquire() as conn:
        found = await users.find(conn, name)
    if found is None or not found[0].sees(tenant):
        raise FormError(f"assignee: no console user {name} works for this clinic")
    return name


class FormError(ValueError):
    """A step form value that cannot become an event."""


async def step(request: web.Request) -> web.Response:
    """POST ``/t/<clinic>/queue/<item>/step``: one step on the item, as one event on Kafka."""
    user, tenant = pages._tenant(request, "biller")
    item_id = request.match_info["item"]
    form = {k: str(v) for k, v in (await request.post()).items()}
    kind = form.get("step", "")
    async with pages.scope(request, tenant) as conn:
        found = await views.item(conn, tenant, item_id)
        reference = (form.get("receivable") or "").strip()
        known = (
            await matching_views.receivable(conn, tenant, reference) if kind == "link" and reference else None
        )
    if found is None:
        raise web.HTTPNotFound(text="not found")
    try:
        if kind not in STEPS:
            raise FormError("step: link, not_ours, assign or note")
        if not found["payee_id"]:
            raise FormError("this item's remittance names no payee; use `offsetstream queue ... --payee`")
        if kind == "link" and known is None:
            raise FormError(f"receivable: no receivable {reference or '(empty)'} in this clinic")
        note = None
        if kind == "note":
            try:
                note = views.note_text(form.get("note") or "")
            except ArgumentTypeError as exc:
                raise FormError(f"note: {exc}") from exc
        assignee = (
            await _assignee(request, tenant, (form.get("assignee") or "").strip())
            if kind == "assign"
            else None
        )
        try:
            message = views.action_event(
                STEPS[kind],  # type: ignore[arg-type]  # one of the kinds, checked above
                tenant_id=tenant,
                item_id=item_id,
                payer_id=str(found["payer_id"]),
                payee_id=str(found["payee_id"]),
                entered_by=user.username,
                request_id=(form.get("request_id") or uuid.uuid4().hex)[:64],
                receivable_reference=reference if kind == "link" else None,
                assignee=assignee,
                note=note,
            )
        except ValidationError as exc:
            raise FormError("; ".join(str(e["msg"]) for e in exc.errors())) from exc
    except FormError as exc:
        return await item_page(request, tenant, status=400, error=str(exc), form=form)
    await letters.publish_events(request.app[state.SETTINGS], WORK_ITEMS, [message])
    log.info("console: %s sent %s on work item %s", user.username, kind, item_id)  # never the note's text
    return pages._back(
        f"/t/{tenant}/queue/{item_id}", f"{DONE[kind]}; the page updates once matching applies it"
    )


def add_routes(app: web.Application) -> None:
    """The item page (in place of the pages' own) and its step form."""
    app.router.add_post("/t/{tenant}/queue/{item}/step", step)
