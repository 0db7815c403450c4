"""The batch reference reconciler: a whole feed and a business date in, the final ledger out.

Written from ``../shared/DOMAIN.md`` alone (plus the Medicare rate table, a data file), importing nothing of
the services: it is the independent side of the differential test (DESIGN.md invariant 6). It reads the
whole feed at once and works in business-date order, so arrival order cannot matter to it by construction.

The rules it applies, each with where it comes from:

- **One debt, many identifiers** (DOMAIN §2 "three ways a recovery shows up", DESIGN invariant 6). Evidence
  of an overpayment names it by one or more identifiers: a reversal (``CLP02=22``) paired with its correction
  in the same 835 (``REF*F8`` = the reversed ICN, or the same ``CLP01``) names the reversed and the corrected
  claim's ``CLP07``; a negative ``WO`` names its reference (the FCN part, for Medicare positions 1–19); a
  demand letter names its FCN and the claims (ICNs) it lists. Identifiers that occur together in one piece
  of evidence belong to one debt (union–find per payer), whatever order the evidence came in.
- **Principal**: evidence of different channels (claim, deferral, letter) confirms, evidence of one channel
  about different subjects adds: the largest per-channel sum.
- **Determination date** (day 0, DOMAIN §3): the demand letter's date when there is one, else the earliest
  evidence (the remittance that reversed or deferred it).
- **Netting** (DOMAIN §2 way 1): a reversal + lower correction in one 835 recoups the difference right there
  (the net claim payment is lower), unless the same 835 defers that debt with a negative ``WO`` (way 3), which
  puts the money back.
- **PLB pairs** (DOMAIN §2, sign: positive = withheld): a positive ``WO`` whose reference names a debt recovers
  it, the rest (reference naming nothing, or more than is owed) goes to the work queue (DOMAIN §5);
  ``72`` + ``WO`` on the same reference in one 835 netting to zero is the provider's refund acknowledged (not
  cash, never queued; with no known debt it is a refund acknowledged for an unknown receivable); ``FB``
  negative opens a forwarding balance under its reference (else the remittance's TRN02), positive applies the
  balance it names (those first: a named FB is certain, so an FB without a reference never takes its room),
  else, in business-date order, the oldest balance opened by its payment date that takes the whole amount
  (an FB applies an *earlier* carried balance); positive ``WU/OB/TL`` go to the work queue;
  everything else (``L6``, ``50``, ``IR`` …) is classified, never applied to a receivable.
- **Money** (DOMAIN §3): every recovery pays accrued interest first, then principal, in business-date order;
  interest charged on a day comes before recoveries of that day.
- **Interest**: Medicare (payer ids of the contractor table) — for each full 30-day period after the
  determination date, period *n* (days 30(n−1)+1 … 30n) is charged on day 30n+1 on the principal outstanding
  at the end of day 30n: ``principal × annual rate × 30/360`` rounded half-up to the cent, at the rate in
  force on the determination date (``policies/data/medicare_interest_rates.csv``), nothing once
  principal is 0. Commercial default (README / the commercial policy's documented default): no interest.
- **Staff actions**: a refund check recorded by staff is a refund on its date; a write-off closes what is
  owed on its date (the open balance when no amount is given), interest first, and ends accrual.
"""

import csv
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from .x12 import Remittance, read_835

ZERO = Decimal("0.00")
CENT = Decimal("0.01")
PERIOD_DAYS = 30
RATES_CSV = Path(__file__).resolve().parents[2] / "policies" / "data" / "medicare_interest_rates.csv"

MEDICARE_PAYERS = frozenset(
    {
        # Part A/B MACs and DME MACs (a subset of the shipped contractor table; payers named in the brief)
        "01312",
        "04412",
        "12502",
        "15202",
        "05102",
        "06102",
    }
)
"""Payer ids whose policy is Medicare; every other payer gets the commercial default (DESIGN.md: a payer
nothing names gets the commercial default, never Medicare)."""

