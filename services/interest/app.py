"""The interest stage (wiring only): consume receivable changes and repayment schedules, tick daily, publish on
the interest topic.

Logic lives in ``engine`` (orchestration), ``domain`` and ``policies`` (pure) and ``store`` (SQL). The tick's
events go through the transactional outbox; the handlers' outputs are exactly-once through the Stage.
"""

from contracts.topics import RECEIVABLES, STAFF_ACTIONS
from policies import config as policy_config
from policies.config import PolicyResolver
from policies.payers import PayerPolicy
from services.interest import metrics
from services.interest.engine import Engine
from services.interest.store import InterestStore
from shared import outbox
from shared.settings import Settings, get_settings
from shared.stream import Stage


def build(settings: Settings, policies: PolicyResolver[PayerPolicy], store: InterestStore) -> Stage:
    """The interest stage over these settings, payer policies and repository. A receivable change accrues
    what was due by the change's business date; a repayment schedule staff recorded is stored and the
    receivable recomputed. Both run a batch at a time (a constant number of statements per batch); a payer
    policy that is not installed rejects only the message that needed it (``unknown_policy``)."""
    stage = Stage("interest", settings)
    engine = Engine(policies, store)
    stage.handle_batch(RECEIVABLES, engine.on_changes)
    stage.handle_batch(STAFF_ACTIONS, engine.on_staff_actions)
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


def from_environment(settings: Settings | None = None) -> Stage:
    """The stage as a worker runs it: settings from the environment, installed payer policies, the policy
    configuration file."""
    settings = settings or get_settings()
    return build(settings, policy_config.resolver(settings), InterestStore())
