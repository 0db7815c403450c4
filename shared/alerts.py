"""Alerts for staff on ``remit.alerts.v1``, enveloped the same way by every stage that raises them."""

from contracts.events import AlertRaised
from contracts.topics import ALERTS
from shared import envelopes
from shared.messages import Outgoing


def alert_message(alert: AlertRaised, *, tenant_id: str, account_key: str, causation_id: str) -> Outgoing:
    """The message of an alert, with the alert's own deterministic id as event id, so a timer that raises it
    again, or a replayed input, yields the same message (dropped downstream). Callers build the payload
    through the outbound scrubber first (``shared.phi.safe_alert``) where it quotes a PLB reference."""
    return Outgoing.event(
        ALERTS,
        envelopes.build(
            alert,
            event_id=alert.alert_id,
            event_type="AlertRaised",
            tenant_id=tenant_id,
            account_key=account_key,
            causation_id=causation_id,
        ),
    )
