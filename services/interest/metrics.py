"""Every metric object of the interest stage."""

from decimal import Decimal

from prometheus_client import Counter, Gauge

INTEREST_PERIODS = Counter("remit_interest_periods_total", "Interest periods accrued, by policy.", ["policy"])
INTEREST_DOLLARS = Counter(
    "remit_interest_accrued_dollars_total",
    "Interest dollars accrued (first postings), by policy.",
    ["policy"],
)
INTEREST_CORRECTIONS = Counter(
    "remit_interest_corrections_total",
    "Correcting postings after back-dated changes, by policy and direction (up/down).",
    ["policy", "direction"],
)
ALERTS = Counter("remit_interest_alerts_total", "Recoupment alerts raised, by kind.", ["kind"])
POLICY_ERRORS = Counter(
    "remit_interest_policy_errors_total", "Receivables skipped because their payer policy is not installed."
)
TICKS = Counter("remit_interest_ticks_total", "Time-driven accrual runs.")
LAST_TICK = Gauge("remit_interest_last_tick_timestamp_seconds", "Unix time of the last accrual run.")


def count_posting(policy: str, version: int, amount: Decimal) -> None:
    """Count one posting: a first charge, or a correction up or down."""
    if version == 1:
        INTEREST_PERIODS.labels(policy).inc()
        INTEREST_DOLLARS.labels(policy).inc(float(amount))
    else:
        INTEREST_CORRECTIONS.labels(policy, "up" if amount > 0 else "down").inc()
