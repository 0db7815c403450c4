"""Notification's orchestration: upstream events → notifications (``notify``), notifications → channels
(``deliver``), and the timer (``tick``: deadline reminders and daily digests through the outbox).

``app.py`` wires these to Faust; the decisions are in ``domain`` (pure), the SQL in ``store``, the attempt loop
in ``delivery``, what leaves in ``outbound``, the learning of tokens in ``learn``. Every handler takes a batch and
sends a constant number of statements for it (issue #18.2). Notification ids are deterministic, so a replayed input or a re-run timer never creates a
second notification, and the delivery log never lets one destination receive an id twice from us.

PHI never leaves (``shared.phi``): references are quoted by the payer's layout when messages are made, and every
message passes the outbound scrubber twice — in :meth:`Notifier.emit`, before it is stored and published on the
backbone, and in ``outbound.outbound``, before a channel sends it (which also covers notifications published before
a token was known). The scrubber masks the account's patient control numbers, which ``learn`` records as
digests from intake's patient tokens events and the overpayment events. Delivery's scrubber looks tokens up again
only when the emission scan masked something or the account has learnt a digest since (its token generation,
``store.clean_since_emitted``); otherwise the stored text is the one already found clean against every token.
"""

import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
from pydantic import ValidationError

from contracts.envelope import Envelope
from contracts.events import (
    AlertRaised,
    InterestAccrued,
    NotificationEmitted,
    OffsetRecorded,
    ReceivableChanged,
)
from contracts.references import ReferenceLayout
from contracts.topics import NOTIFICATIONS
from services.notification import domain, metrics
from services.notification.channels import NotificationChannel, Outbound
from services.notification.delivery import RetryPolicy, queue_deliveries
from services.notification.outbound import emitted, outbound, scrubbed, status_for, texts_of
from services.notification.routes import Routes, load_routes_document
from services.notification.rows import (
    AllocationHalf,
    BalanceHalf,
    Half,
    NewNotification,
    ReceivableRow,
    TokenScope,
)
from services.notification.store import NotificationStore
from services.notification.timelines import medicare_fallback
from shared import outbox, phi
from shared.effects import after_commit
from shared.ids import account_key, stable_id
from shared.messages import Incoming, Outgoing, PerInput, refusal
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


@dataclass(frozen=True)
class Emission:
    """A notification to record and publish: its cause, id, message, tenant, account key and the scope whose
    tokens scrub it (None: every account of the tenant, for a digest)."""

    cause: UUID
    nid: UUID
    message: domain.Message
    tenant: str
    key: str
    scope: str | None


Found = list[tuple[UUID, domain.Message]]
"""The notifications one upstream event calls for, with their ids."""


