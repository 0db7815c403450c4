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
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable
from urllib.parse import urlsplit

import aiohttp
from pydantic import SecretStr

from services.notification.routes import ANY, load_routes_document
from shared.settings import Settings
from shared.webhook import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TENANT_HEADER,
    WebhookKeys,
    WebhookSecretError,
    sign,
)

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


class SmtpSecurityError(ValueError):
    """SMTP settings that would send credentials in clear."""


def webhook_keys(settings: Settings) -> WebhookKeys:
    """The signing keys the settings name (master and per-tenant)."""
    return WebhookKeys(settings.webhook_secret, dict(settings.webhook_secrets))


def webhook_tenants(settings: Settings) -> set[str | None]:
    """Tenants whose notifications may go to a webhook (None: any tenant — the default or ``*`` routes, or no
    routing file and a ``webhook_url``)."""
    path = settings.notification_routes
    if path is None:
        return {None} if settings.webhook_url else set()
    doc = load_routes_document(Path(path).read_text(encoding="utf-8"), Path(path).suffix)
    if not isinstance(doc, dict):
        return set()  # the routing file's own validation reports it

    def sends_webhooks(entries: Any) -> bool:
        return isinstance(entries, list) and any(
            isinstance(e, dict) and e.get("channel") == "webhook" for e in entries
        )

    found: set[str | None] = {None} if sends_webhooks(doc.get("default")) else set()
    tenants = doc.get("tenants")
    for tenant, kinds in (tenants if isinstance(tenants, dict) else {}).items():
        if isinstance(kinds, dict) and any(sends_webhooks(entries) for entries in kinds.values()):
            found.add(None if tenant == ANY else str(tenant))
    return found


def check_webhook_keys(settings: Settings) -> WebhookKeys:
    """Refuse to start with a weak key, or with webhooks routed to a tenant that has no key (raises
    :class:`~shared.webhook.WebhookSecretError`, naming settings, never values)."""
    keys = webhook_keys(settings)
    keys.check()
    missing = [t for t in webhook_tenants(settings) if not keys.has_key(t)]
    if None in missing:
        raise WebhookSecretError(
            "webhooks are routed for every tenant (webhook_url or a default/'*' webhook route) but "
            "OFFSETSTREAM_WEBHOOK_SECRET is not set; set it (each tenant's key is derived from it) — "
            "`make run` generates one for its own stack"
        )
    if missing:
        raise WebhookSecretError(
            f"webhooks are routed for tenant(s) {sorted(str(t) for t in missing)} without a key: set "
            "OFFSETSTREAM_WEBHOOK_SECRET or list them in OFFSETSTREAM_WEBHOOK_SECRETS"
        )
    return keys


