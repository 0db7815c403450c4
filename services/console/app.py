"""The staff console: a sixth process serving server-rendered pages over the ledger's staff views.

Why aiohttp + Jinja2: aiohttp is already installed (faust runs on it) and asyncio-native like asyncpg and
aiokafka, so the console shares the services' event loop model, settings and clients without a second web
stack; Jinja2 autoescapes every value. Pages work without JavaScript; htmx (vendored under ``static/``,
never from a CDN) only refreshes the work queue and keeps the CSRF header on its requests.

This module wires: the database pool (role ``offsetstream_console``: reads ``console.users`` and becomes
``offsetstream_staff`` per request), the session and CSRF middleware, security headers, routes (``pages``).
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import jinja2
from aiohttp import web

from services.console import auth, pages, users, work_items
from services.console.state import KEY, POOL, SETTINGS, TEMPLATES, THROTTLE
from shared import telemetry
from shared.settings import Settings, get_settings

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
COOKIE = "offsetstream_console"
CONSOLE_ROLE = "offsetstream_console"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def _set_cookie(response: web.StreamResponse, settings: Settings, key: bytes, session: auth.Session) -> None:
    response.set_cookie(
        COOKIE,
        auth.encode_session(key, session),
        max_age=settings.console_session_minutes * 60,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=settings.console_secure_cookies,
    )


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Read the signed session (or start an anonymous one), load its user, refuse a POST without the
    session's CSRF token (403), and add the security headers to every answer."""
    app = request.app
    settings, key = app[SETTINGS], app[KEY]
    session = auth.decode_session(key, request.cookies.get(COOKIE))
    fresh = session is None
    if session is None:
        session = auth.new_session(None, settings.console_session_minutes)
    user = None
    if session.username:
        async with app[POOL].acquire() as conn:
            found = await users.find(conn, session.username)
        user = found[0] if found else None  # disabled since the login: the session ends here
    request["session"], request["user"] = session, user
    request["csrf"] = auth.csrf_token(key, session)
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        sent = request.headers.get("X-CSRF-Token")
        if sent is None and request.content_type in (
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ):
            sent = str((await request.post()).get("csrf") or "")
        if not auth.csrf_ok(key, None if fresh else session, sent):
            log.info("refused %s %s: missing or wrong CSRF token", request.method, request.path)
            raise web.HTTPForbidden(text="missing or invalid CSRF token: reload the page and try again")
    response = await handler(request)
    replaced = request.get("new_session")
    if fresh or replaced is not None:
        _set_cookie(response, settings, key, replaced or session)
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    if not request.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def build(settings: Settings, pool: asyncpg.Pool) -> web.Application:
    """The console's web application (the pool is the caller's: tests build the app on their own stack)."""
    key = auth.check_secret(settings.console_secret.get_secret_value() if settings.console_secret else None)
    app = web.Application(middlewares=[session_middleware], client_max_size=64 * 1024)
    app[SETTINGS], app[POOL], app[KEY] = settings, pool, key
    app[THROTTLE] = auth.LoginThrottle()
    app[TEMPLATES] = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    app[TEMPLATES].filters["money"] = pages.money
    pages.add_routes(app)
    work_items.add_routes(app)
    app.router.add_static("/static/", HERE / "static", append_version=True)
    return app


async def create_pool(settings: Settings) -> asyncpg.Pool:
    """Connections running as ``offsetstream_console`` (read ``console.users``; staff views per request)."""

    async def as_console(conn: asyncpg.Connection) -> None:
        await conn.execute(f"SET ROLE {CONSOLE_ROLE}")

    return await asyncpg.create_pool(settings.database_url, min_size=1, max_size=4, init=as_console)


async def serve(settings: Settings) -> None:
    """Run until cancelled."""
    pool = await create_pool(settings)
    runner = web.AppRunner(build(settings, pool), access_log=None)  # access logs would carry URLs (FCNs)
    await runner.setup()
    site = web.TCPSite(runner, settings.console_host, settings.console_port)
    await site.start()
    log.info("console listening on http://%s:%s/", settings.console_host, settings.console_port)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await pool.close()


def main() -> None:
    """``python -m services.console``."""
    settings = get_settings()
    telemetry.setup_logging("INFO")
    try:
        asyncio.run(serve(settings))
    except auth.ConsoleSecretMissing as exc:
        raise SystemExit(str(exc)) from None
    except KeyboardInterrupt:
        pass
