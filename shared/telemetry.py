"""Metrics common to every stage and logging set-up. Labels are bounded: service, topic, outcome, reason.

Domain metrics (dollars, counts per rule) live in each service's ``metrics.py``; these are the pipeline ones.
"""

import logging

from prometheus_client import Counter, Gauge, Histogram

MESSAGES_CONSUMED = Counter(
    "remit_messages_consumed_total", "Messages read from an input topic.", ["service", "topic"]
)
MESSAGES_PROCESSED = Counter(
    "remit_messages_processed_total",
    "Input messages by outcome: applied, duplicate (already applied), dead_lettered.",
    ["service", "outcome"],
)
MESSAGES_PRODUCED = Counter("remit_messages_produced_total", "Messages published.", ["service", "topic"])
DEAD_LETTERS = Counter(
    "remit_dead_letters_total", "Messages sent to a dead-letter topic.", ["service", "reason"]
)
PROCESSING_SECONDS = Histogram(
    "remit_processing_duration_seconds",
    "Time to process one input message, DB transaction and publish included.",
    ["service"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
IN_PROGRESS = Gauge("remit_messages_in_progress", "Input messages being processed now.", ["service"])
LAST_PROCESSED = Gauge(
    "remit_last_processed_timestamp_seconds", "Unix time the service last finished a message.", ["service"]
)
TRANSIENT_RETRIES = Counter(
    "remit_transient_retries_total", "Retries after a transient database or broker error.", ["service"]
)


def setup_logging(level: str) -> None:
    """Plain, PHI-free log lines: we log ids, counts and amounts, never document text."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