@dataclass
class Notifier:
    """Everything the handlers need, resolved once at start-up.

    The handlers take a whole batch (``on_upstream`` the four upstream topics mixed, ``Stage.handle_batches``)
    and send a constant number of statements per batch (issue #18.2): tokens of every account in two queries,
    each table written once with ``unnest``. Each input still sees what the inputs before it in the batch did, as one by one: the only
    state shared across inputs of a batch is the offset/receivable join and the receivables copy, and both
    are written keeping, per row, the first completion and the last state."""

    settings: Settings
    routes: Routes
    channels: Mapping[str, NotificationChannel]
    timeline_of: domain.TimelineOf
    pool_of: PoolOf
    today: Callable[[], date]
    store: NotificationStore
    layout_of: LayoutOf = no_layout
    queued: Callable[[Collection[tuple[str, str]]], None] = lambda destinations: None
    """Told, after the commit, which destinations (channel, target) ``deliver`` queued jobs for: the
    dispatcher's :meth:`~services.notification.delivery.Dispatcher.wake`, so a queue is drained when it is
    filled rather than found by polling."""

    def _layout(self, tenant: str, payer: str) -> ReferenceLayout | None:
        try:
            return self.layout_of(tenant, payer)
        except ValueError as exc:  # a policy that cannot be resolved: quote conservatively, keep notifying
            log.warning("reference layout of payer %s unresolved (%s)", payer, type(exc).__name__)
            return None

    async def quotes(
        self, conn: asyncpg.Connection, asks: Sequence[tuple[str, str, str, Sequence[str]]]
    ) -> list[domain.Quote]:
        """How references are quoted for each (tenant, account key, payer, texts): by the payer's layout (else
        conservatively), cut before any token of the account that the texts (the event's references)
        contain. Two queries for all of them."""
        tokens = await self.store.tokens_in(conn, [TokenScope(t, k, tuple(texts)) for t, k, _, texts in asks])
        return [
            domain.quoter(self._layout(tenant, payer), known)
            for (tenant, _, payer, _), known in zip(asks, tokens, strict=True)
        ]

    async def _quotes_of(
        self, conn: asyncpg.Connection, sources: Sequence[Envelope[Any]], payers: Sequence[str]
    ) -> list[domain.Quote]:
        return await self.quotes(
            conn,
            [
                (s.tenant_id, s.account_key, payer, phi.quoted_texts(s.payload))
                for s, payer in zip(sources, payers, strict=True)
            ],
        )

    async def emit(self, conn: asyncpg.Connection, emissions: Sequence[Emission]) -> list[Outgoing | None]:
        """THE way out for new notifications: each scrubbed with the tokens of its scope, enveloped for the
        backbone and recorded (one statement); None for one already recorded (a replay, or the same id earlier
        in the batch)."""
        scans = await self.store.scan(
            conn, [TokenScope(e.tenant, e.scope, tuple(texts_of(e.message))) for e in emissions]
        )
        made = [
            scrubbed(e.message, phi.Scrubber(None, found.tokens))
            for e, found in zip(emissions, scans, strict=True)
        ]
        outs = [emitted(e.cause, e.nid, m, e.tenant, e.key) for e, m in zip(emissions, made, strict=True)]
        rows = [
            NewNotification(
                e.tenant,
                e.nid,
                m.kind,
                m.severity,
                m.summary,
                dict(m.facts),
                e.cause,
                status_for(self.routes, e.tenant, m.kind),
                _clean_at(e, m, found.generation),
            )
            for e, m, found in zip(emissions, made, scans, strict=True)
        ]
        new = await self.store.add_notifications(conn, rows)
        given: list[Outgoing | None] = []
        kinds: Counter[str] = Counter()
        for e, out in zip(emissions, outs, strict=True):
            if e.nid in new:
                new.discard(e.nid)
                kinds[e.message.kind] += 1
                given.append(out)
            else:
                given.append(None)
        for kind, count in kinds.items():  # one deferred increment per kind, not per notification
            after_commit(partial(metrics.NOTIFICATIONS.labels(kind).inc, count))
        return given

    async def _notify(
        self, conn: asyncpg.Connection, sources: Sequence[Envelope[Any]], found: Sequence[Found]
    ) -> list[list[Outgoing]]:
        """Record the notifications each upstream event calls for and publish each once on the backbone."""
        emissions = [
            (position, Emission(s.event_id, nid, m, s.tenant_id, s.account_key, s.account_key))
            for position, (s, messages) in enumerate(zip(sources, found, strict=True))
            for nid, m in messages
        ]
        outputs: list[list[Outgoing]] = [[] for _ in sources]
        given = await self.emit(conn, [e for _, e in emissions])
        for (position, _), out in zip(emissions, given, strict=True):
            if out is not None:
                outputs[position].append(out)
        return outputs

    # --- upstream events → notifications (batch handlers) ------------------------------------------------

    async def on_upstream(
        self, conn: asyncpg.Connection, sources: Sequence[Envelope[Any]]
    ) -> list[list[Outgoing]]:
        """Offsets, receivable changes, interest and alerts, mixed in the order consumed (their records
        alternate: matching publishes an offset and the receivable change it caused together): what each
        calls for is notified once, in a constant number of statements for the batch — the token scans
        (quoting the events' references, then scrubbing the messages made), the receivables' copies and
        deadlines (the last change of a receivable wins, as one by one), the "offset applied" join (its halves
        laid on in order, so the half that arrives second announces it, as one by one) and the insert of the
        notifications."""
        quotes = await self._quotes_of(conn, sources, [s.payload.payer_id for s in sources])
        changes = [s for s in sources if isinstance(s.payload, ReceivableChanged)]
        await self.store.upsert_receivables(conn, [_receivable_row(s) for s in changes])
        found: list[Found] = []
        deadlines: list[tuple[str, UUID, list[domain.Milestone]]] = []
        halves: list[tuple[int, Half]] = []
        for position, (source, quote) in enumerate(zip(sources, quotes, strict=True)):
            payload = source.payload
            if isinstance(payload, ReceivableChanged):
                timeline = self._timeline(payload.policy, payload.determination_date, payload.identified_on)
                # A closed receivable has no deadline left to remind of; its next change rewrites them.
                watched = domain.watched(timeline) if payload.status in domain.OPEN_STATUSES else []
                deadlines.append((source.tenant_id, payload.receivable_id, watched))
                made = domain.for_receivable(source.event_type, payload, timeline, quote)
                offset_id = _uuid(source.causation_id)
                if source.event_type in OFFSET_REDUCTIONS and offset_id is not None:
                    half = BalanceHalf(
                        source.tenant_id, offset_id, payload.receivable_id, payload.balance, payload.status
                    )
                    halves.append((position, half))
            elif isinstance(payload, OffsetRecorded):
                made = domain.for_offset(source.event_type, payload, quote)
                if payload.bucket == "allocated":
                    halves += [(position, _allocation(source, a)) for a in payload.allocations]
            elif isinstance(payload, InterestAccrued):
                made = domain.for_interest(payload, self.settings.notification_interest_threshold, quote)
            elif isinstance(payload, AlertRaised):
                made = domain.for_alert(payload, quote)
            else:
                raise TypeError(f"notification has no rule for {type(payload).__name__} events")
            found.append([(stable_id(source.event_id, "notification", m.kind), m) for m in made])
        await self.store.set_deadlines(conn, deadlines)
        for at, app in await self.store.join(conn, [h for _, h in halves]):
            position = halves[at][0]
            found[position].append(_applied(app, quotes[position]))
        return await self._notify(conn, sources, found)

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

    async def deliver(self, conn: asyncpg.Connection, batch: Sequence[Incoming]) -> list[PerInput]:
        """Queue each notification of the batch for each immediate destination (the dispatcher in ``delivery``
        sends it once per id and dead-letters what gives up) and for digests: tokens in two queries, the
        digest items, the queue and the statuses in one statement each. What is sent passes the scrubber
        again (:func:`outbound`). A record that does not parse is a dead letter of its own."""
        given: list[PerInput] = []
        parsed: list[tuple[int, Incoming, Envelope[NotificationEmitted]]] = []
        for position, incoming in enumerate(batch):
            try:
                parsed.append((position, incoming, NOTIFICATIONS.parse(incoming.value)))
            except ValidationError as exc:
                given.append(refusal(exc))
                continue
            given.append([])
        clean = await self.store.clean_since_emitted(
            conn,
            [
                (env.tenant_id, env.payload.notification_id, env.account_key)
                for _, _, env in parsed
                if env.payload.kind != domain.DAILY_DIGEST
            ],
        )
        unclean = [env for _, _, env in parsed if env.payload.notification_id not in clean]
        found = await self.store.tokens_in(
            conn,
            [
                TokenScope(
                    env.tenant_id,
                    None if env.payload.kind == domain.DAILY_DIGEST else env.account_key,
                    tuple(texts_of(env.payload)),
                )
                for env in unclean
            ],
        )
        by_id = {env.payload.notification_id: known for env, known in zip(unclean, found, strict=True)}
        tokens = [by_id.get(env.payload.notification_id, phi.NO_TOKENS) for _, _, env in parsed]
        skipped, scanned = len(parsed) - len(unclean), len(unclean)
        after_commit(lambda: metrics.DELIVERY_SCANS.labels("skipped").inc(skipped))
        after_commit(lambda: metrics.DELIVERY_SCANS.labels("scanned").inc(scanned))
        today = self.today()
        items: list[tuple[str, date, UUID, str, str, str]] = []
        jobs: list[tuple[str, Outbound, Incoming]] = []
        statuses: list[tuple[str, UUID, str]] = []
        for (_, incoming, env), known in zip(parsed, tokens, strict=True):
            n, tenant = env.payload, env.tenant_id
            scrubber = phi.Scrubber(None, known)
            for dest in self.routes.resolve(tenant, n.kind):
                if dest.mode == "digest":
                    items.append((tenant, today, n.notification_id, n.kind, n.severity, n.summary))
                else:
                    # Queued with this transaction, not sent here: the dispatcher drains each destination on
                    # its own, dead-letters what gives up and sets the status (issue 16 §3).
                    jobs.append(
                        (dest.channel, outbound(n, tenant, dest.target, incoming.value, scrubber), incoming)
                    )
            statuses.append((tenant, n.notification_id, status_for(self.routes, tenant, n.kind)))
        await self.store.add_digest_items(conn, items)
        await queue_deliveries(conn, jobs)
        await self.store.set_statuses(conn, statuses)
        if jobs:
            destinations = {(channel, out.target) for channel, out, _ in jobs}
            after_commit(lambda: self.queued(destinations))
        return given

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
        lead = self.settings.notification_lead_days
        queued = 0
        async with conn.transaction():
            due = [
                d
                for d in await self.store.due_deadlines(conn, today, lead)
                if domain.deadline_due(d.deadline, today, lead)
            ]
            quotes = await self.quotes(
                conn, [(d.tenant_id, d.account_key, d.deadline.payer_id, [d.deadline.reference]) for d in due]
            )
            emissions = []
            for d, quote in zip(due, quotes, strict=True):
                dl = d.deadline
                nid = stable_id(d.tenant_id, dl.receivable_id, dl.milestone, dl.due_on, "deadline")
                message = domain.deadline_approaching(dl, today, quote)
                emissions.append(Emission(nid, nid, message, d.tenant_id, d.account_key, d.account_key))
            queued += await self._queue(conn, emissions)
            await self.store.mark_deadlines(
                conn, [(d.tenant_id, d.deadline, e.nid) for d, e in zip(due, emissions, strict=True)]
            )
        for digest in await self.store.days_to_digest(conn, today):
            tenant, day = digest.tenant_id, digest.day
            async with conn.transaction():
                nid = stable_id("digest", tenant, day.isoformat())
                items = await self.store.claim_digest(conn, tenant, day, nid)
                if items:
                    message = domain.compose_digest(day, items)
                    digest_key = account_key(tenant, "digest", "")
                    queued += await self._queue(conn, [Emission(nid, nid, message, tenant, digest_key, None)])
                    after_commit(metrics.DIGESTS.inc)
        return queued

    async def _queue(self, conn: asyncpg.Connection, emissions: Sequence[Emission]) -> int:
        """Record new notifications of the timer and queue them in the outbox; how many were new."""
        if not emissions:
            return 0
        queued = 0
        for e, out in zip(emissions, await self.emit(conn, emissions), strict=True):
            if out is not None:
                await outbox.add(conn, SERVICE, str(e.nid), out)
                queued += 1
        return queued

    async def close(self) -> None:
        """Release the channels' connections."""
        for channel in self.channels.values():
            await channel.close()


def _clean_at(emission: Emission, made: domain.Message, generation: int | None) -> int | None:
    """The token generation to record with a notification so delivery may skip its scan: only when the scan
    covered the account the envelope names (not a tenant-wide digest) and masked nothing, so the stored text
    is exactly the text that was scanned (a masked text can show a short token as a whole word only after
    masking, which that scan never looked for)."""
    if generation is None or emission.scope != emission.key or made != emission.message:
        return None
    return generation


def _receivable_row(source: Envelope[ReceivableChanged]) -> ReceivableRow:
    change = source.payload
    return ReceivableRow(
        source.tenant_id,
        change.receivable_id,
        source.account_key,
        change.payer_id,
        change.reference,
        change.policy,
        change.status,
        change.determination_date,
        change.balance,
        change.paused,
    )


def _allocation(source: Envelope[OffsetRecorded], a: Any) -> AllocationHalf:
    offset = source.payload
    return AllocationHalf(
        source.tenant_id,
        offset.offset_id,
        a.receivable_id,
        source.account_key,
        a.reference,
        offset.trace_number,
        offset.payment_date,
        offset.reason_code,
        a.to_interest,
        a.to_principal,
    )


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
