"""Every metric object of the interest stage."""

from prometheus_client import Counter, Gauge

INTEREST_PERIODS = Counter("remit_interest_periods_total", "Interest periods accrued, by policy.", ["policy"])
INTEREST_DOLLARS = Counter(
    "remit_interest_accrued_dollars_total", "Interest dollars accrued, by policy.", ["policy"]
)
TICKS = Counter("remit_interest_ticks_total", "Time-driven accrual runs.")
LAST_TICK = Gauge("remit_interest_last_tick_timestamp_seconds", "Unix time of the last accrual run.")
