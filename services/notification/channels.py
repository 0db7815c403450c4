"""Built-in notification channel plugins (entry-point group ``offsetstream.notification_channels``).

A channel makes ONE attempt and says how it went; retries, back-off, give-up and the delivery log live in
``services.notification.delivery`` so every channel — built-in or third-party — gets the same guarantees and
each attempt can be committed to the log the moment it finishes.

``remit.notifications.v1`` is deliberately not a channel: it is the backbone. Every notification is published
there exactly once (transactionally with its row), downstream systems subscribe to it directly, and the
delivery agent reads it to fan out to the channels below. A routing rule must not be able to switch it off.
"""

import asyncio
import smtplib
import time
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Literal, Protocol, runtime_checkable

import aiohttp

from shared.settings import Settings
from shared.webhook import DELIVERY_HEADER, SIGNATURE_HEADER, sign

Status = Literal["delivered", "retry", "rejected"]


@dataclass(frozen=True)
class Outbound:
    """One notification for one destination. ``body`` is the NotificationEmitted envelope JSON."""

    notification_id: str
    tenant_id: str
    target: str
    body: bytes
    subject: str
    text: str


@dataclass(frozen=True)
class Outcome:
    """How one attempt went: ``retry`` for transient failures, ``rejected`` when retrying cannot help."""

    status: Status
    code: int | None = None
    error: str | None = None


@runtime_checkable
class NotificationChannel(Protocol):
    """The interface every channel plugin implements."""

    @property
    def name(self) -> str:
        """Plugin name, as in the entry point and in the routing file."""

    def configure(self, settings: Settings) -> None:
        """Read what the channel needs (secrets, hosts, timeouts) once, at start-up."""

    async def send(self, outbound: Outbound) -> Outcome:
        """Make one attempt; never sleep or retry here."""

    async def close(self) -> None:
        """Release connections."""


RETRYABLE_HTTP = frozenset({408, 425, 429})


class WebhookChannel:
    """POST the notification JSON signed with HMAC-SHA256 over ``<timestamp>.<body>``
    (``X-Offsetstream-Signature``), with the notification id as the receiver's idempotency key
    (``X-Offsetstream-Delivery``). 5xx, 408/425/429 and network errors are retried; other 4xx are not (the
    receiver refused this request — a wrong secret or URL — and will refuse it again)."""

    name = "webhook"

    def __init__(self) -> None:
        self.secret = ""
        self.timeout = 10.0
        self._session: aiohttp.ClientSession | None = None

    def configure(self, settings: Settings) -> None:
        """Signing key and timeout."""
        self.secret = settings.webhook_secret
        self.timeout = settings.notification_timeout_seconds

    async def send(self, outbound: Outbound) -> Outcome:
        """One signed POST."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            DELIVERY_HEADER: outbound.notification_id,
            SIGNATURE_HEADER: sign(self.secret, timestamp, outbound.body),
        }
        try:
            async with self._session.post(outbound.target, data=outbound.body, headers=headers) as response:
                code = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Outcome("retry", None, type(exc).__name__)
        if 200 <= code < 300:
            return Outcome("delivered", code)
        if code >= 500 or code in RETRYABLE_HTTP:
            return Outcome("retry", code, f"HTTP {code}")
        return Outcome("rejected", code, f"HTTP {code}")

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()


class EmailChannel:
    """Plain-text e-mail through an SMTP relay (stdlib ``smtplib`` in a worker thread, so the event loop keeps
    consuming). ``Message-ID`` is derived from the notification id and ``X-Offsetstream-Delivery`` carries it,
    so mail systems and people can recognise a resend. 4xx replies and connection errors are retried; 5xx
    replies (unknown recipient, policy) are not."""

    name = "email"

    def __init__(self) -> None:
        self.host, self.port, self.sender = "127.0.0.1", 25, "offsetstream@localhost"
        self.starttls, self.timeout = False, 10.0
        self.username: str | None = None
        self.password: str | None = None

    def configure(self, settings: Settings) -> None:
        """Relay, sender and optional login."""
        self.host, self.port = settings.notification_smtp_host, settings.notification_smtp_port
        self.sender, self.starttls = settings.notification_email_from, settings.notification_smtp_starttls
        self.username, self.password = (
            settings.notification_smtp_username,
            settings.notification_smtp_password,
        )
        self.timeout = settings.notification_timeout_seconds

    def message(self, outbound: Outbound) -> EmailMessage:
        """The e-mail for one notification."""
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = outbound.target
        msg["Subject"] = outbound.subject
        msg["Message-ID"] = f"<{outbound.notification_id}@offsetstream>"
        msg[DELIVERY_HEADER] = outbound.notification_id
        msg.set_content(outbound.text)
        return msg

    def _send_blocking(self, outbound: Outbound) -> Outcome:
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls()
                if self.username:
                    smtp.login(self.username, self.password or "")
                refused = smtp.send_message(self.message(outbound))
        except smtplib.SMTPResponseException as exc:
            status: Status = "rejected" if exc.smtp_code >= 500 else "retry"
            return Outcome(status, exc.smtp_code, f"SMTP {exc.smtp_code}")
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            status = "rejected" if all(c >= 500 for c in codes) else "retry"
            return Outcome(status, codes[0] if codes else None, "recipient refused")
        except (smtplib.SMTPException, OSError) as exc:
            return Outcome("retry", None, type(exc).__name__)
        if refused:
            return Outcome("retry", None, "recipient refused")
        return Outcome("delivered", 250)

    async def send(self, outbound: Outbound) -> Outcome:
        """One SMTP session in a worker thread."""
        return await asyncio.to_thread(self._send_blocking, outbound)

    async def close(self) -> None:
        """Nothing pooled: one SMTP session per message."""
