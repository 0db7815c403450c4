"""The console's pages: each handler checks who may see it, reads through the staff views in one tenant's
read-only scope, and renders a template; the POST handlers turn a form into one Kafka event (``actions``).

URLs name the clinic (``/t/<tenant>/...``): a clinic the user is not given answers 404 exactly like a
receivable that does not exist, so a URL reveals nothing about other clinics.
"""

import csv
import io
import logging
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import asyncpg
from aiohttp import web

from cli import interest_views, matching_views
from cli import work_items as work_item_views
from cli.main import fetch_files
from services.console import actions, auth, charts, queries, state, users
from shared import clock, db

log = logging.getLogger(__name__)
STATUSES = ("open", "partially_recovered", "paused", "settled", "refunded", "written_off", "merged")


def money(value: Any) -> str:
    """Two decimals with thousands separators; blank for None."""
    if value is None:
        return ""
    return f"{Decimal(value):,.2f}"


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    """A page with the common context: user, CSRF token, current clinic, notice from the last action."""
    env = request.app[state.TEMPLATES]
    user: auth.User | None = request["user"]
    body = env.get_template(template).render(
        user=user,
        csrf=request["csrf"],
        tenant=request.match_info.get("tenant"),
        notice=request.query.get("notice"),
        path=request.path,
        **context,
    )
    return web.Response(text=body, content_type="text/html", status=status)


def _user(request: web.Request, needed: auth.Role = "viewer") -> auth.User:
    user: auth.User | None = request["user"]
    if user is None:
        raise web.HTTPSeeOther("/login")
    if not user.may(needed):
        raise web.HTTPForbidden(text=f"your role ({user.role}) cannot do this; it needs {needed}")
    return user


def _tenant(request: web.Request, needed: auth.Role = "viewer") -> tuple[auth.User, str]:
    user = _user(request, needed)
    tenant = request.match_info["tenant"]
    if not user.sees(tenant):
        raise web.HTTPNotFound(text="not found")
    return user, tenant


