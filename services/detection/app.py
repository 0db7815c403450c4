"""The detection stage (wiring only): claims, PLB pairs and letters in; evidence of overpayments, merged per
reference, out. A timer also raises an alert for each reversal whose correction has not arrived within the
configured days. What each input does is ``engine``; pure rules ``domain`` and the rule plugins; SQL ``store``.
"""

from collections.abc import Mapping
from typing import Any

from contracts.topics import CLAIM_PAYMENTS, LETTERS, PROVIDER_ADJUSTMENTS
from policies import config as policy_config
from policies.config import PolicyResolver
from services.detection import domain
from services.detection.engine import Detector
from services.detection.store import DetectionStore
from shared import outbox, plugins
from shared.settings import Settings, get_settings
from shared.stream import Stage


def build(
    settings: Settings,
    policies: PolicyResolver[Any],
    store: DetectionStore,
    rules: Mapping[str, domain.DetectionRule],
) -> Stage:
    """The detection stage over these settings, payer policies, repository and rule plugins."""
    stage = Stage("detection", settings)
    detector = Detector(settings, policies, store, rules)
    stage.handle_batch(CLAIM_PAYMENTS, detector.on_claims)
    stage.handle_batch(PROVIDER_ADJUSTMENTS, detector.on_adjustments)
    stage.handle_batch(LETTERS, detector.on_letters)
    stage.consume(CLAIM_PAYMENTS, PROVIDER_ADJUSTMENTS, LETTERS)
    outbox.every(stage, settings.interest_tick_seconds, detector.check_reversals, "reversal check")
    return stage


def from_environment(settings: Settings | None = None) -> Stage:
    """The stage as a worker runs it: settings from the environment, installed policy and rule plugins."""
    settings = settings or get_settings()
    rules: dict[str, domain.DetectionRule] = plugins.load_plugins(plugins.DETECTION_RULES)
    return build(settings, policy_config.resolver(settings), DetectionStore(), rules)
