"""Every metric object of the intake stage (labels bounded: feed, outcome, reason, kind).

``feed`` is the parser plugin's name (x12_835, csv, json); ``reason`` a FeedError reason code. Transactions
rejected inside an otherwise good file also count in ``remit_dead_letters_total`` (they go to the DLT too).
"""

from prometheus_client import Counter, Gauge

from shared.telemetry import preset

FILES = Counter(
    "remit_files_total",
    "Payer files read, by outcome (already_received: an identical copy of a file already processed).",
    ["outcome"],
)
REMITTANCES = Counter("remit_remittances_ingested_total", "Remittances (835 transactions) posted.", ["feed"])
CLAIM_PAYMENTS = Counter(
    "remit_claim_payments_ingested_total",
    "Claim payments posted (claims, not messages: they travel up to 100 a message on remit.claim-payments.v2).",
    ["feed"],
)
PROVIDER_ADJUSTMENTS = Counter("remit_provider_adjustments_ingested_total", "PLB pairs posted.", ["feed"])
DOLLARS = Counter(
    "remit_ingested_dollars_total",
    "Dollars posted: paid (BPR02), withheld (positive PLB) and added (negative PLB).",
    ["kind"],
)
DUPLICATES = Counter("remit_duplicate_remittances_total", "Remittances already posted, skipped.", ["feed"])
WARNINGS = Counter(
    "remit_reader_warnings_total",
    "Reader warnings on posted transactions: segments kept but not interpreted, out of place, or missing.",
    ["feed"],
)
REJECTED = Counter("remit_rejected_transactions_total", "Transactions rejected to the DLT.", ["reason"])
X12_COMPILED = Gauge(
    "remit_intake_x12_reader_compiled",
    "1 when the X12 reader runs compiled (mypyc), 0 when it runs from source (about 35 % slower; a missing, "
    "stale or unloadable build: run make setup, or rebuild the image).",
)

preset(FILES, "posted", "partial", "rejected", "already_received")
preset(DOLLARS, "paid", "withheld", "added")
