"""A webhook receiver for offsetstream notifications, standard library only (docs/webhooks.md).

Run it with the key offsetstream gave you for your tenant::

    OFFSETSTREAM_WEBHOOK_KEY=<your key> python examples/webhook_receiver.py --port 8080

and point the tenant's webhook route at ``http://<host>:8080/hook`` (behind HTTPS in production). It accepts a
delivery only when the signature is right, the timestamp is inside the replay window and the tenant is the one
the key belongs to (if ``OFFSETSTREAM_WEBHOOK_TENANT`` is set); it answers a repeated delivery id with 200 and
does nothing (offsetstream delivers at least once). offsetstream's own tests import :func:`verify` from this
file, so what the docs show is what the sender signs.
"""

import argparse
import hashlib
import hmac
import json
import os
import time
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SIGNATURE_HEADER = "X-Offsetstream-Signature"
DELIVERY_HEADER = "X-Offsetstream-Delivery"
TENANT_HEADER = "X-Offsetstream-Tenant"
REPLAY_WINDOW_SECONDS = 300


def verify(
    key: str,
    signature: str,
    delivery_id: str,
    body: bytes,
    now: float | None = None,
    window: float = REPLAY_WINDOW_SECONDS,
) -> bool:
    """True when ``signature`` (the X-Offsetstream-Signature header, ``t=<unix seconds>,v1=<hex>``) is the
    HMAC-SHA256 with ``key`` of ``"<t>.<delivery id>." + body`` and ``t`` is within ``window`` seconds of now.

    Use the raw body bytes as received (before any JSON parsing) and compare in constant time."""
    try:
        fields = dict(part.strip().split("=", 1) for part in signature.split(","))
        timestamp, given = fields["t"], fields["v1"]
        sent_at = int(timestamp)
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - sent_at) > window:
        return False  # too old (a replayed request) or from a clock far off
    signed = f"{timestamp}.{delivery_id}.".encode() + body
    expected = hmac.new(key.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, given)


class SeenDeliveries:
    """Delivery ids already handled. Keep them at least as long as the replay window (a stored copy outlives
    a restart in a real receiver: a database table with the id as primary key)."""

    def __init__(self, size: int = 100_000) -> None:
        self.size = size
        self._ids: OrderedDict[str, None] = OrderedDict()

    def first_time(self, delivery_id: str) -> bool:
        """True the first time an id is seen."""
        if delivery_id in self._ids:
            return False
        self._ids[delivery_id] = None
        if len(self._ids) > self.size:
            self._ids.popitem(last=False)
        return True


def handle(key: str, tenant: str | None, seen: SeenDeliveries, headers: dict[str, str], body: bytes) -> int:
    """The HTTP status to answer a delivery with (the whole receiver logic, without the server)."""
    lower = {name.lower(): value for name, value in headers.items()}  # header names are case-insensitive
    delivery_id = lower.get(DELIVERY_HEADER.lower(), "")
    if not delivery_id or not verify(key, lower.get(SIGNATURE_HEADER.lower(), ""), delivery_id, body):
        return (
            401  # not from offsetstream, altered, or replayed outside the window: not retried by the sender
        )
    notification = json.loads(body)
    if tenant is not None and notification.get("tenant_id") != tenant:
        return 403
    if not seen.first_time(delivery_id):
        return 200  # a resend of one already handled: acknowledge, do nothing
    payload = notification.get("payload", {})
    print(f"{delivery_id} {payload.get('severity')} {payload.get('kind')}: {payload.get('summary')}")  # noqa: T201
    return 204


def serve(port: int, key: str, tenant: str | None) -> None:
    """Listen on ``port`` until interrupted."""
    seen = SeenDeliveries()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = handle(key, tenant, seen, dict(self.headers.items()), body)
            self.send_response(status)
            self.end_headers()

    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()  # noqa: S104 - a server meant to be reached


def main() -> None:
    """Command line: the key (and tenant) from the environment, the port from ``--port``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    serve(args.port, os.environ["OFFSETSTREAM_WEBHOOK_KEY"], os.environ.get("OFFSETSTREAM_WEBHOOK_TENANT"))


if __name__ == "__main__":
    main()