REVIEW_CODES = frozenset({"WU", "OB", "TL"})


# --- inputs --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Letter:
    """A demand letter (or provider-identified overpayment) as staff entered it."""

    payer_id: str
    payee_id: str
    fcn: str
    amount: Decimal
    letter_date: date
    claims: tuple[str, ...] = ()
    kind: str = "demand_letter"


@dataclass(frozen=True)
class StaffAction:
    """A step staff recorded on a receivable: ``write_off`` or ``refund_sent`` (others move no money)."""

    kind: str
    payer_id: str
    payee_id: str
    reference: str
    effective: date
    amount: Decimal | None = None


@dataclass(frozen=True)
class Feed:
    """Everything that happened: payer files (bytes), letters and staff actions, in no particular order."""

    files: tuple[bytes, ...]
    letters: tuple[Letter, ...] = ()
    actions: tuple[StaffAction, ...] = ()


# --- outputs -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    number: int
    due: date
    basis: Decimal
    rate: Decimal
    amount: Decimal


@dataclass
class Receivable:
    """One debt as it stands on the business date."""

    payer_id: str
    identifiers: frozenset[str]
    policy: str
    principal: Decimal
    determination: date
    interest_accrued: Decimal = ZERO
    interest_recovered: Decimal = ZERO
    principal_recovered: Decimal = ZERO
    refunded: Decimal = ZERO
    written_off: Decimal = ZERO
    periods: list[Period] = field(default_factory=list)

    @property
    def key(self) -> str:
        """A stable name for reports: the smallest identifier."""
        return min(self.identifiers)

    @property
    def recovered(self) -> Decimal:
        return self.principal_recovered + self.interest_recovered

    @property
    def balance(self) -> Decimal:
        """principal + interest accrued − recovered − written off (DESIGN.md's balance identity)."""
        return self.principal + self.interest_accrued - self.recovered - self.written_off

    @property
    def status(self) -> str:
        if self.balance <= 0:
            if self.written_off > 0:
                return "written_off"
            if self.refunded > 0 and self.recovered - self.refunded <= 0:
                return "refunded"
            return "settled"
        if self.recovered > 0:
            return "partially_recovered"
        return "open"


@dataclass(frozen=True)
class PairRef:
    """Where a PLB pair sits: remittance trace, reason code, reference (stripped), position."""

    trace: str
    code: str
    reference: str | None
    ordinal: int


@dataclass(frozen=True)
class Allocation:
    """Money of one source applied to one receivable. ``source`` is the PLB pair, or None for netting
    (the claim payments of remittance ``trace``) and staff refunds."""

    receivable: str
    source: PairRef | None
    trace: str
    kind: str
    """``offset``, ``refund`` or ``netting``."""
    day: date
    to_interest: Decimal
    to_principal: Decimal


@dataclass(frozen=True)
class QueueItem:
    """Withheld money no receivable explains (DOMAIN §5 work queue)."""

    source: PairRef
    amount: Decimal
    why: str


@dataclass
class Forwarding:
    opened: Decimal = ZERO
    applied: Decimal = ZERO
    opened_on: date | None = None


@dataclass
class Result:
    receivables: list[Receivable]
    allocations: list[Allocation]
    queue: list[QueueItem]
    forwarding: dict[tuple[str, str], Forwarding]
    """(payer id, reference) → balance opened/applied."""
    buckets: dict[PairRef, str]
    """Every PLB pair's bucket: allocated, unmatched, forwarding_balance, deferral, refund_acknowledged,
    non_offset (a pair partly allocated and partly queued is ``allocated``)."""
    refunds_for_unknown: list[PairRef]
    """``72`` + ``WO`` refund pairs whose reference names no receivable."""

    def receivable(self, identifier: str) -> Receivable | None:
        return next((r for r in self.receivables if identifier in r.identifiers), None)


# --- helpers -------------------------------------------------------------------------------------------------


def policy_of(payer_id: str, medicare_payers: frozenset[str] = MEDICARE_PAYERS) -> str:
    return "medicare" if payer_id in medicare_payers else "commercial"


