"""Every metric object of the matching stage (labels bounded: bucket, part, change, policy).

``policy`` is the payer policy plugin governing a receivable (medicare, commercial, ny, ca, tx…): the bounded
"payer class" the money dashboard splits by. Unmatched money has no receivable, hence no policy.
"""

from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal
from typing import get_args

from prometheus_client import Counter, Gauge

from contracts.events import OffsetBucket
from shared.telemetry import preset

BUCKETS: tuple[str, ...] = get_args(OffsetBucket)
PARTS = ("interest", "principal")

OFFSETS = Counter("remit_offsets_total", "PLB pairs explained, by bucket.", ["bucket"])
OFFSET_DOLLARS = Counter("remit_offset_dollars_total", "PLB dollars (absolute), by bucket.", ["bucket"])
RECOVERED_DOLLARS = Counter(
    "remit_recovered_dollars_total",
    "Dollars applied to receivables, by payer policy and part.",
    ["policy", "part"],
)
RECEIVABLE_CHANGES = Counter("remit_receivable_changes_total", "Receivable changes, by kind.", ["change"])
OPEN_RECEIVABLES = Gauge(
    "remit_receivables_open", "Receivables with a balance still owed, by payer policy.", ["policy"]
)
OPEN_BALANCE = Gauge(
    "remit_receivables_open_balance_dollars",
    "Sum of open receivable balances (interest included), by payer policy.",
    ["policy"],
)
UNMATCHED_DOLLARS = Gauge(
    "remit_unmatched_offset_dollars", "Withheld dollars waiting in the unmatched work queue."
)
UNMATCHED_OLDEST_AGE = Gauge(
    "remit_unmatched_oldest_age_seconds",
    "Business-date age of the oldest withholding still (partly) unmatched, from its payment date; 0 when the "
    "queue is empty. Withheld money no receivable explains is revenue the provider cannot account for.",
)

preset(OFFSETS, *BUCKETS)
preset(OFFSET_DOLLARS, *BUCKETS)


def show_ledger(
    per_policy: Mapping[str, tuple[int, Decimal]],
    unmatched: Decimal,
    oldest_unmatched: date | None,
    today: date,
    installed: Iterable[str],
) -> None:
    """Mirror the ledger's totals into the gauges. Every installed policy is shown, at 0 when it has nothing
    open, so a policy whose last receivable settles drops to 0 instead of keeping its last balance."""
    for policy in sorted({*installed, *per_policy}):
        count, balance = per_policy.get(policy, (0, Decimal(0)))
        OPEN_RECEIVABLES.labels(policy).set(count)
        OPEN_BALANCE.labels(policy).set(float(balance))
        preset(RECOVERED_DOLLARS, *((policy, part) for part in PARTS))
    UNMATCHED_DOLLARS.set(float(unmatched))
    age_days = 0 if oldest_unmatched is None else max((today - oldest_unmatched).days, 0)
    UNMATCHED_OLDEST_AGE.set(age_days * 86400)
