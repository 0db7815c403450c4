"""Every metric object of the detection stage (label ``rule`` is bounded by the installed plugins)."""

from prometheus_client import Counter

OVERPAYMENTS = Counter(
    "remit_overpayments_detected_total", "Evidence of overpayment found, per rule.", ["rule"]
)
OVERPAYMENT_DOLLARS = Counter(
    "remit_overpayment_dollars_total", "Dollars of overpayment evidence found, per rule.", ["rule"]
)
ALERTS = Counter("remit_alerts_total", "Alerts raised for staff, by kind.", ["kind"])
MERGES = Counter(
    "remit_receivables_merged_total",
    "Receivables merged into another because later evidence proved them one debt (opened before the link was known).",
)
