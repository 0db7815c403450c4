"""Every metric object of the matching stage (labels bounded: bucket, reason code, change)."""

from prometheus_client import Counter, Gauge

OFFSETS = Counter("remit_offsets_total", "PLB pairs explained, by bucket.", ["bucket"])
OFFSET_DOLLARS = Counter("remit_offset_dollars_total", "PLB dollars (absolute), by bucket.", ["bucket"])
RECOVERED_DOLLARS = Counter(
    "remit_recovered_dollars_total", "Dollars applied to receivables, by part.", ["part"]
)
RECEIVABLE_CHANGES = Counter("remit_receivable_changes_total", "Receivable changes, by kind.", ["change"])
OPEN_RECEIVABLES = Gauge("remit_receivables_open", "Receivables with a balance still owed.")
OPEN_BALANCE = Gauge(
    "remit_receivables_open_balance_dollars", "Sum of open receivable balances (interest included)."
)
UNMATCHED_DOLLARS = Gauge(
    "remit_unmatched_offset_dollars", "Withheld dollars waiting in the unmatched work queue."
)