@asynccontextmanager
async def scope(request: web.Request, tenant: str) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection inside ``db.staff_scope`` for one clinic (read-only, row-level security)."""
    async with request.app[state.POOL].acquire() as conn, db.staff_scope(conn, tenant):
        yield conn


# --- login ------------------------------------------------------------------------------------------------------


async def login_form(request: web.Request) -> web.Response:
    return render(request, "login.html", error=None)


async def login(request: web.Request) -> web.Response:
    form = await request.post()
    name, password = str(form.get("username") or "").strip().lower(), str(form.get("password") or "")
    throttle = request.app[state.THROTTLE]
    keys = (f"user:{name}", f"addr:{request.remote}")
    if not throttle.allowed(keys):
        log.info("console login refused: too many failed attempts")
        return render(request, "login.html", status=429, error="too many failed attempts: try again later")
    async with request.app[state.POOL].acquire() as conn:
        found = await users.find(conn, name)
    if not auth.verify_password(found[1] if found else None, password) or found is None:
        throttle.failed(keys)
        log.info("console login refused")
        return render(request, "login.html", status=401, error="user name or password is wrong")
    throttle.succeeded(keys)
    settings = request.app[state.SETTINGS]
    request["new_session"] = auth.new_session(found[0].username, settings.console_session_minutes)
    log.info("console login: %s", found[0].username)
    return web.Response(status=303, headers={"Location": f"/t/{found[0].tenants[0]}/queue"})


async def logout(request: web.Request) -> web.Response:
    settings = request.app[state.SETTINGS]
    request["new_session"] = auth.new_session(None, settings.console_session_minutes)
    return web.Response(status=303, headers={"Location": "/login"})


async def home(request: web.Request) -> web.Response:
    user = _user(request)
    raise web.HTTPSeeOther(f"/t/{user.tenants[0]}/queue")


def _back(path: str, notice: str) -> web.Response:
    return web.Response(status=303, headers={"Location": f"{path}?{urlencode({'notice': notice})}"})


# --- work queue ---------------------------------------------------------------------------------------------------


async def queue(request: web.Request) -> web.Response:
    user, tenant = _tenant(request)
    async with scope(request, tenant) as conn:
        items = await matching_views.work_queue(conn, tenant)
        await work_item_views.annotate(conn, tenant, items)
    partial = request.headers.get("HX-Request") == "true"
    return render(
        request, "queue_rows.html" if partial else "queue.html", items=items, may_act=user.may("biller")
    )


async def queue_item(request: web.Request) -> web.Response:
    from services.console import work_items  # the item page lives with its steps (link, not ours, ...)

    _, tenant = _tenant(request)
    return await work_items.item_page(request, tenant)


async def identify(request: web.Request) -> web.Response:
    user, tenant = _tenant(request, "biller")
    async with scope(request, tenant) as conn:
        found = await matching_views.work_queue(conn, tenant, request.match_info["item"])
    if not found:
        raise web.HTTPNotFound(text="not in the work queue (already explained?)")
    item = {**found[0], "tenant_id": tenant}
    form = {k: str(v) for k, v in (await request.post()).items()}
    try:
        message = actions.identification(item, form, user.username)
    except actions.FormError as exc:
        from services.console import work_items

        return await work_items.item_page(request, tenant, status=400, error=str(exc), form=form)
    await actions.publish_letter(request.app[state.SETTINGS], message)
    log.info("console: %s identified a work-queue item as %s", user.username, form.get("kind"))
    return _back(f"/t/{tenant}/queue", f"sent: {form.get('fcn')} identified; the queue updates once matched")


# --- receivables --------------------------------------------------------------------------------------------------


async def receivables(request: web.Request) -> web.Response:
    _, tenant = _tenant(request)
    payer = request.query.get("payer") or None
    status = request.query.get("status") or None
    policy = request.query.get("policy") or None
    async with scope(request, tenant) as conn:
        rows = await matching_views.receivables(conn, tenant, payer=payer)
        policies = await queries.policies(conn, tenant)
    for row in rows:
        row["policy"] = policies.get(row["reference"], "")
    shown = [
        r
        for r in rows
        if (status is None or r["status"] == status) and (policy is None or r["policy"] == policy)
    ]
    return render(
        request,
        "receivables.html",
        rows=shown,
        payers=sorted({r["payer_id"] for r in rows}),
        policies=sorted({r["policy"] for r in rows}),
        statuses=STATUSES,
        chosen={"payer": payer, "status": status, "policy": policy},
    )


async def _receivable_page(request: web.Request, tenant: str, error: str | None = None) -> web.Response:
    user: auth.User = request["user"]
    reference = request.match_info["reference"]
    async with scope(request, tenant) as conn:
        detail = await matching_views.receivable(conn, tenant, reference)
        if detail is None:
            raise web.HTTPNotFound(text="not found")
        payee = await queries.payee_of(conn, tenant, detail["receivable"]["account_key"])
    settings = request.app[state.SETTINGS]
    head = detail["receivable"]
    interest = await interest_views.receivable_timeline(settings, tenant, head["reference"])
    mine = [r for r in interest["receivables"] if r["receivable_id"] == str(head["receivable_id"])]
    today = clock.today(settings)
    points = charts.balance_steps(
        (head["determination_date"], head["principal"]),
        [(p["due"], p["amount"]) for p in (mine[0]["interest"] if mine else [])],
        [(a["effective_date"], a["to_interest"] + a["to_principal"]) for a in detail["allocations"]],
        [
            (h["effective_date"], h["amount"])
            for h in detail["history"]
            if h["change"] == "ReceivableWrittenOff"
        ],
        today,
    )
    return render(
        request,
        "receivable.html",
        status=400 if error else 200,
        head=head,
        detail=detail,
        interest=mine[0] if mine else None,
        payee=payee,
        chart=charts.balance_over_time(points),
        today=today,
        error=error,
        may_act=user.may("biller"),
    )


async def receivable(request: web.Request) -> web.Response:
    _, tenant = _tenant(request)
    return await _receivable_page(request, tenant)


async def receivable_action(request: web.Request) -> web.Response:
    user, tenant = _tenant(request, "biller")
    form = {k: str(v) for k, v in (await request.post()).items()}
    async with scope(request, tenant) as conn:
        detail = await matching_views.receivable(conn, tenant, request.match_info["reference"])
        if detail is None:
            raise web.HTTPNotFound(text="not found")
        head = {**detail["receivable"], "tenant_id": tenant}
        payee = await queries.payee_of(conn, tenant, head["account_key"]) or form.get("payee", "").strip()
    try:
        if not payee:
            raise actions.FormError("payee: required (no remittance names this account's payee)")
        message = actions.staff_action(head, payee, form, user.username)
    except actions.FormError as exc:
        return await _receivable_page(request, tenant, error=str(exc))
    await actions.publish_action(request.app[state.SETTINGS], message)
    log.info("console: %s recorded %s", user.username, form.get("action"))
    return _back(
        request.path.rsplit("/action", 1)[0], f"sent: {form.get('action')}; the page updates once applied"
    )


# --- scorecard, forecast, files -----------------------------------------------------------------------------------


async def scorecard(request: web.Request) -> web.StreamResponse:
    _, tenant = _tenant(request)
    async with scope(request, tenant) as conn:
        rows = await queries.scorecard(conn, tenant)
    if request.match_info.get("ext") == ".csv":
        out = io.StringIO()
        fields = list(rows[0]) if rows else ["payer_id", "month", "withheld"]
        writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return web.Response(
            text=out.getvalue(),
            content_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="scorecard-{tenant}.csv"'},
        )
    return render(request, "scorecard.html", rows=rows)


async def forecast(request: web.Request) -> web.Response:
    _, tenant = _tenant(request)
    today = clock.today(request.app[state.SETTINGS])
    async with scope(request, tenant) as conn:
        payers = await queries.forecast(conn, tenant, today)
    series = [f"{d} days" for d in queries.HORIZONS]
    return render(
        request,
        "forecast.html",
        payers=payers,
        horizons=queries.HORIZONS,
        today=today,
        withholding_chart=charts.grouped_bars(
            [(p.payer_id, [p.withholding[d] for d in queries.HORIZONS]) for p in payers],
            series,
            "Expected withholding",
        ),
        interest_chart=charts.grouped_bars(
            [(p.payer_id, [p.interest[d] for d in queries.HORIZONS]) for p in payers],
            series,
            "Interest coming due",
        ),
    )


async def files(request: web.Request) -> web.Response:
    user, tenant = _tenant(request)
    received = await fetch_files(request.app[state.SETTINGS], tenant, 200)
    async with scope(request, tenant) as conn:
        rejected = await queries.rejections(conn, tenant)
    return render(
        request,
        "files.html",
        files=received,
        rejected=rejected,
        is_admin=user.may("admin"),
        request_id=uuid.uuid4().hex,
    )


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


async def replay_file(request: web.Request) -> web.Response:
    """An admin asks intake to process a file with rejected transactions again (``FileReplayRequested``). The
    console reads no dead letter and no payer byte: it names the file by SHA-256, intake re-reads what it keeps."""
    user, tenant = _tenant(request, "admin")
    sha256 = request.match_info["sha256"]
    if not _SHA256.match(sha256):
        raise web.HTTPNotFound(text="not found")
    async with scope(request, tenant) as conn:
        rejected = await queries.file_rejections(conn, tenant, sha256)
    if rejected is None:
        raise web.HTTPNotFound(text="not found")
    if not rejected:
        return _back(f"/t/{tenant}/files", "nothing to replay: no transaction of that file was rejected")
    form = {k: str(v) for k, v in (await request.post()).items()}
    try:
        message = actions.file_replay(tenant, sha256, form, user.username)
    except actions.FormError as exc:
        return _back(f"/t/{tenant}/files", str(exc))
    await actions.publish_file_replay(request.app[state.SETTINGS], message)
    log.info("console: %s asked for file %s to be replayed", user.username, sha256[:12])
    return _back(
        f"/t/{tenant}/files",
        f"sent: replay of file {sha256[:12]}; its receipts show it once intake has read the file again",
    )


def add_routes(app: web.Application) -> None:
    """Every page and form of the console."""
    r = app.router
    r.add_get("/", home)
    r.add_get("/login", login_form)
    r.add_post("/login", login)
    r.add_post("/logout", logout)
    r.add_get("/t/{tenant}/queue", queue)
    r.add_get("/t/{tenant}/queue/{item}", queue_item)
    r.add_post("/t/{tenant}/queue/{item}/identify", identify)
    r.add_get("/t/{tenant}/receivables", receivables)
    r.add_get("/t/{tenant}/receivables/{reference}", receivable)
    r.add_post("/t/{tenant}/receivables/{reference}/action", receivable_action)
    r.add_get(r"/t/{tenant}/scorecard{ext:(\.csv)?}", scorecard)
    r.add_get("/t/{tenant}/forecast", forecast)
    r.add_get("/t/{tenant}/files", files)
    r.add_post("/t/{tenant}/files/{sha256}/replay", replay_file)