def read_rates(path: Path = RATES_CSV) -> list[tuple[date, Decimal]]:
    with path.open(newline="") as handle:
        return sorted(
            (date.fromisoformat(r["effective_date"]), Decimal(r["annual_rate"]))
            for r in csv.DictReader(handle)
        )


def rate_on(rates: list[tuple[date, Decimal]], day: date) -> Decimal:
    applicable = [rate for effective, rate in rates if effective <= day]
    if not applicable:
        raise ValueError(f"no Medicare rate in force on {day}")
    return applicable[-1]


def period_interest(basis: Decimal, rate: Decimal) -> Decimal:
    return (basis * rate * PERIOD_DAYS / 360).quantize(CENT, rounding=ROUND_HALF_UP)


def receivable_key(reference: str | None, policy: str) -> str | None:
    """The identifier a PLB reference cites: Medicare positions 1–19 (the FCN; 20–39 hold the patient control
    number) when the reference is longer than the FCN field, else the whole reference."""
    if reference is None or not reference.strip():
        return None
    text = reference.rstrip()
    if policy == "medicare" and len(text) > 19:
        return text[:19].strip() or None
    return text.strip()


def identifiers_of(key: str, policy: str) -> tuple[str, ...]:
    """The identifiers one cited key stands for: itself, and for Medicare a 15-digit FCN also the 13-digit ICN
    it ends with (DOMAIN §2: some contractors use a 15-digit FCN whose last 13 digits are the ICN)."""
    if policy == "medicare" and len(key) == 15 and key.isdigit():
        return (key, key[-13:])
    return (key,)


class _Links:
    """Union–find over (payer, identifier)."""

    def __init__(self) -> None:
        self.parent: dict[tuple[str, str], tuple[str, str]] = {}

    def find(self, item: tuple[str, str]) -> tuple[str, str]:
        self.parent.setdefault(item, item)
        while self.parent[item] != item:
            self.parent[item] = self.parent[self.parent[item]]
            item = self.parent[item]
        return item

    def union(self, items: list[tuple[str, str]]) -> None:
        roots = [self.find(i) for i in items]
        for other in roots[1:]:
            self.parent[self.find(other)] = self.find(roots[0])


@dataclass(frozen=True)
class _Evidence:
    payer_id: str
    channel: str
    subject: str
    amount: Decimal
    day: date
    identifiers: tuple[str, ...]
    remittance: str | None = None
    """Trace of the remittance it came from (claims and deferrals)."""


@dataclass(frozen=True)
class _Money:
    """A dated movement on a debt: a recovery (offset/refund/netting) or a write-off."""

    day: date
    order: int
    kind: str
    amount: Decimal | None
    source: PairRef | None
    trace: str


# --- the reconciler ------------------------------------------------------------------------------------------


