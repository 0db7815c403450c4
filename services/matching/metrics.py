"""Every metric object of the matching stage (labels bounded: bucket, reason code, change)."""

from prometheus_client import Counter

OFFSETS = Counter("remit_offsets_total", "PLB pairs explained, by bucket.", ["bucket"])
OFFSET_DOLLARS = Counter("remit_offset_dollars_total", "PLB dollars (absolute), by bucket.", ["bucket"])
RECOVERED_DOLLARS = Counter(
    "remit_recovered_dollars_total", "Dollars applied to receivables, by part.", ["part"]
)
RECEIVABLE_CHANGES = Counter("remit_receivable_changes_total", "Receivable changes, by kind.", ["change"])
