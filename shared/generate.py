"""``offsetstream generate``: realistic synthetic payer feeds and the ledger they must produce.

Writes, for N tenants × M payers × K providers over D days, one 835 file per (tenant, payer, payment day)
holding one transaction per provider, plus each tenant's demand letters as a JSON import file, and
``expected.json``: the final ledger computed from the generator's **own plan** (what it decided to owe and to
recover), never by running our services. Comparing the two (:func:`compare`) is therefore a real check.

The plan draws every story DOMAIN.md §2 tells: reversal + lower correction with a deferred (negative) ``WO``
recovered later in full, in part or not at all; deferrals confirmed by a letter; letter-first receivables
recouped by an immediate positive ``WO`` (plain or Medicare-padded reference); duplicate payments; refunds
(``WO`` + ``72``); recoupments larger than the payment (``BPR02 = 0``, negative ``FB``, positive ``FB``
later); lump recoupments without a reference (oldest first); recoveries of unknown receivables and ``WU``
(unmatched); ``L6`` interest to the provider (non-offset); out-of-order and duplicate files.

Why the plan stays order-proof: the services may see one account's files in any order (the intake topic is
keyed by file), so every story is one whose final ledger does not depend on arrival order. Referenced
recoveries never exceed their receivable; letters (the only receivables refunds, lumps and oversized
recoupments touch) are imported before any 835; lumps run only on accounts whose receivables are all letters
and never exceed what is open. Interest is kept out by construction: every recovery falls within 28 days of
its receivable's determination date and ``OFFSETSTREAM_TODAY`` is pinned to the first day of the feed, so no
30-day period ever comes due — ``expected.json`` asserts ``interest_accrued = 0.00`` for every receivable.
"""

import json
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

import asyncpg

PAYERS = (
    ("01312", "MEDICARE PART B JE"),
    ("04412", "MEDICARE PART B JH"),
    ("12502", "MEDICARE PART B JL"),
    ("15202", "MEDICARE PART B J15"),
    ("05102", "MEDICARE PART B J5"),
    ("06102", "MEDICARE PART B J6"),
)
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