def reconcile(  # noqa: PLR0912
    feed: Feed,
    business_date: date,
    *,
    medicare_payers: frozenset[str] = MEDICARE_PAYERS,
    rates: list[tuple[date, Decimal]] | None = None,
) -> Result:
    """The final ledger of a whole feed on ``business_date``."""
    rate_table = rates if rates is not None else read_rates()
    remittances = _remittances(feed.files)
    links = _Links()
    evidence: list[_Evidence] = []

    # 1. evidence of overpayments, and the identifiers each links
    for remit in remittances:
        policy = policy_of(remit.payer_id, medicare_payers)
        evidence += _claim_evidence(remit)
        for pair in remit.pairs:
            key = receivable_key(pair.reference, policy)
            if pair.code == "WO" and pair.amount < 0 and key is not None:
                evidence.append(
                    _Evidence(
                        remit.payer_id,
                        "deferral",
                        f"plb:{remit.trace}:{pair.ordinal}",
                        -pair.amount,
                        remit.payment_date,
                        identifiers_of(key, policy),
                        remit.trace,
                    )
                )
    for letter in feed.letters:
        channel = "letter" if letter.kind == "demand_letter" else "provider_identified"
        ids = tuple(dict.fromkeys([letter.fcn.strip(), *(c.strip() for c in letter.claims if c.strip())]))
        evidence.append(
            _Evidence(
                letter.payer_id,
                channel,
                f"letter:{letter.fcn.strip()}:{letter.letter_date}:{letter.kind}",
                letter.amount,
                letter.letter_date,
                ids,
            )
        )
    for ev in evidence:
        links.union([(ev.payer_id, i) for i in ev.identifiers])

    # 2. debts: one per linked group of identifiers that has evidence
    groups: dict[tuple[str, str], list[_Evidence]] = defaultdict(list)
    for ev in evidence:
        groups[links.find((ev.payer_id, ev.identifiers[0]))].append(ev)
    members: dict[tuple[str, str], set[str]] = defaultdict(set)
    for payer_id, identifier in list(links.parent):
        members[links.find((payer_id, identifier))].add(identifier)
    debts: dict[tuple[str, str], Receivable] = {}
    for root, items in groups.items():
        payer_id = root[0]
        per_subject: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
        for ev in items:
            per_subject[ev.channel, ev.subject] = max(per_subject[ev.channel, ev.subject], ev.amount)
        per_channel: dict[str, Decimal] = defaultdict(lambda: ZERO)
        for (channel, _), amount in per_subject.items():
            per_channel[channel] += amount
        letters = [ev.day for ev in items if ev.channel == "letter"]
        debts[root] = Receivable(
            payer_id=payer_id,
            identifiers=frozenset(members[root]),
            policy=policy_of(payer_id, medicare_payers),
            principal=max(per_channel.values()),
            determination=min(letters) if letters else min(ev.day for ev in items),
        )

    def debt_of(payer_id: str, identifier: str | None) -> tuple[str, str] | None:
        if identifier is None:
            return None
        for candidate in identifiers_of(identifier, policy_of(payer_id, medicare_payers)):
            if (payer_id, candidate) in links.parent and links.find((payer_id, candidate)) in debts:
                return links.find((payer_id, candidate))
        return None

    money: dict[tuple[str, str], list[_Money]] = defaultdict(list)
    order = 0

    # 3. netting: a reversal + correction recouped in its own 835 unless that 835 defers the debt
    for root, items in groups.items():
        deferred_in = {ev.remittance for ev in items if ev.channel == "deferral"}
        for ev in items:
            if ev.channel == "claim" and ev.remittance not in deferred_in:
                order += 1
                money[root].append(_Money(ev.day, order, "netting", ev.amount, None, ev.remittance or ""))

    # 4. every PLB pair into one bucket
    buckets: dict[PairRef, str] = {}
    queue: list[QueueItem] = []
    unknown_refunds: list[PairRef] = []
    forwarding: dict[tuple[str, str], Forwarding] = {}
    pending_fb: list[tuple[Remittance, PairRef, Decimal]] = []
    for remit in remittances:
        policy = policy_of(remit.payer_id, medicare_payers)
        refund_wos = _refund_pairs(remit, policy)
        for pair in remit.pairs:
            ref = PairRef(
                remit.trace, pair.code, pair.reference.strip() if pair.reference else None, pair.ordinal
            )
            key = receivable_key(pair.reference, policy)
            if pair.code == "WO" and pair.amount > 0:
                found = debt_of(remit.payer_id, key)
                if pair.ordinal in refund_wos:
                    buckets[ref] = "refund_acknowledged"
                    if found is None:
                        unknown_refunds.append(ref)
                    else:
                        order += 1
                        money[found].append(
                            _Money(remit.payment_date, order, "refund", pair.amount, ref, remit.trace)
                        )
                elif found is None:
                    buckets[ref] = "unmatched"
                    why = "no reference" if key is None else f"reference {key} names no receivable"
                    queue.append(QueueItem(ref, pair.amount, why))
                else:
                    buckets[ref] = "allocated"
                    order += 1
                    money[found].append(
                        _Money(remit.payment_date, order, "offset", pair.amount, ref, remit.trace)
                    )
            elif pair.code == "WO" and pair.amount < 0:
                buckets[ref] = "deferral"
            elif pair.code == "FB" and pair.amount < 0:
                buckets[ref] = "forwarding_balance"
                fb_key = (pair.reference or remit.trace).strip()
                balance = forwarding.setdefault((remit.payer_id, fb_key), Forwarding())
                balance.opened += -pair.amount
                if balance.opened_on is None or remit.payment_date < balance.opened_on:
                    balance.opened_on = remit.payment_date
            elif pair.code == "FB" and pair.amount > 0:
                buckets[ref] = "forwarding_balance"
                pending_fb.append((remit, ref, pair.amount))
            elif pair.code == "72":
                buckets[ref] = "refund_acknowledged" if pair.amount < 0 else "non_offset"
            elif pair.code in REVIEW_CODES and pair.amount > 0:
                buckets[ref] = "unmatched"
                queue.append(QueueItem(ref, pair.amount, f"{pair.code}: source must be reviewed"))
            else:
                buckets[ref] = "non_offset"
    # positive FBs apply the balance they name (those first: a named FB is certain, so no FB without a
    # reference may take its room), else, in business-date order, the oldest balance opened by their payment
    # date (an FB applies an *earlier* carried balance) that takes the whole amount
    ordered_fb = sorted(pending_fb, key=lambda item: (item[0].payment_date, item[1].trace, item[1].ordinal))
    opened_keys = set(forwarding)
    rest: list[tuple[Remittance, PairRef, Decimal]] = []
    for remit, ref, amount in ordered_fb:
        if ref.reference is not None and (remit.payer_id, ref.reference) in opened_keys:
            forwarding[remit.payer_id, ref.reference].applied += amount
        else:
            rest.append((remit, ref, amount))
    for remit, ref, amount in rest:
        named = ref.reference
        if named is not None and (remit.payer_id, named) in forwarding:
            target = named
        else:
            fitting = [
                (b.opened_on, k)
                for (payer_id, k), b in forwarding.items()
                if payer_id == remit.payer_id
                and b.opened_on is not None
                and b.opened_on <= remit.payment_date
                and b.opened - b.applied >= amount
            ]
            target = min(fitting)[1] if fitting else (named or remit.trace)
        forwarding.setdefault((remit.payer_id, target), Forwarding()).applied += amount

    # 5. staff actions
    for action in feed.actions:
        target_debt = debt_of(action.payer_id, action.reference.strip())
        if target_debt is None or action.kind not in ("write_off", "refund_sent"):
            continue
        order += 1
        kind = "write_off" if action.kind == "write_off" else "refund"
        money[target_debt].append(_Money(action.effective, order, kind, action.amount, None, "staff"))

    # 6. each debt in business-date order: interest charged, then money applied interest first
    allocations: list[Allocation] = []
    for root, debt in debts.items():
        excess = _run(debt, money[root], business_date, rate_table, allocations)
        for item, amount in excess:
            if item.source is None or item.kind == "refund":
                continue  # netting never exceeds its own evidence; a refund acknowledged is never queued
            queue.append(QueueItem(item.source, amount, f"more than {debt.key} owed"))
            if amount == item.amount:
                buckets[item.source] = "unmatched"

    receivables = sorted(debts.values(), key=lambda r: (r.payer_id, r.key))
    return Result(receivables, allocations, queue, forwarding, buckets, unknown_refunds)


