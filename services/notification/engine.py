"""Notification's orchestration: upstream events → notifications (``notify``), notifications → channels
(``deliver``), and the timer (``tick``: deadline reminders and daily digests through the outbox).

``app.py`` wires these to Faust; the decisions are in ``domain`` (pure), the SQL in ``store``, the attempt loop
in ``delivery``. Notification ids are deterministic, so a replayed input or a re-run timer never creates a
second notification, and the delivery log never lets one destination receive an id twice from us.

PHI never leaves (``shared.phi``): references are quoted by the payer's layout when messages are made, and every
message passes the outbound scrubber twice — in :meth:`Notifier.emit`, before it is stored and published on the
backbone, and in :func:`outbound`, before a channel sends it (which also covers notifications published before
a token was known). The scrubber masks the account's patient control numbers, which ``learn`` records as
digests from the claim and overpayment events.
"""

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg

from contracts.envelope import Envelope, parse_envelope
from contracts.events import (
    AlertRaised,
    InterestAccrued,
    NotificationEmitted,
    OffsetRecorded,
    ReceivableChanged,
)
from contracts.references import ReferenceLayout
from contracts.topics import CLAIM_PAYMENTS, NOTIFICATIONS, OVERPAYMENTS, P, Topic
from services.notification import domain, metrics
from services.notification.channels import NotificationChannel, Outbound
from services.notification.delivery import RetryPolicy, queue_delivery
from services.notification.routes import Routes, load_routes_document
from services.notification.store import NotificationStore
from services.notification.timelines import medicare_fallback
from shared import envelopes, outbox, phi
from shared.effects import after_commit
from shared.ids import account_key, stable_id
from shared.messages import Incoming, Outgoing
from shared.settings import Settings

log = logging.getLogger(__name__)

SERVICE = "notification"
OFFSET_REDUCTIONS = ("ReceivableReduced", "ReceivableSettled")

PoolOf = Callable[[], Awaitable[asyncpg.Pool]]
LayoutOf = Callable[[str, str], ReferenceLayout | None]
"""(tenant, payer) → the payer's reference layout (``policies.config``), None when it cannot be resolved."""


def no_layout(tenant: str, payer: str) -> ReferenceLayout | None:
    """Without a policy resolver every reference is quoted conservatively (``shared.phi``)."""
    return None


def load_routes(settings: Settings, channels: Sequence[str]) -> Routes:
    """The routing file named by ``OFFSETSTREAM_NOTIFICATION_ROUTES``, validated at start-up (a typo stops the
    service rather than silently dropping notifications), or everything to ``webhook_url``."""
    path = settings.notification_routes
    if path is None:
        return Routes.webhook_only(settings.webhook_url)
    doc = load_routes_document(Path(path).read_text(encoding="utf-8"), Path(path).suffix)
    return Routes.parse(doc, channels, settings.webhook_url)


def scrubbed(message: domain.Message, scrubber: phi.Scrubber) -> domain.Message:
    """A message through the outbound scrubber: summary and facts with every known token masked."""
    return domain.Message(
        message.kind, message.severity, scrubber.text(message.summary), scrubber.facts(message.facts)
    )


def texts_of(n: NotificationEmitted | domain.Message) -> list[str]:
    """The free text of a notification, where the scrubber looks for tokens."""
    return [n.summary, *n.facts.values()]


def outbound(
    n: NotificationEmitted, tenant: str, target: str, body: bytes, scrubber: phi.Scrubber
) -> Outbound:
    """What a channel sends for one notification and destination, through the scrubber: the webhook body (the
    backbone envelope, re-masked), the e-mail subject and text."""
    summary, facts = scrubber.text(n.summary), scrubber.facts(n.facts)
    return Outbound(
        notification_id=str(n.notification_id),
        tenant_id=tenant,
        target=target,
        body=scrubber.body(body),
        subject=scrubber.text(domain.subject_line(n.kind, n.severity, facts)),
        text=scrubber.text(domain.render_text(n.kind, n.severity, summary, facts, str(n.notification_id))),
    )


