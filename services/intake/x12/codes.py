"""Code lists of the 835 that the parser checks, per guide version, and the segments each loop may hold.

The lists are data, not logic: a payer that sends a code outside them gets a precise error naming the code
(codes are never PHI), so the list can be corrected here if the guide or an errata adds a value. What differs
between the two guides read (005010X221A1 and the 4010 guide 004010X091A1 many payers still send) is one
:class:`Guide` each, chosen per transaction by its version (``ST03``, else ``GS08``): :func:`guide_for`.
"""

from dataclasses import dataclass
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

CAS_GROUP_CODES_4010: Final = CAS_GROUP_CODES | {"CR"}
"""CAS01 in 004010X091A1: also ``CR`` (corrections and reversals)."""

CLAIM_STATUS_CODES: Final = frozenset({"1", "2", "3", "4", "19", "20", "21", "22", "23", "25"})
"""CLP02 claim status codes; ``22`` is the reversal of a previous payment."""

CLAIM_STATUS_CODES_4010: Final = CLAIM_STATUS_CODES | {"5", "10", "13", "15", "16", "17", "27"}
"""CLP02 in 004010X091A1: also the codes the guide lists as "not advised" (5 pended, 10 received but not in
process, 13/15/16/17 suspended, X12 RFI 457: usable) and 27 reviewed; 5010 removed them."""

REVERSAL_STATUS: Final = "22"

BPR_HANDLING_CODES: Final = frozenset({"C", "D", "H", "I", "P", "U", "X"})
"""BPR01 transaction handling codes (``H`` = notification only, ``I`` = remittance information only)."""

BPR_PAYMENT_METHODS: Final = frozenset({"ACH", "BOP", "CHK", "FWT", "NON"})
"""BPR04 payment method codes."""

BPR_CREDIT_DEBIT: Final = frozenset({"C", "D"})


@dataclass(frozen=True, slots=True)
class Guide:
    """What the reader checks that depends on the transaction's guide version: one instance per guide."""

    version: str
    """The guide's full version id, as ``ST03``/``GS08`` name it (with the A1 errata)."""
    prefix: str
    """A version starting with this names the guide (with or without its errata)."""
    claim_status_codes: frozenset[str]
    cas_group_codes: frozenset[str]
    plb_reason_codes: frozenset[str]
    payer_contact_required: bool
    """5010 requires ``PER*BL`` (technical contact) in loop 1000A; 4010 has only an optional ``PER*CX``."""


GUIDE_5010: Final = Guide(
    "005010X221A1", "005010X221", CLAIM_STATUS_CODES, CAS_GROUP_CODES, PLB_REASON_CODES, True
)
GUIDE_4010: Final = Guide(
    "004010X091A1", "004010X091", CLAIM_STATUS_CODES_4010, CAS_GROUP_CODES_4010, PLB_REASON_CODES, False
)
"""The 4010 guide's PLB03-1 list holds the same 41 codes; BPR01/03/04 lists are the same in both guides."""
GUIDES: Final = (GUIDE_5010, GUIDE_4010)
DEFAULT_GUIDE: Final = GUIDE_5010
"""What a transaction naming no known guide (or none) is read as, with a warning."""


def guide_for(version: str) -> Guide | None:
    """The guide a transaction's version names, or None when it names none of :data:`GUIDES`."""
    for guide in GUIDES:
        if version.startswith(guide.prefix):
            return guide
    return None


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