def _remittances(files: tuple[bytes, ...]) -> list[Remittance]:
    """Every transaction once (a file fed twice, or reissued, posts nothing new), in business-date order."""
    seen: dict[tuple[str, str, str, date, Decimal], Remittance] = {}
    for content in files:
        for remit in read_835(content):
            seen.setdefault(
                (remit.payer_id, remit.payee_id, remit.trace, remit.payment_date, remit.total_paid), remit
            )
    return sorted(seen.values(), key=lambda r: (r.payment_date, r.payer_id, r.trace))


def _claim_evidence(remit: Remittance) -> list[_Evidence]:
    """Reversal + lower correction pairs of one 835 (DOMAIN §2 way 1)."""
    found: list[_Evidence] = []
    used: set[int] = set()
    for i, reversal in enumerate(remit.claims):
        if reversal.status != "22":
            continue
        for j in range(i + 1, len(remit.claims)):
            correction = remit.claims[j]
            if j in used or correction.status == "22":
                continue
            same = (reversal.icn is not None and correction.original_reference == reversal.icn) or (
                correction.pcn == reversal.pcn
            )
            if not same:
                continue
            used.add(j)
            overpaid = -reversal.paid - correction.paid
            ids = tuple(x for x in (reversal.icn or correction.original_reference, correction.icn) if x)
            if overpaid > 0 and ids:
                found.append(
                    _Evidence(
                        remit.payer_id,
                        "claim",
                        f"claim:{remit.trace}:{j}",
                        overpaid,
                        remit.payment_date,
                        ids,
                        remit.trace,
                    )
                )
            break
    return found


