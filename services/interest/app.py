"""The interest stage (wiring only): consume receivable changes and repayment schedules, tick daily, publish on
the interest topic.

Logic lives in ``engine`` (orchestration), ``domain`` and ``policies`` (pure) and ``store`` (SQL). The tick's
events go through the transactional outbox; the handler's outputs are exactly-once through the Stage.
"""

from collections.abc import Sequence

import asyncpg

from contracts.envelope import Envelope
from contracts.topics import RECEIVABLES, STAFF_ACTIONS, P
from policies import config as policy_config
from policies.config import PolicyConfigError, PolicyResolver
from policies.payers import PayerPolicy
from services.interest import metrics
from services.interest.engine import Engine
from services.interest.store import InterestStore
from shared import outbox
from shared.messages import EventHandler, Outgoing, Rejected
from shared.settings import Settings, get_settings
from shared.stream import Stage


def build(settings: Settings, policies: PolicyResolver[PayerPolicy], store: InterestStore) -> Stage:
    """The interest stage over these settings, payer policies and repository. A receivable change accrues
    what was due by the change's business date; a repayment schedule staff recorded is stored and the
    receivable recomputed."""
    stage = Stage("interest", settings)
    engine = Engine(policies, store)
    stage.handle(RECEIVABLES, policy_errors_rejected(engine.on_change))
    stage.handle(STAFF_ACTIONS, policy_errors_rejected(engine.on_staff_action))
    stage.consume(RECEIVABLES, STAFF_ACTIONS)
    outbox.every(
        stage,
        settings.interest_tick_seconds,
        engine.tick,
        "interest tick",
        ticks=metrics.TICKS,
        last_tick=metrics.LAST_TICK,
    )
    return stage


def policy_errors_rejected(
    handler: EventHandler[P],
) -> EventHandler[P]:
    """``handler``, with a payer policy that is not installed rejecting the message (``unknown_policy``)."""

    async def handle(conn: asyncpg.Connection, env: Envelope[P]) -> Sequence[Outgoing]:
        try:
            return await handler(conn, env)
        except PolicyConfigError as exc:
            raise Rejected("unknown_policy", str(exc)) from exc

    return handle


def from_environment(settings: Settings | None = None) -> Stage:
    """The stage as a worker runs it: settings from the environment, installed payer policies, the policy
    configuration file."""
    settings = settings or get_settings()
    return build(settings, policy_config.resolver(settings), InterestStore())
