"""What a notification becomes on the way out, through the outbound scrubber (``shared.phi``): the message
scrubbed at emission, the backbone envelope, and what a channel sends (webhook body, e-mail subject and text),
scrubbed again. Pure functions, shared by the consumer, the timer and the PHI tests."""

from uuid import UUID

from contracts.events import NotificationEmitted
from contracts.topics import NOTIFICATIONS
from services.notification import domain
from services.notification.channels import Outbound
from services.notification.routes import Routes
from shared import envelopes, phi
from shared.messages import Outgoing


def scrubbed(message: domain.Message, scrubber: phi.Scrubber) -> domain.Message:
    """A message through the outbound scrubber: summary and facts with every known token masked."""
    return domain.Message(
        message.kind, message.severity, scrubber.text(message.summary), scrubber.facts(message.facts)
    )


def texts_of(n: NotificationEmitted | domain.Message) -> list[str]:
    """The free text of a notification, where the scrubber looks for tokens: the summary and every fact value
    the scrubber may rewrite. Amounts, ISO dates and UUIDs are left out: ``shared.phi`` never rewrites such a
    value (``phi.EXEMPT``, read here rather than copied), so looking their windows up would only cost a digest
    per window and position (a receivable id alone is about 150 of them per token length of the account)."""
    return [n.summary, *(v for v in n.facts.values() if not phi.EXEMPT.match(v))]


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


def status_for(routes: Routes, tenant: str, kind: str) -> str:
    """What ``deliver`` will make of a notification: ``queued`` for an immediate destination, ``digest`` when
    every destination takes it as a digest, ``no_route`` when none does. Recorded with the notification, so
    the usual delivery writes nothing more to its row."""
    destinations = routes.resolve(tenant, kind)
    if not destinations:
        return "no_route"
    return "queued" if any(d.mode != "digest" for d in destinations) else "digest"
