"""The intake stage (wiring only): raw payer files in; remittances, claim payments and PLB pairs out. What a
file does is ``engine``; choosing a parser and building events ``domain``; SQL ``store``."""

import logging
from collections.abc import Mapping

from contracts.topics import FILE_REPLAYS, INTAKE
from services.intake import metrics, x12
from services.intake.engine import FileIntake, file_message_id
from services.intake.feeds import FeedParser
from services.intake.store import IntakeStore
from shared import phi, plugins
from shared.kafka import MAX_MESSAGE_BYTES
from shared.settings import Settings, get_settings
from shared.stream import Stage

log = logging.getLogger(__name__)


def build(settings: Settings, parsers: Mapping[str, FeedParser], store: IntakeStore) -> Stage:
    """The intake stage over these settings, feed parser plugins and repository. Intake has no payer
    policies: files are read the same for every payer, and the stages downstream apply the policies."""
    # The patient tokens events carry keyed digests: refuse to start without a usable key.
    phi.configure_key(settings.phi_key)
    stage = Stage("intake", settings, fetch_bytes=MAX_MESSAGE_BYTES)
    metrics.X12_COMPILED.set(1 if x12.NATIVE else 0)
    log.info("X12 reader: %s", "compiled (mypyc)" if x12.NATIVE else "from source")
    files = FileIntake(parsers, store)
    stage.handle_records(INTAKE, files.handle_file)
    # A file can carry tens of thousands of claims; a few files per transaction already pay off the round
    # trips, and more would hold all their parsed claims and outputs in memory at once.
    stage.consume(
        INTAKE,
        id_of=file_message_id,
        batch=4,
        replay=files.replay_file,
        dead_letter=files.dead_letter_file,
    )
    # Staff asking for a kept file to be processed again (the console's Replay, `offsetstream files --replay`):
    # one request a transaction, since each re-reads a whole file.
    stage.handle_records(FILE_REPLAYS, files.handle_replay_request)
    stage.consume(FILE_REPLAYS, batch=1, replay=files.replay_replay_request)
    return stage


def from_environment(settings: Settings | None = None) -> Stage:
    """The stage as a worker runs it: settings from the environment and the installed feed parsers."""
    settings = settings or get_settings()
    parsers: dict[str, FeedParser] = plugins.load_plugins(plugins.FEED_PARSERS)
    if isinstance(parsers.get(x12.X12Parser.name), x12.X12Parser):  # the built-in reader, with its bound
        parsers[x12.X12Parser.name] = x12.X12Parser(settings.x12_max_transaction_segments)
    return build(settings, parsers, IntakeStore())
