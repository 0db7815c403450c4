"""Every metric object of the intake stage (labels bounded: feed, outcome, reason, kind)."""

from prometheus_client import Counter

FILES = Counter("remit_files_total", "Payer files read, by outcome.", ["outcome"])
REMITTANCES = Counter("remit_remittances_ingested_total", "Remittances (835 transactions) posted.", ["feed"])
CLAIM_PAYMENTS = Counter("remit_claim_payments_ingested_total", "Claim payments posted.", ["feed"])
PROVIDER_ADJUSTMENTS = Counter("remit_provider_adjustments_ingested_total", "PLB pairs posted.", ["feed"])
DOLLARS = Counter(
    "remit_ingested_dollars_total",
    "Dollars posted: paid (BPR02), withheld (positive PLB) and added (negative PLB).",
    ["kind"],
)
DUPLICATES = Counter("remit_duplicate_remittances_total", "Remittances already posted, skipped.", ["feed"])
REJECTED = Counter("remit_rejected_transactions_total", "Transactions rejected to the DLT.", ["reason"])
