"""Webhook signing, shared by the sender (notification channel) and receivers (demo, tests, customers' docs).

Header ``X-Offsetstream-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>``; header
``X-Offsetstream-Delivery: <notification id>`` is the idempotency key a receiver dedupes on.
"""

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Offsetstream-Signature"
DELIVERY_HEADER = "X-Offsetstream-Delivery"
MAX_SKEW_SECONDS = 300


def _mac(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header value for a body sent at ``timestamp``."""
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def verify(secret: str, header: str, body: bytes, now: float | None = None) -> bool:
    """Check a signature header; reject a timestamp more than five minutes away (replayed requests)."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp, given = parts["t"], parts["v1"]
        skew = abs((now or time.time()) - int(timestamp))
    except (KeyError, ValueError):
        return False
    return skew <= MAX_SKEW_SECONDS and hmac.compare_digest(_mac(secret, timestamp, body), given)
