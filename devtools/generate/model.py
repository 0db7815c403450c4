"""The generator's vocabulary: payers, claims, PLB pairs, receivables, the spec of a feed and its files."""

from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from policies.config import medicare_contractors

PAYERS = (
    ("01312", "MEDICARE PART B JE"),
    ("04412", "MEDICARE PART B JH"),
    ("12502", "MEDICARE PART B JL"),
    ("15202", "MEDICARE PART B J15"),
    ("05102", "MEDICARE PART B J5"),
    ("06102", "MEDICARE PART B J6"),
)
"""The first payers of a feed. Every payer is a Medicare contractor of ``policies/data/medicare_contractors.csv``:
the feeds use Medicare references and timelines, and a payer that table does not list is commercial."""


def payer_at(index: int) -> tuple[str, str]:
    """The ``index``-th payer of a feed (id, N1*PR name): :data:`PAYERS`, then the table's other Part B
    contractors in id order. A feed never has two payers with one id."""
    if index < len(PAYERS):
        return PAYERS[index]
    taken = {payer_id for payer_id, _ in PAYERS}
    more = sorted(
        (c.payer_id, f"MEDICARE PART B {c.jurisdiction}")
        for c in medicare_contractors().values()
        if c.workload == "part_b" and c.payer_id not in taken
    )
    if index - len(PAYERS) >= len(more):
        raise ValueError(f"a feed has at most {len(PAYERS) + len(more)} payers (Medicare Part B contractors)")
    return more[index - len(PAYERS)]


PROCEDURES = (("99213", 145_00), ("99214", 210_00), ("99212", 95_00), ("85025", 38_00), ("93000", 62_00))
NAMES = ("RIVERA", "OKAFOR", "LINDQVIST", "NAKAMURA", "DUBOIS", "PETROV", "MENSAH", "ALVAREZ", "KOWALSKI")
GIVEN = ("ALEX", "SAM", "JORDAN", "TAYLOR", "RILEY", "CASEY", "MORGAN", "JAMIE")
CADENCE = 3
"""A payer pays every third day (its own phase), one file per tenant per payment day."""
RECOVERY_WINDOW = 28
"""Days after the determination date within which every recovery falls (interest starts on day 31)."""
DEFAULT_START = date(2026, 7, 6)
MAX_PAIRS = 6


def money(cents: int) -> str:
    """Cents as an X12 ``R`` amount without trailing zeros (``250``, ``176.4``, ``-40.25``)."""
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    text = f"{sign}{whole}.{frac:02d}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def dollars(cents: int) -> str:
    """Cents as a two-place decimal string, as ``expected.json`` and the ledger write them."""
    return str(Decimal(cents).scaleb(-2).quantize(Decimal("0.01")))


def npi(serial: int) -> str:
    """A valid NPI (Luhn check digit over the ``80840`` prefix), distinct per serial."""
    base = f"1{serial:08d}"
    digits = [int(c) for c in "80840" + base]
    total = 0
    for i, digit in enumerate(reversed(digits)):
        doubled = digit * 2 if i % 2 == 0 else digit
        total += doubled - 9 if doubled > 9 else doubled
    return base + str((10 - total % 10) % 10)


@dataclass(slots=True)
class Line:
    """A 2110 service line in cents; adjustments are (group, reason, cents)."""

    code: str
    charge: int
    adjustments: list[tuple[str, str, int]]
    day: date

    @property
    def paid(self) -> int:
        return self.charge - sum(a[2] for a in self.adjustments)


@dataclass(slots=True)
class ClaimPlan:
    """A 2100 claim loop; ``status`` 22 marks a reversal (every amount negated)."""

    pcn: str
    icn: str
    lines: list[Line]
    patient: tuple[str, str]
    status: str = "1"
    original_icn: str | None = None

    @property
    def charge(self) -> int:
        return sum(line.charge for line in self.lines)

    @property
    def paid(self) -> int:
        return sum(line.paid for line in self.lines)

    def negated(self) -> "ClaimPlan":
        """The reversal of this payment: same PCN and ICN, every amount negated."""
        lines = [
            Line(x.code, -x.charge, [(g, r, -a) for g, r, a in x.adjustments], x.day) for x in self.lines
        ]
        return ClaimPlan(self.pcn, self.icn, lines, self.patient, "22")


@dataclass(slots=True)
class Pair:
    """One PLB pair in cents (positive = withheld) and the bucket matching must put it in."""

    code: str
    reference: str | None
    cents: int
    bucket: str


@dataclass(slots=True)
class Receivable:
    """What the plan decided one receivable is and what was recovered of it."""

    reference: str
    payer_id: str
    principal: int
    recovered: int = 0
    refunded: int = 0

    @property
    def status(self) -> str:
        if self.recovered >= self.principal:
            return "refunded" if self.refunded >= self.principal else "settled"
        return "partially_recovered" if self.recovered else "open"


@dataclass(frozen=True)
class Spec:
    """The size of a generated feed; the same spec and seed always give the same bytes."""

    tenants: int = 2
    payers: int = 2
    providers: int = 3
    days: int = 30
    seed: int = 1
    claims_per_remit: int = 10
    story_rate: float | None = None
    """Stories started per remittance (each brings one to four PLB pairs); default: one per 20 claims."""
    start: date = DEFAULT_START
    tenant_prefix: str = "gen"

    def as_json(self) -> dict[str, Any]:
        return {**self.__dict__, "start": self.start.isoformat()}


@dataclass
class _Account:
    """One provider–payer account of a tenant and its agenda of things due on later payment days."""

    tenant: str
    payer_id: str
    payer_name: str
    npi: str
    tin: str
    name: str
    lump_only: bool
    agenda: dict[int, list[Any]] = field(default_factory=dict)
    next_round: int = 0

    def at(self, day: int) -> list[Any]:
        return self.agenda.setdefault(day, [])


@dataclass
class _Tenant:
    """Per-tenant bookkeeping: identifiers, letters, and the expected ledger as the plan builds it."""

    tenant_id: str
    serial: int = 0
    letters: list[dict[str, Any]] = field(default_factory=list)
    receivables: dict[str, Receivable] = field(default_factory=dict)
    forwarding: dict[str, list[int]] = field(default_factory=dict)
    buckets: Counter[str] = field(default_factory=Counter)
    unmatched: int = 0
    claims: int = 0
    remittances: int = 0
    lumps: dict[str, list[tuple[date, str, int]]] = field(default_factory=dict)

    def next(self) -> int:
        self.serial += 1
        return self.serial


@dataclass
class FeedFile:
    """A file of the feed, in the order it is to be delivered."""

    tenant: str
    kind: str
    path: str
