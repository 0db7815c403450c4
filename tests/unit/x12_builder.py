"""Build X12 835 text from small Python objects, for tests, examples and benchmarks.

Amounts balance by construction: a service line pays ``charge − ΣCAS``, a claim pays ``charge − ΣCAS`` over
both levels, and ``BPR02 = ΣCLP04 − ΣPLB`` unless a test overrides it. The envelope counts (SE01, GE01, IEA01)
and control numbers are always computed, so a test breaks exactly one thing by editing the text afterwards.
"""

from dataclasses import dataclass, field
from decimal import Decimal

from hypothesis import strategies as st

from services.intake.feeds import FeedError, ParsedRemittance

Element = str | tuple[str, ...]
"""A simple element, or a composite given as its components."""
Segment = tuple[Element, ...]


@dataclass(frozen=True)
class Delims:
    """Delimiters of an interchange and what goes between segments (``\\n``, ``\\r\\n`` or nothing)."""

    element: str = "*"
    component: str = ":"
    repetition: str = "^"
    segment: str = "~"
    newline: str = "\n"


def amount(value: Decimal) -> str:
    """X12 ``R`` style: no trailing zeros or point (``250``, ``176.4``, ``-40.25``), as many payers send."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


@dataclass
class Adj:
    """One CAS reason/amount (quantity optional) triple."""

    group: str
    reason: str
    amount: Decimal
    quantity: str = ""


@dataclass
class Service:
    """An SVC line; ``paid`` follows from the charge and its adjustments."""

    charge: Decimal
    adjustments: list[Adj] = field(default_factory=list)
    procedure: tuple[str, ...] = ("HC", "99213")
    date: str = "20260714"
    units: str = "1"
    extra: list[Segment] = field(default_factory=list)

    @property
    def paid(self) -> Decimal:
        return self.charge - sum((a.amount for a in self.adjustments), Decimal("0"))


@dataclass
class Claim:
    """A CLP loop; without services ``charge`` must be given, with services it defaults to their sum."""

    pcn: str
    services: list[Service] = field(default_factory=list)
    adjustments: list[Adj] = field(default_factory=list)
    status: str = "1"
    charge_override: Decimal | None = None
    icn: str = "2226181100100"
    filing: str = "MB"
    original_reference: str | None = None
    patient: tuple[str, str] = ("TESTPATIENT", "ALEX")
    member_id: str = "1EG4TE5MK73"
    statement_dates: tuple[str, str] | None = None
    received: str = "20260720"
    extra: list[Segment] = field(default_factory=list)

    @property
    def charge(self) -> Decimal:
        if self.charge_override is not None:
            return self.charge_override
        return sum((s.charge for s in self.services), Decimal("0"))

    @property
    def paid(self) -> Decimal:
        claim_cas = sum((a.amount for a in self.adjustments), Decimal("0"))
        service_cas = sum((a.amount for s in self.services for a in s.adjustments), Decimal("0"))
        return self.charge - claim_cas - service_cas

    @property
    def patient_responsibility(self) -> Decimal:
        every = [*self.adjustments, *(a for s in self.services for a in s.adjustments)]
        return sum((a.amount for a in every if a.group == "PR"), Decimal("0"))


@dataclass
class PlbPair:
    reason: str
    reference: str | None
    amount: Decimal


@dataclass
class Plb:
    pairs: list[PlbPair]
    provider_id: str = "1234567893"
    fiscal_period: str = "20261231"


@dataclass
class Transaction:
    """One ST..SE; the payer defaults to Medicare Part B (01312), the payee to NPI 1234567893."""

    claims: list[Claim] = field(default_factory=list)
    plbs: list[Plb] = field(default_factory=list)
    trace: str = "EFT260803001"
    payment_date: str = "20260803"
    production_date: str = "20260801"
    handling: str = "I"
    method: str = "ACH"
    bpr02_override: Decimal | None = None
    payer_name: str = "MEDICARE PART B"
    payer_id: str = "01312"
    payee_name: str = "SUNNYVALE FAMILY MEDICINE"
    payee_npi: str = "1234567893"
    payee_tin: str = "561234567"
    per_bl: bool = True
    header_extra: list[Segment] = field(default_factory=list)
    st02: str = "0001"

    @property
    def claims_paid(self) -> Decimal:
        return sum((c.paid for c in self.claims), Decimal("0"))

    @property
    def plb_total(self) -> Decimal:
        return sum((p.amount for plb in self.plbs for p in plb.pairs), Decimal("0"))

    @property
    def total(self) -> Decimal:
        if self.bpr02_override is not None:
            return self.bpr02_override
        return self.claims_paid - self.plb_total


def _cas(adjustments: list[Adj]) -> list[Segment]:
    """Group triples by group code, six per CAS segment, in first-seen order."""
    out: list[Segment] = []
    groups: dict[str, list[Adj]] = {}
    for adj in adjustments:
        groups.setdefault(adj.group, []).append(adj)
    for group, items in groups.items():
        for start in range(0, len(items), 6):
            elements: list[Element] = ["CAS", group]
            for adj in items[start : start + 6]:
                elements += [adj.reason, amount(adj.amount), adj.quantity]
            out.append(tuple(elements))
    return out


def claim_segments(claim: Claim) -> list[Segment]:
    """The 2100 loop with its 2110 service lines."""
    segs: list[Segment] = [
        (
            "CLP",
            claim.pcn,
            claim.status,
            amount(claim.charge),
            amount(claim.paid),
            amount(claim.patient_responsibility) if claim.patient_responsibility else "",
            claim.filing,
            claim.icn,
            "11",
            "1",
        ),
        *_cas(claim.adjustments),
        ("NM1", "QC", "1", claim.patient[0], claim.patient[1], "", "", "", "MI", claim.member_id),
    ]
    if claim.original_reference is not None:
        segs.append(("REF", "F8", claim.original_reference))
    if claim.statement_dates:
        segs += [("DTM", "232", claim.statement_dates[0]), ("DTM", "233", claim.statement_dates[1])]
    segs.append(("DTM", "050", claim.received))
    segs += claim.extra
    for line, svc in enumerate(claim.services, start=1):
        segs.append(("SVC", svc.procedure, amount(svc.charge), amount(svc.paid), "", svc.units))
        segs.append(("DTM", "472", svc.date))
        segs += _cas(svc.adjustments)
        segs.append(("REF", "6R", f"{claim.pcn}-{line}"))
        contractual = (a.amount for a in svc.adjustments if (a.group, a.reason) == ("CO", "45"))
        allowed = svc.charge - sum(contractual, Decimal("0"))
        segs.append(("AMT", "B6", amount(allowed)))
        segs += svc.extra
    return segs


def transaction_segments(txn: Transaction) -> list[Segment]:
    """ST..SE with a correct SE01."""
    total = amount(txn.total)
    if txn.method == "NON":
        bpr: Segment = ("BPR", txn.handling, total, "C", "NON", *[""] * 11, txn.payment_date)
    else:
        bpr = (
            "BPR",
            txn.handling,
            total,
            "C",
            txn.method,
            "CCP",
            "01",
            "011000028",
            "DA",
            "000012345",
            "1" + txn.payee_tin,
            "",
            "01",
            "021000021",
            "DA",
            "987654321",
            txn.payment_date,
        )
    segs: list[Segment] = [
        ("ST", "835", txn.st02, "005010X221A1"),
        bpr,
        ("TRN", "1", txn.trace, "1" + txn.payee_tin),
        ("REF", "EV", "PROVSUBMITTER"),
        ("DTM", "405", txn.production_date),
        *txn.header_extra,
        ("N1", "PR", txn.payer_name, "XV", txn.payer_id),
        ("N3", "PO BOX 100275"),
        ("N4", "COLUMBIA", "SC", "292024275"),
        ("PER", "CX", "PROVIDER CONTACT CENTER", "TE", "8665026315"),
    ]
    if txn.per_bl:
        segs.append(("PER", "BL", "EDI TECHNICAL SUPPORT", "TE", "8665026315", "EM", "EDI@EXAMPLE-MAC.GOV"))
    segs += [
        ("N1", "PE", txn.payee_name, "XX", txn.payee_npi),
        ("N3", "100 MAIN STREET"),
        ("N4", "SPRINGFIELD", "SC", "290011234"),
        ("REF", "TJ", txn.payee_tin),
    ]
    if txn.claims:
        segs.append(("LX", "1"))
    for claim in txn.claims:
        segs += claim_segments(claim)
    for plb in txn.plbs:
        elements: list[Element] = ["PLB", plb.provider_id, plb.fiscal_period]
        for pair in plb.pairs:
            composite = (pair.reason,) if pair.reference is None else (pair.reason, pair.reference)
            elements += [composite, amount(pair.amount)]
        segs.append(tuple(elements))
    segs.append(("SE", str(len(segs) + 1), txn.st02))
    return segs


def render(segments: list[Segment], d: Delims = Delims()) -> str:
    """Join segments with the delimiters, dropping trailing empty elements as X12 requires."""
    lines = []
    for seg in segments:
        elements = [e if isinstance(e, str) else d.component.join(e).rstrip(d.component) for e in seg]
        while len(elements) > 1 and elements[-1] == "":
            elements.pop()
        lines.append(d.element.join(elements) + d.segment)
    return d.newline.join(lines) + d.newline


def isa(isa13: str, d: Delims, date: str = "260803", time: str = "0615") -> str:
    """The fixed-length 106-character ISA header."""
    e = d.element
    text = (
        e.join(
            [
                "ISA",
                "00",
                " " * 10,
                "00",
                " " * 10,
                "ZZ",
                f"{'01312':<15}",
                "ZZ",
                f"{'PROVSUBMITTER':<15}",
                date,
                time,
                d.repetition,
                "00501",
                f"{isa13:0>9}",
                "0",
                "P",
                d.component,
            ]
        )
        + d.segment
    )
    assert len(text) == 106
    return text


def interchange(
    groups: list[list[Transaction]], d: Delims = Delims(), isa13: str = "000000101", created: str = "20260803"
) -> str:
    """One ISA..IEA with a GS..GE per group; counts and control numbers computed."""
    segs: list[Segment] = []
    for number, group in enumerate(groups, start=1):
        gs06 = f"{int(isa13) * 10 + number}"
        segs.append(("GS", "HP", "01312", "PROVSUBMITTER", created, "0615", gs06, "X", "005010X221A1"))
        for txn in group:
            segs += transaction_segments(txn)
        segs.append(("GE", str(len(group)), gs06))
    segs.append(("IEA", str(len(groups)), f"{isa13:0>9}"))
    return isa(isa13, d, created[2:]) + d.newline + render(segs, d)


def build_835(
    *transactions: Transaction, d: Delims = Delims(), isa13: str = "000000101", created: str = "20260803"
) -> str:
    """A whole file: one interchange, one group holding the given transactions."""
    return interchange([list(transactions)], d, isa13, created)


# --- hypothesis: random valid 835s with known totals ---------------------------------------------------------

DELIMITER_SETS = [
    Delims(),
    Delims("|", "^", "{", "!", ""),
    Delims("*", ">", "^", "\n", ""),
    Delims("^", "\\", "{", "~", "\r\n"),
    Delims("+", ":", "*", "'", "\n"),
]

_cents = st.integers(min_value=0, max_value=500_000).map(lambda c: Decimal(c).scaleb(-2))
_adj = st.builds(
    Adj,
    st.sampled_from(["CO", "PR", "OA", "PI"]),
    st.sampled_from(["45", "1", "2", "253", "B13"]),
    _cents,
    st.sampled_from(["", "1", "2.5"]),
)
_service = st.builds(
    Service, _cents, st.lists(_adj, max_size=4), date=st.sampled_from(["20260701", "20260715"])
)
_reference = st.one_of(st.none(), st.from_regex(r"[A-Z0-9]{3,19}( {0,6}[A-Z0-9]{1,10})?", fullmatch=True))
_pair = st.builds(
    PlbPair,
    st.sampled_from(["WO", "FB", "72", "L6", "WU", "OB", "CS", "50"]),
    _reference,
    st.integers(-100_000, 100_000).map(lambda c: Decimal(c).scaleb(-2)),
)


@st.composite
def claims(draw: st.DrawFn, index: int) -> Claim:
    """A claim (reversed, i.e. every amount negated, when status is 22)."""
    services = draw(st.lists(_service, max_size=3))
    adjustments = draw(st.lists(_adj, max_size=2))
    charge = None if services else draw(_cents)
    claim = Claim(
        f"PCN{index:05d}", services, adjustments, draw(st.sampled_from(["1", "2", "4", "22"])), charge
    )
    if claim.status == "22":
        for adj in [*claim.adjustments, *(a for s in claim.services for a in s.adjustments)]:
            adj.amount = -adj.amount
        for svc in claim.services:
            svc.charge = -svc.charge
        if claim.charge_override is not None:
            claim.charge_override = -claim.charge_override
    return claim


@st.composite
def transactions(draw: st.DrawFn, st02: str = "0001") -> Transaction:
    """A balanced transaction; an FB pair absorbs a would-be negative BPR02, as payers do."""
    count = draw(st.integers(0, 6))
    txn = Transaction(
        [draw(claims(i)) for i in range(count)],
        st02=st02,
        plbs=[Plb(p) for p in draw(st.lists(st.lists(_pair, min_size=1, max_size=6), max_size=3))],
    )
    if txn.total < 0:
        txn.plbs.append(Plb([PlbPair("FB", txn.trace, txn.total)]))
    if txn.total == 0:
        txn.handling, txn.method = "H", "NON"
    if not txn.claims and not txn.plbs:
        txn.handling, txn.method = "H", "NON"
    return txn


@st.composite
def groups(draw: st.DrawFn, most_per_group: int = 3) -> list[list[Transaction]]:
    """One to three functional groups of one to ``most_per_group`` transactions (ST02 ``<group><nnn>``)."""
    return [
        [draw(transactions(f"{g + 1}{t + 1:03d}")) for t in range(draw(st.integers(1, most_per_group)))]
        for g in range(draw(st.integers(1, 3)))
    ]


@st.composite
def files(draw: st.DrawFn) -> tuple[str, list[Transaction], Delims]:
    """A random valid file: 1-3 transactions in one interchange, random delimiters and line breaks."""
    count = draw(st.integers(1, 3))
    txns = [draw(transactions(f"{i + 1:04d}")) for i in range(count)]
    d = draw(st.sampled_from(DELIMITER_SETS))
    return build_835(*txns, d=d), txns, d


# --- parsing helpers shared by the x12 tests --------------------------------------------------------------------


def parse_all(text: str | bytes, file_name: str = "test.835") -> list[ParsedRemittance | FeedError]:
    """Every result the parser yields for a file (tenant ``t1``, a dummy file hash)."""
    from services.intake.x12 import X12Parser

    content = text.encode() if isinstance(text, str) else text
    return list(X12Parser().parse(content, file_name=file_name, file_sha256="0" * 64, tenant_id="t1"))


def remittances(results: list[ParsedRemittance | FeedError]) -> list[ParsedRemittance]:
    """The good transactions; fails the test with the errors' text when there are any."""
    errors = [str(r) for r in results if isinstance(r, FeedError)]
    assert not errors, errors
    return [r for r in results if isinstance(r, ParsedRemittance)]


def errors(results: list[ParsedRemittance | FeedError]) -> list[FeedError]:
    return [r for r in results if isinstance(r, FeedError)]


def swap(text: str, old: str, new: str) -> str:
    """Replace one occurrence, failing loudly when the fixture no longer contains ``old``."""
    assert old in text, old
    return text.replace(old, new, 1)
