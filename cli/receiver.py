"""A local webhook receiver: verifies signatures with each tenant's key and records deliveries by delivery id.

Used by ``make run`` to show notifications arriving, and by the integration tests as the real HTTP peer (it can
fail the first N calls to prove retries, answer slowly, answer with a redirect, and it counts duplicates). It
verifies as docs/webhooks.md tells receivers to: the tenant's key (derived from the master key ``secret``, or
from ``secrets``), the signature over timestamp, delivery id and body, the replay window.
"""

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import SecretStr

from shared.webhook import DELIVERY_HEADER, SIGNATURE_HEADER, TENANT_HEADER, WebhookKeys, verify


@dataclass
class WebhookReceiver:
    """An aiohttp server on 127.0.0.1; ``fail_first`` makes the first N requests answer 503, ``delay`` answers
    every request after that many seconds, ``redirect_to`` answers 307 with that Location."""

    secret: str | None = None
    secrets: dict[str, str] = field(default_factory=dict)
    fail_first: int = 0
    delay: float = 0.0
    redirect_to: str | None = None
    calls: int = 0
    bad_signatures: int = 0
    bodies: dict[str, bytes] = field(default_factory=dict)
    deliveries: Counter[str] = field(default_factory=Counter)
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def keys(self) -> WebhookKeys:
        """The keys this receiver verifies with."""
        master = None if self.secret is None else SecretStr(self.secret)
        return WebhookKeys(master, {t: SecretStr(k) for t, k in self.secrets.items()})

    async def _handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        body = await request.read()
        if self.delay:
            await asyncio.sleep(self.delay)
        delivery = request.headers.get(DELIVERY_HEADER, "")
        key = self.keys.key(request.headers.get(TENANT_HEADER, ""))
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if key is None or not verify(key, signature, delivery, body):
            self.bad_signatures += 1
            return web.Response(status=401)
        if self.calls <= self.fail_first:
            return web.Response(status=503)
        if self.redirect_to is not None:
            return web.Response(status=307, headers={"Location": self.redirect_to})
        self.deliveries[delivery] += 1
        self.bodies[delivery] = body
        return web.Response(status=204)

    async def start(self) -> str:
        """Start listening on a free port; return the URL to configure."""
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)  # a slow handler does not hold stop()
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server: Any = site._server
        self.port = int(server.sockets[0].getsockname()[1])
        return f"http://127.0.0.1:{self.port}/hook"

    async def stop(self) -> None:
        """Stop the server."""
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def duplicates(self) -> int:
        """Deliveries received more than once for one delivery id."""
        return sum(n - 1 for n in self.deliveries.values() if n > 1)
