"""The matching stage (wiring only): PLB pairs, overpayments, interest and staff actions in; offsets,
receivable changes and alerts out; a forwarding-balance check and the ledger gauges on timers. What each input
does to the ledger is ``engine``; pure rules ``domain``; SQL ``store``.
"""

import logging
from datetime import timedelta

from contracts.events import AlertRaised
from contracts.topics import ALERTS, INTEREST, OVERPAYMENTS, PROVIDER_ADJUSTMENTS, STAFF_ACTIONS
from services.matching import metrics, store
from services.matching.engine import on_adjustment, on_interest, on_overpayment, on_staff_action
from services.matching.ledger import POLICIES, POLICY, reference_layout
from shared import envelopes, outbox, phi
from shared.clock import today
from shared.ids import stable_id
from shared.messages import Outgoing
from shared.stream import Stage

log = logging.getLogger(__name__)

stage = Stage("matching")
app = stage.app
__all__ = ["POLICY", "app", "stage"]


async def check_forwarding_balances() -> None:
    """Alert once per forwarding balance still open after the configured days."""
    day = today(stage.settings)
    cutoff = day - timedelta(days=stage.settings.forwarding_balance_days)
    pool = await stage.pool()
    async with pool.acquire() as conn, conn.transaction():
        for row in await store.stale_forwarding_balances(conn, cutoff):
            open_amount = row["opened_amount"] - row["applied_amount"]
            alert = AlertRaised(
                alert_id=stable_id("fb", row["tenant_id"], row["account_key"], row["reference"]),
                kind="forwarding_balance_not_closed",
                payer_id=row["payer_id"] or "",
                reference=row["reference"],
                amount=open_amount,
                observed_on=day,
                detail=f"forwarding balance {row['reference']} opened {row['opened_on']} still has "
                f"{open_amount} open after {stage.settings.forwarding_balance_days} days",
            )
            # The balance's key is the FB's raw reference: it leaves only through the scrubber.
            source = envelopes.build(
                phi.safe_alert(alert, reference_layout(row["tenant_id"], row["payer_id"] or "")),
                event_id=stable_id("fb", row["tenant_id"], row["account_key"], row["reference"]),
                event_type="AlertRaised",
                tenant_id=row["tenant_id"],
                account_key=row["account_key"],
                causation_id=f"forwarding balance {alert.alert_id}",
            )
            await outbox.add(conn, stage.service, str(source.event_id), Outgoing.event(ALERTS, source))
    await outbox.flush(stage)


async def refresh_gauges() -> None:
    """Ledger-wide gauges (open receivables and balance per payer policy, the unmatched queue and its age),
    read from the ledger itself."""
    pool = await stage.pool()
    async with pool.acquire() as conn:
        per_policy, unmatched, oldest = await store.open_totals(conn)
    metrics.show_ledger(per_policy, unmatched, oldest, today(stage.settings), installed=POLICIES)


stage.every(stage.settings.interest_tick_seconds, check_forwarding_balances, "forwarding-balance check")
stage.every(10.0, refresh_gauges, "ledger gauges")  # dashboards and the unmatched-age alert need them fresh
stage.handle(PROVIDER_ADJUSTMENTS, on_adjustment)
stage.handle(OVERPAYMENTS, on_overpayment)
stage.handle(STAFF_ACTIONS, on_staff_action)
stage.handle(INTEREST, on_interest)
stage.consume(PROVIDER_ADJUSTMENTS, OVERPAYMENTS, INTEREST, STAFF_ACTIONS)