class Generator:
    """Builds the plan day by day (every story is scheduled forward, never back) and writes the files."""

    def __init__(self, spec: Spec, out: Path) -> None:
        self.spec = spec
        self.out = out
        self.rng = random.Random(spec.seed)  # noqa: S311 - deterministic synthetic data, not security
        self.tenants = [_Tenant(f"{spec.tenant_prefix}-t{t + 1:02d}") for t in range(spec.tenants)]
        self.accounts: dict[tuple[int, int], list[_Account]] = {}
        serial = 0
        for t, tenant in enumerate(self.tenants):
            for p in range(spec.payers):
                payer_id, payer_name = PAYERS[p % len(PAYERS)]
                row = []
                for k in range(spec.providers):
                    serial += 1
                    row.append(
                        _Account(
                            tenant.tenant_id,
                            payer_id if p < len(PAYERS) else f"{payer_id}{p}",
                            payer_name,
                            npi(serial * 7919 + t),
                            f"56{serial:07d}",
                            f"{NAMES[serial % len(NAMES)]} FAMILY MEDICINE {serial}",
                            lump_only=(p == 0 and k == 0),
                        )
                    )
                self.accounts[t, p] = row
        self.pinned: set[tuple[str, str, int]] = set()
        """(tenant, payer, day) of files a duplicate-payment story spans: never delivered out of order."""
        self.rate = max(0.5, spec.claims_per_remit / 20)

    # --- identifiers ---------------------------------------------------------------------------------

    def _icn(self, tenant: _Tenant, day: date) -> str:
        return f"2{day:%y}{day.timetuple().tm_yday:03d}{tenant.next():07d}"

    def _fcn(self, tenant: _Tenant, day: date) -> str:
        return f"FCN{day:%y%m%d}{tenant.next():07d}"

    # --- claims ----------------------------------------------------------------------------------------

    def _claim(self, tenant: _Tenant, day: date) -> ClaimPlan:
        """An ordinary paid claim: 1–3 lines, contractual CO-45, coinsurance/deductible, sequestration."""
        rng = self.rng
        serial = tenant.next()
        lines = []
        for _ in range(rng.choice((1, 1, 2, 3))):
            code, base = rng.choice(PROCEDURES)
            charge = base + rng.randrange(0, 60_00)
            allowed = charge * rng.randrange(55, 85) // 100
            adjustments = [("CO", "45", charge - allowed)]
            patient = allowed * 20 // 100 if rng.random() < 0.8 else 0
            if patient:
                adjustments.append(("PR", "2", patient))
            if rng.random() < 0.1:
                adjustments.append(("PR", "1", (allowed - patient) // 4))
            payable = charge - sum(a[2] for a in adjustments)
            adjustments.append(("CO", "253", payable * 2 // 100))
            lines.append(Line(code, charge, adjustments, day - timedelta(days=rng.randrange(5, 40))))
        name = (NAMES[rng.randrange(len(NAMES))], GIVEN[rng.randrange(len(GIVEN))])
        return ClaimPlan(
            f"ACCT{serial:07d}", f"2{day:%y}{day.timetuple().tm_yday:03d}{serial:07d}", lines, name
        )

    # --- the plan --------------------------------------------------------------------------------------

    def _window(self, pdays: list[int], after: int, until: int) -> list[int]:
        return [d for d in pdays if after < d <= until]

    def _recoveries(self, acct: _Account, rec: Receivable, pdays: list[int], after: int, day0: int) -> None:
        """Schedule full, partial, two-part or no recovery within the window; never more than owed."""
        days = self._window(pdays, after, day0 + RECOVERY_WINDOW)
        mode = self.rng.choice(("full", "full", "full", "partial", "two", "none"))
        if not days or mode == "none":
            return
        if mode == "two" and len(days) >= 2:
            first, second = sorted(self.rng.sample(days, 2))
            part = rec.principal * self.rng.randrange(30, 70) // 100
            acct.at(first).append(("recover", rec, part))
            acct.at(second).append(("recover", rec, rec.principal - part))
            return
        amount = rec.principal if mode != "partial" else rec.principal * self.rng.randrange(30, 70) // 100
        acct.at(self.rng.choice(days)).append(("recover", rec, amount))

    def _letter(self, tenant: _Tenant, acct: _Account, reference: str, cents: int, day: date) -> Receivable:
        rec = Receivable(reference, acct.payer_id, cents)
        tenant.receivables[reference] = rec
        tenant.letters.append(
            {
                "kind": "demand_letter",
                "payer_id": acct.payer_id,
                "payee_id": acct.npi,
                "fcn": reference,
                "amount": rec,
                "letter_date": day.isoformat(),
            }
        )
        return rec

    def _start(
        self, tenant: _Tenant, acct: _Account, pdays: list[int], d: int, claims: list[ClaimPlan]
    ) -> None:
        """Start one story on payment day ``d`` (its first claim, if any, is paid today)."""
        rng, when = self.rng, self.spec.start + timedelta(days=d)
        kind = rng.choices(
            ("deferred", "deferral_letter", "letter", "duplicate", "refund", "forwarding"),
            (30, 15, 20, 15, 10, 10),
        )[0]
        later = self._window(pdays, d, d + 14)
        if kind == "deferred" and later:
            original = self._claim(tenant, when)
            claims.append(original)
            d1 = rng.choice(later)
            line = original.lines[0]
            over = max(1, line.paid * rng.randrange(20, 60) // 100)
            correction = self._claim(tenant, when)
            correction.pcn, correction.patient, correction.original_icn = (
                original.pcn,
                original.patient,
                original.icn,
            )
            correction.lines = [Line(x.code, x.charge, list(x.adjustments), x.day) for x in original.lines]
            correction.lines[0].adjustments[0] = ("CO", "45", line.adjustments[0][2] + over)
            rec = Receivable(original.icn, acct.payer_id, over)
            tenant.receivables[rec.reference] = rec
            padded = f"{original.icn:<19}{original.pcn}" if rng.random() < 0.5 else original.icn
            acct.at(d1).append(("claims", [original.negated(), correction]))
            acct.at(d1).append(("pair", Pair("WO", padded, -over, "deferral")))
            self._recoveries(acct, rec, pdays, d1, d1)
        elif kind == "duplicate" and later:
            original = self._claim(tenant, when)
            claims.append(original)
            twin = ClaimPlan(original.pcn, original.icn, original.lines, original.patient)
            twin_day = rng.choice(later)
            self.pinned |= {(tenant.tenant_id, acct.payer_id, d), (tenant.tenant_id, acct.payer_id, twin_day)}
            acct.at(twin_day).append(("claims", [twin]))
            rec = Receivable(original.icn, acct.payer_id, original.paid)
            tenant.receivables[rec.reference] = rec
            self._recoveries(acct, rec, pdays, twin_day, d)
        elif kind == "deferral_letter":
            rec = self._letter(tenant, acct, self._fcn(tenant, when), rng.randrange(40_00, 900_00), when)
            acct.at(d).append(("pair", Pair("WO", rec.reference, -rec.principal, "deferral")))
            self._recoveries(acct, rec, pdays, d, d)
        elif kind in ("letter", "refund", "forwarding"):
            letter_day = max(0, d - rng.randrange(0, 6))
            letter_date = self.spec.start + timedelta(days=letter_day)
            window = self._window(pdays, d, letter_day + RECOVERY_WINDOW)
            if kind != "letter" and not window:
                return
            rec = self._letter(
                tenant, acct, self._fcn(tenant, letter_date), rng.randrange(40_00, 900_00), letter_date
            )
            if kind == "letter":
                self._recoveries(acct, rec, pdays, d, letter_day)
            elif kind == "refund":
                acct.at(rng.choice(window)).append(("refund", rec))
            else:
                acct.at(rng.choice(window)).append(("oversized", rec))

    def _lump_round(self, tenant: _Tenant, acct: _Account, pdays: list[int], d: int, last: bool) -> None:
        """Letters over a few days, then lump recoupments (no reference) that settle them oldest first."""
        rng = self.rng
        recs = []
        for _ in range(rng.randrange(2, 5)):
            when = self.spec.start + timedelta(days=d + rng.randrange(0, 5))
            rec = self._letter(tenant, acct, self._fcn(tenant, when), rng.randrange(60_00, 700_00), when)
            recs.append(rec)
            tenant.lumps.setdefault(acct.npi + acct.payer_id, []).append((when, rec.reference, 0))
        days = self._window(pdays, d + 5, d + RECOVERY_WINDOW)
        if not days:
            return
        total = sum(r.principal for r in recs)
        if last:
            total = total * rng.randrange(60, 101) // 100
        chosen = sorted(rng.sample(days, min(len(days), rng.randrange(1, 4))))
        for i, day in enumerate(chosen):
            amount = total if i == len(chosen) - 1 else total * rng.randrange(20, 45) // 100
            total -= amount
            acct.at(day).append(("lump", amount))

    def _due(
        self,
        tenant: _Tenant,
        acct: _Account,
        when: date,
        item: tuple[Any, ...],
        claims: list[ClaimPlan],
        pairs: list[Pair],
        oversized: list[Receivable],
    ) -> None:
        """Put one scheduled step of a story into today's transaction, booking what it does to the plan."""
        rng = self.rng
        kind = item[0]
        if kind == "claims":
            claims.extend(item[1])
        elif kind == "pair":
            pairs.append(item[1])
        elif kind == "recover":
            rec, amount = item[1], item[2]
            rec.recovered += amount
            ref = (
                rec.reference
                if rng.random() < 0.7
                else f"{rec.reference:<19}{'ACCT' + str(rng.randrange(10**6))}"
            )
            pairs.append(Pair("WO", ref, amount, "allocated"))
        elif kind == "refund":
            rec = item[1]
            rec.recovered = rec.refunded = rec.principal
            pairs += [
                Pair("WO", rec.reference, rec.principal, "refund_acknowledged"),
                Pair("72", rec.reference, -rec.principal, "refund_acknowledged"),
            ]
        elif kind == "lump":
            pairs.append(Pair("WO", None, item[1], "allocated"))
            tenant.lumps.setdefault(acct.npi + acct.payer_id, []).append((when, "", item[1]))
        elif kind == "oversized":
            oversized.append(item[1])
        elif kind == "fb_apply":
            pairs.append(Pair("FB", item[1], item[2], "forwarding_balance"))
            tenant.forwarding[item[1]][1] += item[2]

    def _incidental(self, tenant: _Tenant, when: date) -> list[Pair]:
        """Pairs no story needs: interest to the provider, a recovery of an unknown FCN, a WU."""
        rng, pairs = self.rng, []
        if rng.random() < 0.25:
            pairs.append(Pair("L6", None, -rng.randrange(50, 900), "non_offset"))
        if rng.random() < 0.05:
            pairs.append(Pair("WO", self._fcn(tenant, when), rng.randrange(20_00, 200_00), "unmatched"))
        if rng.random() < 0.03:
            pairs.append(Pair("WU", None, rng.randrange(10_00, 90_00), "unmatched"))
        return pairs

    def _transaction(self, tenant: _Tenant, acct: _Account, pdays: list[int], d: int, st02: int) -> list[str]:
        """Build one payee's transaction for payment day ``d``: ordinary claims, stories due, balancing FB."""
        rng, when = self.rng, self.spec.start + timedelta(days=d)
        claims = [self._claim(tenant, when) for _ in range(self.spec.claims_per_remit)]
        if acct.lump_only:
            if d >= acct.next_round:
                acct.next_round = d + 30
                self._lump_round(tenant, acct, pdays, d, d + 30 > self.spec.days)
        else:
            starts = int(self.rate) + (1 if rng.random() < self.rate - int(self.rate) else 0)
            for _ in range(starts):
                self._start(tenant, acct, pdays, d, claims)
        pairs: list[Pair] = []
        oversized: list[Receivable] = []
        for item in acct.agenda.pop(d, []):
            self._due(tenant, acct, when, item, claims, pairs, oversized)
        pairs += self._incidental(tenant, when)
        paid = sum(c.paid for c in claims)
        for rec in oversized:
            rec.principal = max(paid - sum(p.cents for p in pairs), 0) + rng.randrange(40_00, 400_00)
            rec.recovered = rec.principal
            pairs.append(Pair("WO", rec.reference, rec.principal, "allocated"))
        trace = f"EFT{when:%y%m%d}{tenant.next():07d}"
        total = paid - sum(p.cents for p in pairs)
        if total < 0:
            pairs.append(Pair("FB", trace, total, "forwarding_balance"))
            tenant.forwarding[trace] = [-total, 0]
            following = [x for x in pdays if x > d]
            if following:
                acct.at(following[0]).append(("fb_apply", trace, -total))
            total = 0
        for pair in pairs:
            tenant.buckets[pair.bucket] += 1
            if pair.bucket == "unmatched":
                tenant.unmatched += pair.cents
        tenant.claims += len(claims)
        tenant.remittances += 1
        return transaction_segments(acct, claims, pairs, trace, when, total, f"{st02:04d}")

    def plan_and_write(self) -> list[FeedFile]:
        """Walk the days, write each file as soon as its last payee is built, then letters and expected."""
        spec = self.spec
        for tenant in self.tenants:
            (self.out / tenant.tenant_id / "835").mkdir(parents=True, exist_ok=True)
        dated: list[tuple[bool, FeedFile]] = []
        for d in range(spec.days):
            for t, tenant in enumerate(self.tenants):
                for p in range(spec.payers):
                    if (d + p) % CADENCE:
                        continue
                    pdays = [x for x in range(spec.days) if (x + p) % CADENCE == 0]
                    txns = [
                        self._transaction(tenant, acct, pdays, d, k + 1)
                        for k, acct in enumerate(self.accounts[t, p])
                    ]
                    when = spec.start + timedelta(days=d)
                    isa13 = f"{(t + 1) * 10_000_000 + (p + 1) * 100_000 + d:09d}"
                    acct = self.accounts[t, p][0]
                    rel = f"{tenant.tenant_id}/835/{when:%Y-%m-%d}_{acct.payer_id}_{isa13}.835"
                    with (self.out / rel).open("w", encoding="ascii", newline="") as handle:
                        write_interchange(handle, acct.payer_id, isa13, when, [txns])
                    pinned = (tenant.tenant_id, acct.payer_id, d) in self.pinned
                    dated.append((pinned, FeedFile(tenant.tenant_id, "835", rel)))
        feed = [FeedFile(t.tenant_id, "letters", f"{t.tenant_id}/letters.json") for t in self.tenants]
        feed += self._deliver_order(dated)
        for tenant in self.tenants:
            letters = [{**x, "amount": dollars(x["amount"].principal)} for x in tenant.letters]
            (self.out / tenant.tenant_id / "letters.json").write_text(json.dumps(letters, indent=1) + "\n")
        (self.out / "manifest.json").write_text(
            json.dumps({"spec": spec.as_json(), "feed": [f.__dict__ for f in feed]}, indent=1) + "\n"
        )
        (self.out / "expected.json").write_text(json.dumps(self.expected(), indent=1, sort_keys=True) + "\n")
        return feed

    def _deliver_order(self, files: list[tuple[bool, FeedFile]]) -> list[FeedFile]:
        """Date order, then ~10 % of files swapped with one up to 3 places later (out of order) and ~5 %
        delivered twice (same bytes, another name).

        Files of a duplicate-payment story are never swapped: detection compares a claim only with
        *earlier-dated* claims it has already seen, so a duplicate delivered before its original is missed
        by both (reported as a finding; the plan keeps to what the services handle).
        """
        order = [f for _, f in files]
        pinned = {id(f) for p, f in files if p}
        for i in range(len(order) - 1):
            if self.rng.random() < 0.1:
                j = min(len(order) - 1, i + self.rng.randrange(1, 4))
                if id(order[i]) not in pinned and id(order[j]) not in pinned:
                    order[i], order[j] = order[j], order[i]
        out: list[FeedFile] = []
        for f in order:
            out.append(f)
            if self.rng.random() < 0.05:
                copy = f.path.replace(".835", ".resent.835")
                (self.out / copy).write_bytes((self.out / f.path).read_bytes())
                out.append(FeedFile(f.tenant, "835", copy))
        return out

    def expected(self) -> dict[str, Any]:
        """The ledger the plan implies, tenant by tenant (lumps water-filled oldest first)."""
        tenants: dict[str, Any] = {}
        for tenant in self.tenants:
            for events in tenant.lumps.values():
                letters = sorted((when, ref) for when, ref, cents in events if ref)
                left = sum(cents for _, ref, cents in events if not ref)
                for _, ref in letters:
                    rec = tenant.receivables[ref]
                    take = min(left, rec.principal - rec.recovered)
                    rec.recovered += take
                    left -= take
            tenants[tenant.tenant_id] = {
                "receivables": {
                    ref: {
                        "payer_id": r.payer_id,
                        "principal": dollars(r.principal),
                        "principal_recovered": dollars(r.recovered),
                        "refunded": dollars(r.refunded),
                        "interest_accrued": "0.00",
                        "status": r.status,
                    }
                    for ref, r in sorted(tenant.receivables.items())
                },
                "forwarding_balances": {
                    ref: {"opened": dollars(o), "applied": dollars(a)}
                    for ref, (o, a) in sorted(tenant.forwarding.items())
                },
                "plb_pairs_by_bucket": dict(sorted(tenant.buckets.items())),
                "unmatched_total": dollars(tenant.unmatched),
                "claim_payments": tenant.claims,
                "remittances": tenant.remittances,
            }
        return {
            "spec": self.spec.as_json(),
            "today": self.spec.start.isoformat(),
            "interest": "none by construction: recoveries fall within 28 days of determination and "
            "OFFSETSTREAM_TODAY is pinned to the first day of the feed",
            "tenants": tenants,
        }


# --- X12 text -----------------------------------------------------------------------------------------------


def _seg(*elements: str) -> str:
    items = list(elements)
    while len(items) > 1 and items[-1] == "":
        items.pop()
    return "*".join(items) + "~"


def claim_segments(claim: ClaimPlan) -> list[str]:
    """The 2100 loop with its 2110 service lines (CAS grouped by group code, six triples per segment)."""
    every = [a for line in claim.lines for a in line.adjustments]
    patient = sum(a[2] for a in every if a[0] == "PR")
    segs = [
        _seg(
            "CLP",
            claim.pcn,
            claim.status,
            money(claim.charge),
            money(claim.paid),
            money(patient) if patient else "",
            "MB",
            claim.icn,
            "11",
            "1",
        ),
        _seg(
            "NM1",
            "QC",
            "1",
            claim.patient[0],
            claim.patient[1],
            "",
            "",
            "",
            "MI",
            f"{claim.pcn[-7:]}MB{claim.icn[-3:]}",
        ),
    ]
    if claim.original_icn:
        segs.append(_seg("REF", "F8", claim.original_icn))
    first = min(line.day for line in claim.lines)
    segs.append(_seg("DTM", "050", f"{first + timedelta(days=3):%Y%m%d}"))
    for n, line in enumerate(claim.lines, start=1):
        segs.append(_seg("SVC", f"HC:{line.code}", money(line.charge), money(line.paid), "", "1"))
        segs.append(_seg("DTM", "472", f"{line.day:%Y%m%d}"))
        groups: dict[str, list[tuple[str, int]]] = {}
        for group, reason, cents in line.adjustments:
            groups.setdefault(group, []).append((reason, cents))
        for group, items in groups.items():
            for i in range(0, len(items), 6):
                segs.append(_seg("CAS", group, *(x for r, c in items[i : i + 6] for x in (r, money(c), ""))))
        segs.append(_seg("REF", "6R", f"{claim.pcn}-{n}"))
        contractual = sum(c for g, r, c in line.adjustments if (g, r) == ("CO", "45"))
        segs.append(_seg("AMT", "B6", money(line.charge - contractual)))
    return segs


def transaction_segments(
    acct: _Account, claims: list[ClaimPlan], pairs: list[Pair], trace: str, when: date, total: int, st02: str
) -> list[str]:
    """ST..SE of one payee; BPR is a notification (``H``/``NON``) when nothing is paid."""
    if total:
        bpr = _seg(
            "BPR",
            "I",
            money(total),
            "C",
            "ACH",
            "CCP",
            "01",
            "011000028",
            "DA",
            "000012345",
            "1" + acct.tin,
            "",
            "01",
            "021000021",
            "DA",
            "987654321",
            f"{when:%Y%m%d}",
        )
    else:
        bpr = _seg("BPR", "H", "0", "C", "NON", *[""] * 11, f"{when:%Y%m%d}")
    segs = [
        _seg("ST", "835", st02, "005010X221A1"),
        bpr,
        _seg("TRN", "1", trace, "1" + acct.tin),
        _seg("DTM", "405", f"{when - timedelta(days=2):%Y%m%d}"),
        _seg("N1", "PR", acct.payer_name, "XV", acct.payer_id),
        _seg("N3", "PO BOX 100275"),
        _seg("N4", "COLUMBIA", "SC", "292024275"),
        _seg("PER", "BL", "EDI TECHNICAL SUPPORT", "TE", "8665026315"),
        _seg("N1", "PE", acct.name, "XX", acct.npi),
        _seg("N3", "100 MAIN STREET"),
        _seg("N4", "SPRINGFIELD", "SC", "290011234"),
        _seg("REF", "TJ", acct.tin),
        _seg("LX", "1"),
    ]
    for claim in claims:
        segs += claim_segments(claim)
    for i in range(0, len(pairs), MAX_PAIRS):
        elements = ["PLB", acct.npi, f"{when.year}1231"]
        for pair in pairs[i : i + MAX_PAIRS]:
            elements += [
                pair.code if pair.reference is None else f"{pair.code}:{pair.reference}",
                money(pair.cents),
            ]
        segs.append(_seg(*elements))
    segs.append(_seg("SE", str(len(segs) + 1), st02))
    return segs


def write_interchange(
    out: TextIO, sender: str, isa13: str, when: date, groups: list[list[list[str]]]
) -> None:
    """ISA..IEA with one GS..GE per group of transactions (given as segment lists), one segment a line."""
    isa = "*".join(
        [
            "ISA",
            "00",
            " " * 10,
            "00",
            " " * 10,
            "ZZ",
            f"{sender:<15}",
            "ZZ",
            f"{'PROVSUBMITTER':<15}",
            f"{when:%y%m%d}",
            "0615",
            "^",
            "00501",
            isa13,
            "0",
            "P",
            ":",
        ]
    )
    out.write(isa + "~\n")
    for n, txns in enumerate(groups, start=1):
        gs06 = f"{int(isa13) % 100_000_000 * 10 + n}"
        out.write(
            _seg("GS", "HP", sender, "PROVSUBMITTER", f"{when:%Y%m%d}", "0615", gs06, "X", "005010X221A1")
            + "\n"
        )
        for txn in txns:
            out.write("\n".join(txn) + "\n")
        out.write(_seg("GE", str(len(txns)), gs06) + "\n")
    out.write(_seg("IEA", str(len(groups)), isa13) + "\n")


def generate(spec: Spec, out: Path) -> list[FeedFile]:
    """Write a whole feed under ``out`` (manifest.json, expected.json, per-tenant 835 files and letters)."""
    out.mkdir(parents=True, exist_ok=True)
    return Generator(spec, out).plan_and_write()


def feed_order(out: Path) -> list[FeedFile]:
    """The delivery order written by :func:`generate` (letters of every tenant first)."""
    raw = json.loads((out / "manifest.json").read_text())
    return [FeedFile(**item) for item in raw["feed"]]


def iter_transactions(
    count: int, claims_per_txn: int, seed: int = 1, plb_pairs: int = 3
) -> Iterator[tuple[list[str], int]]:
    """Standalone balanced transactions for the parse benchmark: (segments, claims), one PLB segment each.

    One PLB segment with at most six pairs, because the peer reader we compare against reads no more.
    """
    gen = Generator(
        Spec(tenants=1, payers=1, providers=1, days=1, seed=seed, claims_per_remit=claims_per_txn), Path()
    )
    tenant, acct = gen.tenants[0], gen.accounts[0, 0][0]
    for n in range(count):
        when = gen.spec.start + timedelta(days=n % 28)
        claims = [gen._claim(tenant, when) for _ in range(claims_per_txn)]
        for i in range(0, claims_per_txn, 50):
            original = claims[i]
            claims.append(original.negated())
        pairs = [Pair("WO", gen._fcn(tenant, when), 1000 + n % 5000, "") for _ in range(plb_pairs - 1)]
        pairs.append(Pair("L6", None, -237, ""))
        total = sum(c.paid for c in claims) - sum(p.cents for p in pairs)
        trace = f"EFT{when:%y%m%d}{tenant.next():07d}"
        yield transaction_segments(acct, claims, pairs, trace, when, total, f"{n + 1:04d}"), len(claims)


# --- the checker --------------------------------------------------------------------------------------------


async def actual(conn: asyncpg.Connection, tenant: str) -> dict[str, Any]:
    """The same shape as one tenant of ``expected.json``, read (read-only) from matching.* and intake.*."""
    rows = await conn.fetch(
        """SELECT reference, payer_id, principal, principal_recovered, refunded, interest_accrued, status
           FROM matching.receivables WHERE tenant_id = $1""",
        tenant,
    )
    fbs = await conn.fetch(
        "SELECT reference, opened_amount, applied_amount FROM matching.forwarding_balances WHERE tenant_id = $1",
        tenant,
    )
    buckets = await conn.fetch(
        """SELECT bucket, count(*) AS n, sum(unmatched_amount) AS unmatched FROM matching.adjustments
           WHERE tenant_id = $1 GROUP BY bucket""",
        tenant,
    )
    remits = await conn.fetchrow(
        "SELECT count(*) AS n, COALESCE(sum(claim_count), 0) AS claims FROM intake.remittances WHERE tenant_id = $1",
        tenant,
    )
    return {
        "receivables": {
            r["reference"]: {
                "payer_id": r["payer_id"],
                "principal": str(r["principal"]),
                "principal_recovered": str(r["principal_recovered"]),
                "refunded": str(r["refunded"]),
                "interest_accrued": str(r["interest_accrued"]),
                "status": r["status"],
            }
            for r in rows
        },
        "forwarding_balances": {
            r["reference"]: {"opened": str(r["opened_amount"]), "applied": str(r["applied_amount"])}
            for r in fbs
        },
        "plb_pairs_by_bucket": {r["bucket"]: r["n"] for r in buckets},
        "unmatched_total": str(sum((r["unmatched"] for r in buckets), Decimal("0.00"))),
        "claim_payments": int(remits["claims"]),
        "remittances": int(remits["n"]),
    }


def differences(expected: dict[str, Any], found: dict[str, Any], path: str = "") -> list[str]:
    """Every leaf where the two differ, as ``path: expected X, found Y`` lines."""
    if isinstance(expected, dict) and isinstance(found, dict):
        out: list[str] = []
        for key in sorted(set(expected) | set(found)):
            where = f"{path}.{key}" if path else str(key)
            if key not in found:
                out.append(f"{where}: expected {json.dumps(expected[key])}, missing in the ledger")
            elif key not in expected:
                out.append(f"{where}: not expected, found {json.dumps(found[key], default=str)}")
            else:
                out += differences(expected[key], found[key], where)
        return out
    return [] if expected == found else [f"{path}: expected {expected!r}, found {found!r}"]


async def compare(conn: asyncpg.Connection, out: Path, tenant: str | None = None) -> list[str]:
    """Differences between ``out/expected.json`` and the ledger, for one tenant or every generated one."""
    expected = json.loads((out / "expected.json").read_text())["tenants"]
    problems: list[str] = []
    for tid in [tenant] if tenant else sorted(expected):
        if tid not in expected:
            return [f"{tid}: not a tenant of this feed ({', '.join(sorted(expected))})"]
        problems += differences(expected[tid], await actual(conn, tid), tid)
    return problems
