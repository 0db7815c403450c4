"""The matching stage (wiring only): PLB pairs, overpayments, interest and staff actions in; offsets,
receivable changes and alerts out; a forwarding-balance check and the ledger gauges on timers. What each input
does to the ledger is ``engine``; pure rules ``domain``; the ledger behind the ``repository`` port is
``store`` (SQL; ``store.batch`` for the one a batch uses, which sends its statements per batch).

:func:`build` makes the stage from its settings, payer policies and repository (one per run of a batch, on
the batch's connection, so every message's steps run in the batch's transaction); nothing is built at import. :func:`from_environment` is how
a worker builds it (``python -m services.matching``; the in-process test pipeline builds it the same way).
"""

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from functools import partial
from typing import Any

import asyncpg

from contracts.envelope import Envelope
from contracts.events import (
    AlertRaised,
    InterestAccrued,
    OverpaymentDetected,
    ProviderAdjustmentReceived,
    StaffActionRecorded,
    WorkItemActionRecorded,
)
from contracts.topics import INTEREST, OVERPAYMENTS, PROVIDER_ADJUSTMENTS, STAFF_ACTIONS, WORK_ITEMS, P
from policies import config as policy_config
from policies.config import PolicyResolver
from services.matching import metrics, prefetch, store
from services.matching.engine import on_adjustment, on_interest, on_overpayment, on_staff_action
from services.matching.ledger import Matching, build_stage, reference_layout
from services.matching.repository import MatchingRepository
from services.matching.store.batch import BatchMatchingRepository
from services.matching.work_items import on_work_item_action
from shared import outbox, phi
from shared.alerts import alert_message
from shared.clock import today
from shared.ids import stable_id
from shared.messages import EventBatchHandler, FailedInput, Outgoing
from shared.settings import Settings, get_settings
from shared.stream import Stage

log = logging.getLogger(__name__)

Repository = Callable[[asyncpg.Connection], MatchingRepository]
"""The repository of the ledger as one run of a batch sees it (on the batch's connection and transaction)."""
Step = Callable[[Matching, Envelope[P]], Awaitable[list[Outgoing]]]
"""One of the engine's entry points: the stage and one envelope in, the messages owed out."""


def build(settings: Settings, policies: PolicyResolver[Any], repository: Repository) -> Stage:
    """The matching stage over these settings, payer policies and repository (the ledger as one run of a
    batch, in the batch's transaction, sees it)."""
    stage = Stage("matching", settings)
    # One handler for the five topics: PLB pairs and overpayments alternate in a batch, and a batch's reads
    # ahead and writes are per call.
    topics = (PROVIDER_ADJUSTMENTS, OVERPAYMENTS, STAFF_ACTIONS, INTEREST, WORK_ITEMS)
    stage.handle_batches(topics, in_batches(settings, policies, repository))
    stage.consume(*topics)
    stage.every(
        settings.interest_tick_seconds,
        partial(check_forwarding_balances, stage, policies),
        "forwarding-balance check",
    )
    # Dashboards and the unmatched-age alert need the gauges fresh.
    stage.every(10.0, partial(refresh_gauges, stage, policies), "ledger gauges")
    return stage


STEPS: dict[type, "Step[Any]"] = {
    ProviderAdjustmentReceived: on_adjustment,
    OverpaymentDetected: on_overpayment,
    StaffActionRecorded: on_staff_action,
    InterestAccrued: on_interest,
    WorkItemActionRecorded: on_work_item_action,
}
"""The engine's entry point for each payload matching consumes."""


def in_batches(
    settings: Settings, policies: PolicyResolver[Any], repository: Repository
) -> EventBatchHandler[Any]:
    """The stage's batch handler, for its five topics mixed in the order consumed: the engine's step of each
    envelope's payload (:data:`STEPS`) in turn, all on one repository of the batch's connection, which reads
    ahead what the batch names and then writes what it kept back (``store.batch``: the statements are per
    batch, the engine's steps per message). The repository is made per run, so a run the runtime repeats to
    isolate a failing input starts from the ledger; a failing step names its input."""

    async def handle(conn: asyncpg.Connection, batch: Sequence[Envelope[Any]]) -> list[list[Outgoing]]:
        repo = repository(conn)
        stage = build_stage(settings, policies, repo)
        await repo.prefetch(prefetch.wanted(stage, batch))
        owed: list[list[Outgoing]] = []
        for position, env in enumerate(batch):
            try:
                owed.append(await STEPS[type(env.payload)](stage, env))
            except Exception as exc:
                raise FailedInput(position, exc) from exc
        await repo.flush()
        return owed

    return handle


def from_environment(settings: Settings | None = None) -> Stage:
    """The stage as a worker runs it: settings from the environment, installed payer policies, the policy
    configuration file, the PostgreSQL ledger."""
    settings = settings or get_settings()
    return build(settings, policy_config.resolver(settings), BatchMatchingRepository)


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
