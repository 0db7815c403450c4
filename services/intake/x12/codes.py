"""Code lists of the 835 (005010X221A1) that the parser checks, and the segments each loop may hold.

The lists are data, not logic: a payer that sends a code outside them gets a precise error naming the code
(codes are never PHI), so the list can be corrected here if the guide or an errata adds a value.
"""

from typing import Final

PLB_REASON_CODES: Final = frozenset(
    {
        "50",
        "51",
        "72",
        "90",
        "AH",
        "AM",
        "AP",
        "B2",
        "B3",
        "BD",
        "BN",
        "C5",
        "CR",
        "CS",
        "CT",
        "CV",
        "CW",
        "DM",
        "E3",
        "FB",
        "FC",
        "GO",
        "HM",
        "IP",
        "IR",
        "IS",
        "J1",
        "L3",
        "L6",
        "LE",
        "LS",
        "OA",
        "OB",
        "PI",
        "PL",
        "RA",
        "RE",
        "SL",
        "TL",
        "WO",
        "WU",
    }
)
"""The 41 valid PLB03-1 (etc.) adjustment reason codes (DOMAIN.md §2)."""

CAS_GROUP_CODES: Final = frozenset({"CO", "OA", "PI", "PR"})
"""CAS01 claim adjustment group codes valid in 5010 (``CR`` was withdrawn)."""

CLAIM_STATUS_CODES: Final = frozenset({"1", "2", "3", "4", "19", "20", "21", "22", "23", "25"})
"""CLP02 claim status codes; ``22`` is the reversal of a previous payment."""

REVERSAL_STATUS: Final = "22"

BPR_HANDLING_CODES: Final = frozenset({"C", "D", "H", "I", "P", "U", "X"})
"""BPR01 transaction handling codes (``H`` = notification only, ``I`` = remittance information only)."""

BPR_PAYMENT_METHODS: Final = frozenset({"ACH", "BOP", "CHK", "FWT", "NON"})
"""BPR04 payment method codes."""

BPR_CREDIT_DEBIT: Final = frozenset({"C", "D"})

SUPPORTED_VERSION: Final = "005010X221A1"
SUPPORTED_GUIDE: Final = "005010X221"
"""A transaction naming this guide (with or without the A1 errata) is read without a version warning."""

ENVELOPE_SEGMENTS: Final = frozenset({"ISA", "IEA", "GS", "GE", "ST", "SE"})

HEADER_SEGMENTS: Final = frozenset({"BPR", "TRN", "CUR", "REF", "DTM"})
PAYER_SEGMENTS: Final = frozenset({"N3", "N4", "REF", "PER"})
PAYEE_SEGMENTS: Final = frozenset({"N3", "N4", "REF", "RDM"})
DETAIL_SEGMENTS: Final = frozenset({"TS3", "TS2"})
CLAIM_SEGMENTS: Final = frozenset({"CAS", "NM1", "MIA", "MOA", "REF", "DTM", "PER", "AMT", "QTY"})
SERVICE_SEGMENTS: Final = frozenset({"DTM", "CAS", "REF", "AMT", "QTY", "LQ"})

KNOWN_SEGMENTS: Final = (
    ENVELOPE_SEGMENTS
    | HEADER_SEGMENTS
    | PAYER_SEGMENTS
    | PAYEE_SEGMENTS
    | DETAIL_SEGMENTS
    | CLAIM_SEGMENTS
    | SERVICE_SEGMENTS
    | {"N1", "LX", "CLP", "SVC", "PLB"}
)
"""Every segment id the 835 guide defines; anything else is kept and reported as a warning."""

MAX_CAS_TRIPLES: Final = 6
MAX_PLB_PAIRS: Final = 6