def _refund_pairs(remit: Remittance, policy: str) -> set[int]:
    """Ordinals of positive WOs paired with a 72 on the same reference in this remittance, netting to zero."""
    wos = [p for p in remit.pairs if p.code == "WO" and p.amount > 0]
    returns = [p for p in remit.pairs if p.code == "72" and p.amount < 0]
    paired: set[int] = set()
    taken: set[int] = set()
    for wo in wos:
        for ret in returns:
            same = receivable_key(ret.reference, policy) == receivable_key(wo.reference, policy)
            if ret.ordinal not in taken and same and ret.amount == -wo.amount:
                taken.add(ret.ordinal)
                paired.add(wo.ordinal)
                break
    return paired


def _run(
    debt: Receivable,
    movements: list[_Money],
    business_date: date,
    rates: list[tuple[date, Decimal]],
    allocations: list[Allocation],
) -> list[tuple[_Money, Decimal]]:
    """Apply one debt's money and interest in business-date order; return the money it could not take."""
    rate = rate_on(rates, debt.determination) if debt.policy == "medicare" else None
    principal_open, interest_open = debt.principal, ZERO
    excess: list[tuple[_Money, Decimal]] = []
    charges: list[tuple[date, int]] = []
    if rate is not None:
        n = 1
        while (due := debt.determination + timedelta(days=PERIOD_DAYS * n + 1)) <= business_date:
            charges.append((due, n))
            n += 1
    timeline: list[tuple[date, int, int, _Money | None]] = [(due, 0, n, None) for due, n in charges]
    timeline += [(m.day, 1, m.order, m) for m in movements]
    for _day, _kind, number, item in sorted(timeline, key=lambda t: (t[0], t[1], t[2])):
        if item is None:
            assert rate is not None
            if principal_open > 0:
                amount = period_interest(principal_open, rate)
                debt.periods.append(Period(number, _day, principal_open, rate, amount))
                debt.interest_accrued += amount
                interest_open += amount
            continue
        amount = item.amount if item.amount is not None else interest_open + principal_open
        to_interest = min(amount, max(interest_open, ZERO))
        to_principal = min(amount - to_interest, max(principal_open, ZERO))
        interest_open -= to_interest
        principal_open -= to_principal
        if item.kind == "write_off":
            debt.written_off += to_interest + to_principal
            # written-off interest leaves the ledger as written off, not as recovered
            continue
        debt.interest_recovered += to_interest
        debt.principal_recovered += to_principal
        if item.kind == "refund":
            debt.refunded += to_interest + to_principal
        if to_interest or to_principal:
            allocations.append(
                Allocation(debt.key, item.source, item.trace, item.kind, item.day, to_interest, to_principal)
            )
        left = amount - to_interest - to_principal
        if left > 0:
            excess.append((item, left))
    return excess