class WebhookChannel:
    """POST the notification JSON signed with the tenant's own key: HMAC-SHA256 over
    ``<timestamp>.<delivery id>.<body>`` (``X-Offsetstream-Signature``), with the notification id as the
    receiver's idempotency key (``X-Offsetstream-Delivery``) and the tenant in ``X-Offsetstream-Tenant``
    (docs/webhooks.md). 5xx, 408/425/429, network errors and timeouts are retried; other 4xx are not (the
    receiver refused this request — a wrong key or URL — and will refuse it again). Redirects are never
    followed: a 3xx is a failed attempt (retried, then dead-lettered), so a signed body never goes to a host
    nobody configured. Connect and read are bounded by their own timeouts."""

    name = "webhook"

    def __init__(self) -> None:
        self.keys = WebhookKeys()
        self.connect_timeout, self.timeout = 5.0, 10.0
        self.connections = 64
        self._session: aiohttp.ClientSession | None = None

    def configure(self, settings: Settings) -> None:
        """Signing keys (checked: a service with weak or missing keys does not start) and timeouts."""
        self.keys = check_webhook_keys(settings)
        self.connect_timeout = settings.notification_connect_timeout_seconds
        self.timeout = settings.notification_timeout_seconds
        self.connections = settings.notification_delivery_concurrency

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(
                total=self.connect_timeout + self.timeout,
                connect=self.connect_timeout,
                sock_connect=self.connect_timeout,
                sock_read=self.timeout,
            )
            connector = aiohttp.TCPConnector(limit=self.connections)
            self._session = aiohttp.ClientSession(timeout=timeout, connector=connector)
        return self._session

    async def send(self, outbound: Outbound) -> Outcome:
        """One signed POST."""
        key = self.keys.key(outbound.tenant_id)
        if key is None:
            return Outcome("rejected", None, f"no webhook key for tenant {outbound.tenant_id!r}")
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            DELIVERY_HEADER: outbound.notification_id,
            TENANT_HEADER: outbound.tenant_id,
            SIGNATURE_HEADER: sign(key, timestamp, outbound.notification_id, outbound.body),
        }
        try:
            async with self._open().post(
                outbound.target, data=outbound.body, headers=headers, allow_redirects=False
            ) as response:
                code, location = response.status, response.headers.get("Location", "")
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Outcome("retry", None, type(exc).__name__)
        if 200 <= code < 300:
            return Outcome("delivered", code)
        if 300 <= code < 400:
            where = urlsplit(location).netloc or "the same host"
            return Outcome("retry", code, f"HTTP {code} redirect to {where} not followed")
        if code >= 500 or code in RETRYABLE_HTTP:
            return Outcome("retry", code, f"HTTP {code}")
        return Outcome("rejected", code, f"HTTP {code}")

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()


class EmailChannel:
    """Plain-text e-mail through an SMTP relay (stdlib ``smtplib`` in a worker thread, so the event loop keeps
    consuming), upgraded with STARTTLS by default (certificate verified); a login is only ever sent over TLS. ``Message-ID`` is derived from the notification id and ``X-Offsetstream-Delivery`` carries it,
    so mail systems and people can recognise a resend. 4xx replies and connection errors are retried; 5xx
    replies (unknown recipient, policy) are not."""

    name = "email"

    def __init__(self) -> None:
        self.host, self.port, self.sender = "127.0.0.1", 25, "offsetstream@localhost"
        self.starttls, self.timeout = True, 10.0
        self.ca_file: Path | None = None
        self.username: str | None = None
        self.password: SecretStr | None = None

    def configure(self, settings: Settings) -> None:
        """Relay, sender, TLS and optional login; a login without STARTTLS is refused (credentials are only
        ever sent over TLS), so the service does not start with it."""
        self.host, self.port = settings.notification_smtp_host, settings.notification_smtp_port
        self.sender, self.starttls = settings.notification_email_from, settings.notification_smtp_starttls
        self.ca_file = settings.notification_smtp_ca_file
        self.username, self.password = (
            settings.notification_smtp_username or None,
            settings.notification_smtp_password,
        )
        if self.username and not self.starttls:
            raise SmtpSecurityError(
                "OFFSETSTREAM_NOTIFICATION_SMTP_USERNAME is set but STARTTLS is off: credentials are only sent "
                "over TLS; turn OFFSETSTREAM_NOTIFICATION_SMTP_STARTTLS back on or remove the login"
            )
        self.timeout = settings.notification_timeout_seconds

    def tls_context(self) -> ssl.SSLContext:
        """Certificate and host name verified, against ``ca_file`` when given."""
        return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)

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
                    smtp.starttls(context=self.tls_context())
                if self.username:  # configure() guarantees TLS is up by now
                    secret = self.password.get_secret_value() if self.password else ""
                    smtp.login(self.username, secret)
                refused = smtp.send_message(self.message(outbound))
        except smtplib.SMTPNotSupportedError:  # no STARTTLS offered: nothing is sent in clear
            return Outcome("rejected", None, "relay does not offer STARTTLS")
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