def emitted(cause: UUID, nid: UUID, message: domain.Message, tenant: str, key: str) -> Outgoing:
    """The NotificationEmitted envelope of a message, on the backbone topic (callers scrub it first:
    :meth:`Notifier.emit`)."""
    payload = NotificationEmitted(
        notification_id=nid,
        kind=message.kind,
        severity=message.severity,
        summary=message.summary,
        facts=message.facts,
        related_event_id=cause,
    )
    return Outgoing.event(
        NOTIFICATIONS,
        envelopes.build(
            payload,
            event_id=nid,
            event_type="NotificationEmitted",
            tenant_id=tenant,
            account_key=key,
            causation_id=str(cause),
        ),
    )


@dataclass
class Notifier:
    """Everything the handlers need, resolved once at start-up."""

    settings: Settings
    routes: Routes
    channels: Mapping[str, NotificationChannel]
    timeline_of: domain.TimelineOf
    pool_of: PoolOf
    today: Callable[[], date]
    store: NotificationStore
    layout_of: LayoutOf = no_layout

    async def quote(
        self, conn: asyncpg.Connection, tenant: str, key: str, payer: str, texts: Sequence[str]
    ) -> domain.Quote:
        """How references of this tenant's payer are quoted: by its layout (else conservatively), cut before
        any token of the account that ``texts`` (the event's references) contain."""
        try:
            layout = self.layout_of(tenant, payer)
        except ValueError as exc:  # a policy that cannot be resolved: quote conservatively, keep notifying
            log.warning("reference layout of payer %s unresolved (%s)", payer, type(exc).__name__)
            layout = None
        return domain.quoter(layout, await self.store.tokens_in(conn, tenant, key, texts))

    async def _quote(self, conn: asyncpg.Connection, source: Envelope[Any], payer: str) -> domain.Quote:
        return await self.quote(
            conn, source.tenant_id, source.account_key, payer, phi.quoted_texts(source.payload)
        )

    async def emit(
        self,
        conn: asyncpg.Connection,
        cause: UUID,
        nid: UUID,
        message: domain.Message,
        tenant: str,
        key: str,
        scope: str | None,
    ) -> Outgoing:
        """THE way out for a new notification: scrubbed with the tokens of account ``scope`` (None: every
        account of the tenant, for a digest), then enveloped for the backbone and the notification row."""
        tokens = await self.store.tokens_in(conn, tenant, scope, texts_of(message))
        return emitted(cause, nid, scrubbed(message, phi.Scrubber(None, tokens)), tenant, key)

    # --- what must never leave -----------------------------------------------------------------------------

    async def learn_claim(self, conn: asyncpg.Connection, incoming: Incoming) -> Sequence[Outgoing]:
        """Record the digest of the patient control number a claim names, for its account."""
        return await self._learn(conn, incoming, CLAIM_PAYMENTS, lambda c: [c.patient_control_number])

    async def learn_overpayment(self, conn: asyncpg.Connection, incoming: Incoming) -> Sequence[Outgoing]:
        """Record the digests of the patient control numbers an overpayment names, for its account."""
        return await self._learn(conn, incoming, OVERPAYMENTS, lambda o: list(o.patient_control_numbers))

    async def _learn(
        self,
        conn: asyncpg.Connection,
        incoming: Incoming,
        topic: Topic[P],
        ids_of: Callable[[P], list[str]],
    ) -> Sequence[Outgoing]:
        """Input that does not parse is left to its own consumers' dead-letter topics (detection, matching own
        these topics' meaning); notification only learns from what it can read."""
        try:
            env = topic.parse(incoming.value)
        except ValueError as exc:  # pydantic's ValidationError is one
            log.warning("not learning from %s: %s", incoming.topic, type(exc).__name__)
            return []
        rows = phi.token_rows("id", ids_of(env.payload))
        await self.store.add_tokens(conn, env.tenant_id, env.account_key, rows)
        return []

    # --- upstream events → notifications ----------------------------------------------------------------

    async def on_receivable(
        self, conn: asyncpg.Connection, source: Envelope[ReceivableChanged]
    ) -> Sequence[Outgoing]:
        """A receivable changed: keep its copy and deadlines, notify what the change calls for."""
        return await self._notify(conn, source, await self._on_receivable(conn, source, source.event_type))

    async def on_offset(
        self, conn: asyncpg.Connection, source: Envelope[OffsetRecorded]
    ) -> Sequence[Outgoing]:
        """A PLB pair was explained (applied, unmatched, forwarding balance…)."""
        return await self._notify(conn, source, await self._on_offset(conn, source, source.event_type))

    async def on_interest(
        self, conn: asyncpg.Connection, source: Envelope[InterestAccrued]
    ) -> Sequence[Outgoing]:
        """Interest accrued on a receivable (notified above the configured threshold)."""
        messages = domain.for_interest(
            source.payload,
            self.settings.notification_interest_threshold,
            await self._quote(conn, source, source.payload.payer_id),
        )
        found = [(stable_id(source.event_id, "notification", m.kind), m) for m in messages]
        return await self._notify(conn, source, found)

    async def on_alert(self, conn: asyncpg.Connection, source: Envelope[AlertRaised]) -> Sequence[Outgoing]:
        """An alert for staff."""
        quote = await self._quote(conn, source, source.payload.payer_id)
        found = [
            (stable_id(source.event_id, "notification", m.kind), m)
            for m in domain.for_alert(source.payload, quote)
        ]
        return await self._notify(conn, source, found)

    async def _notify(
        self, conn: asyncpg.Connection, source: Envelope[Any], found: list[tuple[UUID, domain.Message]]
    ) -> list[Outgoing]:
        """Record the notifications an upstream event calls for and publish each once on the backbone."""
        outputs = []
        for nid, message in found:
            tenant, key = source.tenant_id, source.account_key
            out = await self.emit(conn, source.event_id, nid, message, tenant, key, key)
            if await self.store.add_notification(conn, source.tenant_id, _payload(out)):
                after_commit(metrics.NOTIFICATIONS.labels(message.kind).inc)
                outputs.append(out)
        return outputs

    async def _on_receivable(
        self, conn: asyncpg.Connection, source: Envelope[ReceivableChanged], event_type: str
    ) -> list[tuple[UUID, domain.Message]]:
        change, tenant = source.payload, source.tenant_id
        quote = await self._quote(conn, source, change.payer_id)
        await self.store.upsert_receivable(conn, tenant, source.account_key, change)
        timeline = self._timeline(change.policy, change.determination_date, change.identified_on)
        await self.store.set_deadlines(conn, tenant, change.receivable_id, domain.watched(timeline))
        found = [
            (stable_id(source.event_id, "notification", m.kind), m)
            for m in domain.for_receivable(event_type, change, timeline, quote)
        ]
        offset_id = _uuid(source.causation_id)
        if event_type in OFFSET_REDUCTIONS and offset_id is not None:
            done = await self.store.record_balance(conn, tenant, offset_id, change)
            if done is not None:
                found.append(_applied(done, quote))
        return found

    async def _on_offset(
        self, conn: asyncpg.Connection, source: Envelope[OffsetRecorded], event_type: str
    ) -> list[tuple[UUID, domain.Message]]:
        offset = source.payload
        quote = await self._quote(conn, source, offset.payer_id)
        found = [
            (stable_id(source.event_id, "notification", m.kind), m)
            for m in domain.for_offset(event_type, offset, quote)
        ]
        if offset.bucket == "allocated":
            for index in range(len(offset.allocations)):
                done = await self.store.record_allocation(
                    conn, source.tenant_id, source.account_key, offset, index
                )
                if done is not None:
                    found.append(_applied(done, quote))
        return found

    def _timeline(
        self, policy: str, determination: date, identified_on: date | None
    ) -> list[domain.Milestone]:
        try:
            return self.timeline_of(policy, determination, identified_on)
        except (
            Exception
        ) as exc:  # a broken policy plugin must not stop notifications; fall back to Medicare's
            log.warning(
                "payer policy %r timeline failed (%s); using DOMAIN.md §3 dates", policy, type(exc).__name__
            )
            return medicare_fallback(determination, identified_on)

    # --- notifications → channels -------------------------------------------------------------------------

    async def deliver(self, conn: asyncpg.Connection, incoming: Incoming) -> Sequence[Outgoing]:
        """Queue one notification for each immediate destination (the dispatcher in ``delivery`` sends it once
        per id and dead-letters what gives up) and for digests. What is sent passes the scrubber again
        (:func:`outbound`)."""
        env = NOTIFICATIONS.parse(incoming.value)
        n, tenant = env.payload, env.tenant_id
        destinations = self.routes.resolve(tenant, n.kind)
        outputs: list[Outgoing] = []
        statuses: list[str] = []
        scope = None if n.kind == domain.DAILY_DIGEST else env.account_key
        scrubber = phi.Scrubber(None, await self.store.tokens_in(conn, tenant, scope, texts_of(n)))
        for dest in destinations:
            if dest.mode == "digest":
                await self.store.add_digest_item(conn, tenant, self.today(), n)
                statuses.append("digest")
                continue
            message = outbound(n, tenant, dest.target, incoming.value, scrubber)
            # --- delivery hook (issue 16 §3, services/notification/delivery.py) ---------------------------
            # Queued with this transaction, not sent here: the dispatcher drains each destination on its own,
            # dead-letters what gives up and sets the status, so a slow receiver never holds this consumer.
            await queue_delivery(conn, dest.channel, message, incoming)
            statuses.append("queued")
        await self.store.set_status(conn, tenant, n.notification_id, _overall(statuses))
        return outputs

    @property
    def retry_policy(self) -> RetryPolicy:
        """Give-up limit and back-off from settings."""
        s = self.settings
        return RetryPolicy(
            s.webhook_max_attempts, s.notification_backoff_seconds, s.notification_backoff_max_seconds
        )

    # --- the timer ------------------------------------------------------------------------------------------

    async def tick(self, conn: asyncpg.Connection, today: date) -> int:
        """Queue deadline reminders and closed days' digests in the outbox; returns how many were queued."""
        queued = 0
        async with conn.transaction():
            for tenant, key, deadline in await self.store.due_deadlines(
                conn, today, self.settings.notification_lead_days
            ):
                if not domain.deadline_due(deadline, today, self.settings.notification_lead_days):
                    continue
                nid = stable_id(
                    tenant, deadline.receivable_id, deadline.milestone, deadline.due_on, "deadline"
                )
                quote = await self.quote(conn, tenant, key, deadline.payer_id, [deadline.reference])
                message = domain.deadline_approaching(deadline, today, quote)
                queued += await self._queue(conn, tenant, key, nid, message, key)
                await self.store.mark_deadline(conn, tenant, deadline, nid)
        for tenant, day in await self.store.days_to_digest(conn, today):
            async with conn.transaction():
                nid = stable_id("digest", tenant, day.isoformat())
                items = await self.store.claim_digest(conn, tenant, day, nid)
                if items:
                    message = domain.compose_digest(day, items)
                    digest_key = account_key(tenant, "digest", "")
                    queued += await self._queue(conn, tenant, digest_key, nid, message, None)
                    after_commit(metrics.DIGESTS.inc)
        return queued

    async def _queue(
        self,
        conn: asyncpg.Connection,
        tenant: str,
        key: str,
        nid: UUID,
        message: domain.Message,
        scope: str | None,
    ) -> int:
        out = await self.emit(conn, nid, nid, message, tenant, key, scope)
        if not await self.store.add_notification(conn, tenant, _payload(out)):
            return 0
        after_commit(metrics.NOTIFICATIONS.labels(message.kind).inc)
        await outbox.add(conn, SERVICE, str(nid), out)
        return 1

    async def close(self) -> None:
        """Release the channels' connections."""
        for channel in self.channels.values():
            await channel.close()


def _payload(out: Outgoing) -> NotificationEmitted:
    """The payload back from an outgoing envelope (the row and the message are the same bytes' facts)."""
    return parse_envelope(out.value, NotificationEmitted).payload


def _uuid(text: str) -> UUID | None:
    try:
        return UUID(text)
    except ValueError:
        return None


def _applied(done: domain.OffsetApplication, quote: domain.Quote) -> tuple[UUID, domain.Message]:
    return (
        stable_id(done.offset_id, "offset_applied", done.receivable_id),
        domain.offset_applied(done, quote),
    )


def _overall(statuses: list[str]) -> str:
    if not statuses:
        return "no_route"
    if "queued" in statuses:  # delivery hook: the dispatcher sets delivered/failed when the queue is done
        return "queued"
    if "failed" in statuses:
        return "failed"
    return "delivered" if "delivered" in statuses else "digest"
