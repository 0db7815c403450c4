"""A local webhook receiver: verifies signatures and records deliveries by delivery id.

Used by ``make run`` to show notifications arriving, and by the integration tests as the real HTTP peer
(it can fail the first N calls to prove retries, and it counts duplicates).
"""

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from shared.webhook import DELIVERY_HEADER, SIGNATURE_HEADER, verify


@dataclass
class WebhookReceiver:
    """An aiohttp server on 127.0.0.1; ``fail_first`` makes the first N requests answer 503."""

    secret: str
    fail_first: int = 0
    calls: int = 0
    bad_signatures: int = 0
    bodies: dict[str, bytes] = field(default_factory=dict)
    deliveries: Counter[str] = field(default_factory=Counter)
    _runner: web.AppRunner | None = None
    port: int = 0

    async def _handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        body = await request.read()
        if not verify(self.secret, request.headers.get(SIGNATURE_HEADER, ""), body):
            self.bad_signatures += 1
            return web.Response(status=401)
        if self.calls <= self.fail_first:
            return web.Response(status=503)
        delivery = request.headers.get(DELIVERY_HEADER, "")
        self.deliveries[delivery] += 1
        self.bodies[delivery] = body
        return web.Response(status=204)

    async def start(self) -> str:
        """Start listening on a free port; return the URL to configure."""
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app)
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
