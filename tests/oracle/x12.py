"""A minimal X12 835 reader for the oracle: only what reconciliation needs, nothing from the services.

Delimiters come from the ISA (element separator = character 4, component separator = ISA16, segment
terminator = the character after ISA16, DOMAIN.md §2); line breaks between segments are ignored. Per
transaction it keeps the payer (N1*PR N104), payee (N1*PE N104), BPR02 and BPR16, TRN02, every claim
(CLP01/02/04/07 and the claim's REF*F8) and every PLB reason/reference/amount pair. It assumes the file is
well formed: the differential test feeds it the same generated files the pipeline reads.
"""

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal


@dataclass
class Claim:
    """One CLP loop: patient control number, status, paid, ICN and the original reference (REF*F8)."""

    pcn: str
    status: str
    paid: Decimal
    icn: str | None
    original_reference: str | None = None


@dataclass(frozen=True)
class PlbPair:
    """One PLB reason/amount pair; ``reference`` is the raw text (spaces kept), None when absent.
    Positive amount = withheld from this payment."""

    code: str
    reference: str | None
    amount: Decimal
    ordinal: int
    """Position of the pair in its transaction (segment order, then pair order), from 1."""


@dataclass
class Remittance:
    """One ST..SE transaction."""

    payer_id: str = ""
    payee_id: str = ""
    trace: str = ""
    total_paid: Decimal = Decimal("0")
    payment_date: date = date.min
    claims: list[Claim] = field(default_factory=list)
    pairs: list[PlbPair] = field(default_factory=list)


def _date(text: str) -> date:
    return date(int(text[0:4]), int(text[4:6]), int(text[6:8]))


def segments(content: bytes | str) -> list[list[str]]:
    """Every segment of an interchange (or several), split into elements."""
    text = content.decode() if isinstance(content, bytes) else content
    start = text.index("ISA")
    text = text[start:]
    element, component, terminator = text[3], text[104], text[105]
    del component  # PLB composites are split by the caller, which knows the component separator
    out: list[list[str]] = []
    for raw in text.split(terminator):
        seg = raw.lstrip("\r\n")
        if not seg.strip():
            continue
        out.append(seg.split(element))
    return out


def read_835(content: bytes | str) -> list[Remittance]:  # noqa: PLR0912
    """The transactions of a file, in order."""
    text = content.decode() if isinstance(content, bytes) else content
    text = text[text.index("ISA") :]
    component = text[104]
    result: list[Remittance] = []
    current: Remittance | None = None
    claim: Claim | None = None
    ordinal = 0
    for seg in segments(text):
        tag = seg[0]
        if tag == "ST":
            current, claim, ordinal = Remittance(), None, 0
            result.append(current)
        elif current is None:
            continue
        elif tag == "BPR":
            current.total_paid = Decimal(seg[2])
            current.payment_date = _date(seg[16]) if len(seg) > 16 and seg[16] else date.min
        elif tag == "TRN":
            current.trace = seg[2]
        elif tag == "N1" and len(seg) > 4:
            if seg[1] == "PR":
                current.payer_id = seg[4]
            elif seg[1] == "PE":
                current.payee_id = seg[4]
        elif tag == "CLP":
            claim = Claim(
                pcn=seg[1],
                status=seg[2],
                paid=Decimal(seg[4]),
                icn=seg[7] if len(seg) > 7 and seg[7] else None,
            )
            current.claims.append(claim)
        elif tag == "REF" and claim is not None and seg[1] == "F8":
            claim.original_reference = seg[2]
        elif tag == "PLB":
            claim = None
            for i in range(3, len(seg) - 1, 2):
                if not seg[i]:
                    continue
                parts = seg[i].split(component, 1)
                reference = parts[1] if len(parts) > 1 and parts[1].strip() else None
                ordinal += 1
                current.pairs.append(PlbPair(parts[0], reference, Decimal(seg[i + 1]), ordinal))
        elif tag == "SE":
            current, claim = None, None
    return result
