"""The matching stage (wiring only): PLB pairs, overpayments, interest and staff actions in; offsets,
receivable changes and alerts out; a forwarding-balance check and the ledger gauges on timers. What each input
does to the ledger is ``engine``; pure rules ``domain``; the ledger behind the ``repository`` port is
``store`` (SQL).

:func:`build` makes the stage from its settings, payer policies and repository (one per connection, so each
message's steps run in that message's transaction); nothing is built at import. :func:`from_environment` is how
a worker builds it (``python -m services.matching``; the in-process test pipeline builds it the same way).
"""

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from functools import partial
from typing import Any

import asyncpg

from contracts.envelope import Envelope
from contracts.events import AlertRaised
from contracts.topics import INTEREST, OVERPAYMENTS, PROVIDER_ADJUSTMENTS, STAFF_ACTIONS, WORK_ITEMS, P
from policies import config as policy_config
from policies.config import PolicyResolver
from services.matching import metrics, store
from services.matching.engine import on_adjustment, on_interest, on_overpayment, on_staff_action
from services.matching.ledger import Matching, build_stage, reference_layout
from services.matching.repository import MatchingRepository
from services.matching.store import PgMatchingRepository
from services.matching.work_items import on_work_item_action
from shared import outbox, phi
from shared.alerts import alert_message
from shared.clock import today
from shared.ids import stable_id
from shared.messages import EventHandler, Outgoing
from shared.settings import Settings, get_settings
from shared.stream import Stage

log = logging.getLogger(__name__)

Repository = Callable[[asyncpg.Connection], MatchingRepository]
"""The repository of the ledger as one connection (one message's transaction) sees it."""
Step = Callable[[Matching, Envelope[P]], Awaitable[list[Outgoing]]]
"""One of the engine's entry points: the stage and one envelope in, the messages owed out."""


def build(settings: Settings, policies: PolicyResolver[Any], repository: Repository) -> Stage:
    """The matching stage over these settings, payer policies and repository (the ledger as one connection,
    one message's transaction, sees it)."""
    stage = Stage("matching", settings)
    stage.handle(PROVIDER_ADJUSTMENTS, on_connection(settings, policies, repository, on_adjustment))
    stage.handle(OVERPAYMENTS, on_connection(settings, policies, repository, on_overpayment))
    stage.handle(STAFF_ACTIONS, on_connection(settings, policies, repository, on_staff_action))
    stage.handle(INTEREST, on_connection(settings, policies, repository, on_interest))
    stage.handle(WORK_ITEMS, on_connection(settings, policies, repository, on_work_item_action))
    stage.consume(PROVIDER_ADJUSTMENTS, OVERPAYMENTS, INTEREST, STAFF_ACTIONS, WORK_ITEMS)
    stage.every(
        settings.interest_tick_seconds,
        partial(check_forwarding_balances, stage, policies),
        "forwarding-balance check",
    )
    # Dashboards and the unmatched-age alert need the gauges fresh.
    stage.every(10.0, partial(refresh_gauges, stage, policies), "ledger gauges")
    return stage


def on_connection(
    settings: Settings, policies: PolicyResolver[Any], repository: Repository, step: "Step[P]"
) -> EventHandler[P]:
    """A topic's handler: the engine's ``step`` over the ledger as the handler's connection sees it."""

    async def handle(conn: asyncpg.Connection, env: Envelope[P]) -> Sequence[Outgoing]:
        return await step(build_stage(settings, policies, repository(conn)), env)

    return handle


def from_environment(settings: Settings | None = None) -> Stage:
    """The stage as a worker runs it: settings from the environment, installed payer policies, the policy
    configuration file, the PostgreSQL ledger."""
    settings = settings or get_settings()
    return build(settings, policy_config.resolver(settings), PgMatchingRepository)


async def check_forwarding_balances(stage: Stage, policies: PolicyResolver[Any]) -> None:
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
            layout = reference_layout(policies, row["tenant_id"], row["payer_id"] or "")
            message = alert_message(
                phi.safe_alert(alert, layout),
                tenant_id=row["tenant_id"],
                account_key=row["account_key"],
                causation_id=f"forwarding balance {alert.alert_id}",
            )
            await outbox.add(conn, stage.service, str(alert.alert_id), message)
    await outbox.flush(stage)


async def refresh_gauges(stage: Stage, policies: PolicyResolver[Any]) -> None:
    """Ledger-wide gauges (open receivables and balance per payer policy, the unmatched queue and its age),
    read from the ledger itself."""
    pool = await stage.pool()
    async with pool.acquire() as conn:
        per_policy, unmatched, oldest = await store.open_totals(conn)
    metrics.show_ledger(per_policy, unmatched, oldest, today(stage.settings), installed=policies.plugins)
