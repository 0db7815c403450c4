"""Built-in notification channel plugins (entry-point group ``offsetstream.notification_channels``)."""

import asyncio
import random
import time
from dataclasses import dataclass

import aiohttp

from shared.webhook import DELIVERY_HEADER, SIGNATURE_HEADER, sign


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt, as written to the delivery log."""

    attempt: int
    status: str
    http_status: int | None
    latency_ms: float
    error: str | None


class WebhookChannel:
    """POST the notification JSON, HMAC-signed, with the notification id as the idempotency key; retry with
    exponential backoff and jitter; give up after ``max_attempts`` (the caller dead-letters it)."""

    name = "webhook"

    def __init__(self, base_delay: float = 0.2, max_delay: float = 5.0, timeout: float = 10.0) -> None:
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.timeout = timeout

    async def deliver(
        self, url: str, secret: str, delivery_id: str, body: bytes, max_attempts: int
    ) -> list[Attempt]:
        """Try until a 2xx or the give-up limit; return every attempt made (the last one says the outcome)."""
        attempts: list[Attempt] = []
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for number in range(1, max_attempts + 1):
                timestamp = str(int(time.time()))
                headers = {
                    "Content-Type": "application/json",
                    DELIVERY_HEADER: delivery_id,
                    SIGNATURE_HEADER: sign(secret, timestamp, body),
                }
                started = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers=headers) as response:
                        ok = 200 <= response.status < 300
                        attempts.append(
                            Attempt(
                                number,
                                "delivered" if ok else "failed",
                                response.status,
                                (time.perf_counter() - started) * 1000,
                                None if ok else "non-2xx",
                            )
                        )
                except (aiohttp.ClientError, TimeoutError) as exc:
                    attempts.append(
                        Attempt(
                            number, "failed", None, (time.perf_counter() - started) * 1000, type(exc).__name__
                        )
                    )
                if attempts[-1].status == "delivered":
                    return attempts
                if number < max_attempts:
                    delay = min(self.max_delay, self.base_delay * 2 ** (number - 1))
                    await asyncio.sleep(delay * (0.5 + random.random() / 2))  # noqa: S311 - jitter, not crypto
        return attempts
