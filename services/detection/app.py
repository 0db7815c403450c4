"""The detection stage (wiring only): claims, PLB pairs and letters in; evidence of overpayments, merged per
reference, out. A timer also raises an alert for each reversal whose correction has not arrived within the
configured days. What each input does is ``engine``; pure rules ``domain`` and the rule plugins; SQL ``store``.

Claims arrive a transaction (or 100 claims) per message on ``remit.claim-payments.v2``: each message is
unbundled into the per-claim events ``remit.claim-payments.v1`` carried, with the same event ids
(``shared.claims``), and the batch's claims, PLB pairs and letters go through ``Detector.on_inputs`` together, in
the order consumed (a transaction's claims and PLB pairs alternate), so every stored claim,
evidence and downstream event is what v1 gave. A message is claimed once; a claim that can never be processed
is taken out and dead-lettered alone, as the v1 event it would have been (``shared.claims.claim_dead_letter``,
naming its ordinal and CLP segment), while the other claims of its message are applied. v1 is still consumed, for records published before intake moved to v2 and replays of their dead
letters; deploy detection before intake.
"""

from collections.abc import Mapping
from functools import partial
from typing import Any

from contracts.topics import CLAIM_PAYMENTS, CLAIM_PAYMENTS_V1, LETTERS, PROVIDER_ADJUSTMENTS
from policies import config as policy_config
from policies.config import PolicyResolver
from services.detection import domain
from services.detection.engine import Detector
from services.detection.store import DetectionStore
from shared import claims, outbox, plugins
from shared.bundles import unbundled
from shared.settings import Settings, get_settings
from shared.stream import Stage

BATCH_MAX_BYTES = 2 * 1024 * 1024
"""Most input bytes detection applies in one transaction. A batch is up to 200 messages, and a message may now
be a part of 100 claims (~150 KB): without a bound one transaction could hold 20 000 claims, their parsed
payloads, arrays of that length in every statement and, when one claim fails, a re-run of all of them. 2 MiB is
~1 400 ordinary claims or ~13 full parts: the per-transaction statements (9 for any number of claims) are still
paid once per hundreds of claims, while memory and a poison part's re-run cost stay bounded. One-claim v1
messages, PLB pairs and letters are ~1.5 KB each, so their batches of 200 are never cut."""


def build(
    settings: Settings,
    policies: PolicyResolver[Any],
    store: DetectionStore,
    rules: Mapping[str, domain.DetectionRule],
) -> Stage:
    """The detection stage over these settings, payer policies, repository and rule plugins."""
    stage = Stage("detection", settings)
    detector = Detector(settings, policies, store, rules)
    # One handler for the four topics: a transaction's claims and its PLB pairs alternate in a batch, and each
    # call pays the claim and evidence statements once.
    stage.handle_batches(
        (CLAIM_PAYMENTS, CLAIM_PAYMENTS_V1, PROVIDER_ADJUSTMENTS, LETTERS),
        unbundled(
            claims.inputs_of,
            detector.on_inputs,
            claims.which_input,
            isolate=partial(claims.claim_dead_letter, stage.service),
        ),
    )
    stage.consume(CLAIM_PAYMENTS, CLAIM_PAYMENTS_V1, PROVIDER_ADJUSTMENTS, LETTERS, max_bytes=BATCH_MAX_BYTES)
    outbox.every(stage, settings.interest_tick_seconds, detector.check_reversals, "reversal check")
    return stage


def from_environment(settings: Settings | None = None) -> Stage:
    """The stage as a worker runs it: settings from the environment, installed policy and rule plugins."""
    settings = settings or get_settings()
    rules: dict[str, domain.DetectionRule] = plugins.load_plugins(plugins.DETECTION_RULES)
    return build(settings, policy_config.resolver(settings), DetectionStore(), rules)
