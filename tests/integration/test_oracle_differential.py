"""Differential test: the streaming pipeline against the independent batch oracle (``tests/oracle``).

Hypothesis generates whole feeds — overpayments a payer names by different identifiers (the reversed claim's
CLP07, the corrected claim's CLP07, a demand letter's FCN, a Medicare reference = 19-character FCN field +
patient control number, padded or not), Medicare and commercial payers, reversal + lower correction netted or
deferred by a negative WO and recovered later, letters then WO, recoupments larger than the payment (BPR02 = 0,
negative FB carried forward, positive FB in a later file), 72 + WO refunds with and without a known receivable,
WOs of unknown references, L6, files received twice, a 15-digit Medicare FCN, staff write-offs and refund checks
— and feeds every file and letter in a random order to the in-process pipeline (real handlers, real PostgreSQL;
its seed interleaves topics like separate partitions), then the staff actions (staff act on what they see), then
runs the interest tick on the business date (chosen so that Medicare interest comes due in many examples). The ledger read back must equal what the oracle computes from the same feed:
receivables (matched by their identifiers, never by ids), allocations per PLB pair, the work queue, forwarding
balances, every PLB pair's bucket, each receivable's identifiers and interest periods; no input may be
dead-lettered and the ledger check must hold. The first difference fails the test with the feed that caused it.

``OFFSETSTREAM_ORACLE_EXAMPLES`` sets the number of examples (default 200, always the same ones; nightly:
5000 with ``OFFSETSTREAM_ORACLE_RANDOM=1``, new ones every night). Dimensions are
switched by the flags in :data:`DIMENSIONS` (``OFFSETSTREAM_ORACLE_OFF=name,...`` turns some off for a
local investigation; CI runs them all unless a flag below says otherwise).
"""

import json
import os
import random
import zlib
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from harness import InProcessPipeline, interest_engine
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from oracle.reconciler import Feed, Letter, Result, StaffAction, reconcile
from x12_builder import Adj, Claim, Plb, PlbPair, Service, Transaction, build_835

from cli import ledger_check
from cli import letters as staff_letters
from contracts.topics import LETTERS, STAFF_ACTIONS
from shared.messages import Outgoing

pytestmark = pytest.mark.integration
D = Decimal
BASE = date(2026, 1, 5)
PAYEE = "1234567893"
MEDICARE = ("01312", "MEDICARE PART B")
MEDICARES = (MEDICARE, ("04412", "NOVITAS JH PART B"), ("12502", "NOVITAS JL PART B"))
"""Payer ids of the shipped Medicare contractor table (the oracle has its own list of them)."""
COMMERCIAL = ("60054", "AETNA COMMERCIAL")
COMMERCIALS = (COMMERCIAL, ("62308", "CIGNA"))
EXAMPLES = int(os.environ.get("OFFSETSTREAM_ORACLE_EXAMPLES", "200"))
RANDOM = os.environ.get("OFFSETSTREAM_ORACLE_RANDOM") == "1"
"""CI runs one fixed set of examples (derandomized: the same feeds every run, so a red run is a regression);
``OFFSETSTREAM_ORACLE_RANDOM=1`` (the nightly run) draws new ones and keeps failures in .hypothesis/."""

DIMENSIONS: dict[str, bool] = {
    "commercial": True,  # a commercial payer next to Medicare (no interest, plain references)
    "medicare_reference": True,  # FCN field of 19 + patient control number, padded or not; 15-digit FCN
    "letter_links": True,  # letters naming an FCN and the claim, merging what was opened under either
    "cite_corrected": True,  # recoveries/deferrals citing the corrected claim's CLP07
    "forwarding": True,  # recoupment larger than the payment: BPR02 = 0, FB carried forward, FB applied
    "refund_known": True,  # 72 + WO refund of a known receivable
    "refund_unknown": True,  # 72 + WO refund naming no receivable
    "unknown_wo": True,  # WO of a reference nothing names: work queue
    "over_recovery": True,  # more withheld than owed: the excess is queued
    "netting": True,  # reversal + correction not deferred: recouped in its own 835
    "duplicates": True,  # a file fed twice posts nothing new
    "fb_unnamed": True,  # a positive FB without a reference applies the oldest open balance that takes it
    "letter_amount": True,  # a letter demanding more than the 835 showed (channels confirm: the largest wins)
    "staff": True,  # staff write-offs and refund checks, entered after the files are in
}
AWAITING_FIX: dict[str, str] = {}
"""Narrowings of the generator that stand in for a known pipeline bug, ON by default so CI stays green;
``OFFSETSTREAM_ORACLE_<NAME>=0`` switches one off to see the bug (see tests/oracle/README.md). Fixed and removed
(session 6): findings 2 (a WO after a netted reversal), 4 (bucket of a partly re-matched WO), 5/7 (staff money
measured on its date; interest corrections after over-recovery), 6 (an unnamed FB beside a named one), 8 (a
letter raising a netted receivable); (session 9): 3 (over-recovery: the excess lands on the latest recovery by
business date, refund pairs included, also against a netting or a parked recovery applied late), 9 (a WO the
scored search applied to a receivable with a look-alike FCN moves to its own when that appears; identifiers of
different debts may share long suffixes), 10 (two or more unnamed FBs of one payer, in any arrival order)."""


def awaiting_fix(name: str) -> bool:
    return name in AWAITING_FIX and os.environ.get(f"OFFSETSTREAM_ORACLE_{name}", "1") != "0"


for _off in filter(None, os.environ.get("OFFSETSTREAM_ORACLE_OFF", "").split(",")):
    DIMENSIONS[_off.strip()] = False


def on(name: str) -> bool:
    return DIMENSIONS.get(name, True)


# --- the generated world -------------------------------------------------------------------------------------


class World:
    """A feed under construction: files, letters, and lines that say what each item is (for failures)."""

    def __init__(self) -> None:
        self.files: list[tuple[str, bytes]] = []
        self.letters: list[Letter] = []
        self.actions: list[StaffAction] = []
        self.forwarded: list[tuple[str, str, int | None]] = []
        """(payer id, trace of the FB opened, index of the file applying it without a reference)"""
        self.story: list[str] = []
        self.last_day = BASE
        self.counter = 0

    def next(self) -> int:
        self.counter += 1
        return self.counter

    def __repr__(self) -> str:
        return "World(\n  " + "\n  ".join(sorted(self.story)) + "\n)"


def ymd(day: date) -> str:
    return day.strftime("%Y%m%d")


def filler(world: World, paid: Decimal) -> Claim:
    """An ordinary claim paid in full (unique CLP01/CLP07, so no detection rule sees it)."""
    n = world.next()
    return Claim(f"FILL{n:05d}", [Service(paid)], icn=f"7{n:012d}")


def remittance(
    world: World,
    payer: tuple[str, str],
    day: date,
    claims: list[Claim],
    pairs: list[tuple[str, str | None, Decimal]],
    what: str,
    *,
    zero_payment: bool = False,
) -> str:
    """One 835 file with one transaction and at most one PLB segment; returns its trace."""
    trace = f"T{payer[0]}{world.next():05d}"
    txn = Transaction(
        claims=claims,
        plbs=[Plb([PlbPair(c, r, a) for c, r, a in pairs], provider_id=PAYEE)] if pairs else [],
        trace=trace,
        payment_date=ymd(day),
        production_date=ymd(day),
        payer_id=payer[0],
        payer_name=payer[1],
        payee_npi=PAYEE,
    )
    if zero_payment or txn.total == 0:
        txn.handling, txn.method = "H", "NON"
    assert txn.total >= 0, (what, txn.total)
    content = build_835(txn, isa13=f"{zlib.crc32(trace.encode()) % 999_999_999:09d}", created=ymd(day))
    world.files.append((trace, content.encode()))
    shown = ", ".join(f"{c}:{r!r} {a}" for c, r, a in pairs)
    world.story.append(f"{ymd(day)} 835 {trace} payer {payer[0]}: {what} [PLB {shown}] BPR02={txn.total}")
    world.last_day = max(world.last_day, day)
    return trace


cents = st.integers(min_value=100, max_value=200_000).map(lambda c: D(c).scaleb(-2))


@dataclass
class Debt:
    """Identifiers of one generated overpayment; ``cite`` is how a payer may name it."""

    payer: tuple[str, str]
    amount: Decimal
    ids: list[str]
    pcn: str
    fcn: str | None = None


def medicare(payer: tuple[str, str]) -> bool:
    return payer in MEDICARES


@st.composite
def payers(draw: st.DrawFn) -> tuple[str, str]:
    choices = MEDICARES + COMMERCIALS if on("commercial") else MEDICARES
    chosen: tuple[str, str] = draw(st.sampled_from(choices))
    return chosen


@st.composite
def citation(draw: st.DrawFn, debt: Debt) -> str:
    """A reference naming the debt by one of its identifiers, laid out as the payer would."""
    ids = debt.ids if on("cite_corrected") else debt.ids[:1] + debt.ids[2:]
    ident = draw(st.sampled_from(ids))
    if not (medicare(debt.payer) and on("medicare_reference")):
        return ident
    style = draw(st.sampled_from(["plain", "plain", "padded", "padded_short", "unpadded", "fcn15"]))
    event(f"medicare reference: {style}")
    if style == "padded":
        return ident.ljust(19) + debt.pcn.ljust(20)
    if style == "padded_short":
        return ident.ljust(19) + debt.pcn
    if style == "unpadded" and len(ident) == 19:
        return ident + debt.pcn
    if style == "fcn15" and len(ident) == 13 and ident.isdigit():
        return "10" + ident  # a contractor's 15-digit FCN whose last 13 digits are the ICN
    return ident


@st.composite
def debt_story(draw: st.DrawFn, world: World, index: int) -> None:  # noqa: PLR0912
    """One overpayment from detection to its last recovery, as files and letters."""
    payer = draw(payers())
    amount = draw(cents)
    day0 = BASE + timedelta(days=draw(st.integers(0, 200)))
    kind = draw(st.sampled_from(["reversal", "reversal", "letter", "deferral"]))
    digits8, digits3, digits14 = (
        f"{draw(st.integers(0, 10**8 - 1)):08d}",
        f"{draw(st.integers(0, 999)):03d}",
        f"{draw(st.integers(0, 10**14 - 1)):014d}",
    )
    long_fcn = draw(st.booleans())
    # the debt's number first: debts drawn alike share long suffixes, as a scored search could confuse
    rev = f"22{index:02d}{digits8}0"
    fcn = f"FCN{index:02d}{digits14}" if long_fcn else f"FCN{index:02d}{day0:%y%m%d}{digits3}"
    corr = rev[:-1] + "1"
    pcn = f"ACCT{index:02d}{draw(st.integers(0, 999)):03d}"
    debt = Debt(payer, amount, [], pcn)
    event(f"debt: {kind} ({payer[1]})")
    letter_day: date | None = None
    settled_at_once = False

    if kind == "reversal":
        debt.ids = [rev, corr]
        deferred = draw(st.booleans()) if on("netting") else True
        with_letter = on("letter_links") and draw(st.booleans())
        if with_letter:
            debt.fcn = fcn
            debt.ids.append(fcn)
        pairs: list[tuple[str, str | None, Decimal]] = []
        if deferred:
            pairs.append(("WO", draw(citation(debt)), -amount))
        extra = draw(st.integers(0, 30_000).map(lambda c: D(c).scaleb(-2)))
        paid = amount + extra  # the original payment; the correction pays ``extra``
        charge = paid + D("50.00")
        reversal = Claim(pcn, [Service(-charge, [Adj("CO", "45", -(charge - paid))])], status="22", icn=rev)
        correction = Claim(
            pcn, [Service(charge, [Adj("CO", "45", charge - extra)])], icn=corr, original_reference=rev
        )
        claims = [filler(world, amount + D("10.00")), reversal, correction]
        what = (
            f"debt {index}: reversal {rev} paid -{paid}, correction {corr} pays {extra} ({amount} overpaid)"
        )
        remittance(world, payer, day0, claims, pairs, what + (", deferred" if deferred else ", netted"))
        settled_at_once = not deferred
        if with_letter:
            letter_day = day0 + timedelta(days=draw(st.integers(-10, 5)))
            names = draw(st.sampled_from([rev, corr] if on("cite_corrected") else [rev]))
            more = on("letter_amount")
            demanded = amount + (draw(st.sampled_from([D("0"), D("0"), D("12.34")])) if more else 0)
            world.letters.append(Letter(payer[0], PAYEE, fcn, demanded, letter_day, (names,)))
            world.story.append(f"{ymd(letter_day)} letter {fcn} {demanded} (debt {index}) lists {names}")
    elif kind == "letter":
        debt.fcn = fcn
        debt.ids = [fcn]
        listed: tuple[str, ...] = ()
        if draw(st.booleans()):
            debt.ids.append(rev)  # a claim number the letter lists, not seen in any 835
            listed = (rev,)
        letter_day = day0
        world.letters.append(Letter(payer[0], PAYEE, fcn, amount, day0, listed))
        world.story.append(f"{ymd(day0)} letter {fcn} {amount} (debt {index}) lists {listed}")
    else:
        debt.fcn = fcn
        debt.ids = [fcn]
        cite = draw(citation(debt))
        claims = [filler(world, D("25.00"))]
        remittance(world, payer, day0, claims, [("WO", cite, -amount)], f"debt {index}: deferral of {amount}")
        if on("letter_links") and draw(st.booleans()):
            letter_day = day0 - timedelta(days=draw(st.integers(0, 10)))
            world.letters.append(Letter(payer[0], PAYEE, fcn, amount, letter_day, ()))
            world.story.append(f"{ymd(letter_day)} letter {fcn} {amount} (debt {index})")

    # recoveries: positive WOs (some larger than the payment: FB), or a refund acknowledged (72 + WO)
    if settled_at_once and not (on("over_recovery") and draw(st.integers(0, 4)) == 0):
        return
    day = max(day0, letter_day or day0)
    remaining = amount
    over = settled_at_once or (on("over_recovery") and draw(st.booleans()))
    count = draw(st.integers(0, 3))
    for _ in range(count):
        day += timedelta(days=draw(st.integers(1, 70)))
        limit = remaining + D("50.00") if over else remaining
        if limit < D("0.01"):
            break
        take = draw(st.integers(1, int(limit * 100)).map(lambda c: D(c).scaleb(-2)))
        remaining -= take
        cite = draw(citation(debt))
        style = draw(st.sampled_from(["wo", "wo", "wo", "fb", "refund"]))
        event(f"recovery: {style}")
        if style == "refund" and on("refund_known"):
            claims = [filler(world, D("30.00"))]
            pairs = [("WO", cite, take), ("72", cite, -take)]
            remittance(world, payer, day, claims, pairs, f"debt {index}: refund check acknowledged {take}")
        elif style == "fb" and on("forwarding") and take > D("1.00"):
            paid = (take / 2).quantize(D("0.01"))
            carried = take - paid
            trace = remittance(
                world,
                payer,
                day,
                [filler(world, paid)],
                [("WO", cite, take), ("FB", None, -carried)],
                f"debt {index}: recoupment {take} larger than the payment {paid}",
                zero_payment=True,
            )
            # the FB opened above names its own trace: rewrite it now we know the trace
            name, content = world.files[-1]
            world.files[-1] = (name, content.replace(b"FB*-", f"FB:{trace}*-".encode(), 1))
            world.story[-1] = world.story[-1].replace("FB:None", f"FB:{trace!r}")
            later = day + timedelta(days=draw(st.integers(1, 40)))
            named = not (on("fb_unnamed") and draw(st.integers(0, 3)) == 0)
            remittance(
                world,
                payer,
                later,
                [filler(world, carried + D("5.00"))],
                [("FB", trace if named else None, carried)],
                f"forwarding balance {trace} applied" + ("" if named else " (FB without a reference)"),
            )
            world.forwarded.append((payer[0], trace, None if named else len(world.files) - 1))
        else:
            claims = [filler(world, take + D("20.00"))]
            remittance(world, payer, day, claims, [("WO", cite, take)], f"debt {index}: recoupment {take}")
    if on("staff") and not settled_at_once and draw(st.integers(0, 3)) == 0:
        day += timedelta(days=draw(st.integers(1, 60)))
        reference = draw(st.sampled_from(debt.ids))
        kind = draw(st.sampled_from(["write_off", "refund_sent"]))
        money = None if kind == "write_off" else min(draw(cents), amount)
        world.actions.append(StaffAction(kind, payer[0], PAYEE, reference, day, money))
        world.story.append(
            f"{ymd(day)} staff {kind} {reference} {money or '(the open balance)'} (debt {index})"
        )
        world.last_day = max(world.last_day, day)


@st.composite
def worlds(draw: st.DrawFn) -> tuple[World, date, int]:
    world = World()
    for index in range(draw(st.integers(1, 4))):
        draw(debt_story(world, index))
    for n in range(draw(st.integers(0, 2)) if on("unknown_wo") else 0):
        day = BASE + timedelta(days=draw(st.integers(0, 260)))
        amount = draw(cents)
        ref = f"UNKNOWN{'ABCDEFGH'[n]}{draw(st.sampled_from(['QX', 'ZZ', 'RW']))}"
        payer = draw(payers())
        pairs = [("WO", ref, amount), ("L6", None, D("-1.25"))]
        remittance(world, payer, day, [filler(world, amount + D("3.00"))], pairs, "WO naming nothing, L6")
    if on("refund_unknown") and draw(st.booleans()):
        day = BASE + timedelta(days=draw(st.integers(0, 260)))
        amount = draw(cents)
        pairs = [("WO", "REFUNDNOBODYK", amount), ("72", "REFUNDNOBODYK", -amount)]
        remittance(
            world, draw(payers()), day, [filler(world, D("40.00"))], pairs, "refund of an unknown receivable"
        )
    if on("duplicates") and world.files:
        for again in draw(st.lists(st.sampled_from(list(world.files)), max_size=2)):
            world.files.append(again)
            world.story.append(f"(the file of {again[0]} is received twice)")
    business = world.last_day + timedelta(days=draw(st.integers(0, 120)))
    for letter in world.letters:
        business = max(business, letter.letter_date)
    return world, business, draw(st.integers(0, 2**32 - 1))


# --- running the pipeline ------------------------------------------------------------------------------------


def letter_event(letter: Letter, tenant: str) -> Outgoing:
    """A letter as staff enter it (``offsetstream letter``), on its topic."""
    entry = staff_letters.LetterEntry(
        payer_id=letter.payer_id,
        payee_id=letter.payee_id,
        fcn=letter.fcn,
        amount=letter.amount,
        letter_date=letter.letter_date,
        claims=letter.claims,
    )
    key, value = staff_letters.to_event(entry, tenant, "oracle")
    return Outgoing(LETTERS.name, key, value)


async def run_pipeline(
    ledger: asyncpg.Connection, tenant: str, world: World, business: date, seed: int
) -> None:
    """Every file and letter in a random order, topics interleaved; then the interest tick on the business
    date, its outbox drained into the pipeline until nothing more comes due."""
    rng = random.Random(seed)
    items: list[tuple[str, Any]] = [("file", f) for f in world.files] + [("letter", x) for x in world.letters]
    rng.shuffle(items)
    pipeline = InProcessPipeline(ledger, tenant, seed=seed)
    for kind, item in items:
        if kind == "file":
            pipeline.feed(item[1], f"{item[0]}.835")
        else:
            pipeline.send(letter_event(item, tenant))
    await pipeline.run()
    assert not pipeline.dead_letters, dead_letter_reasons(pipeline)
    # staff act on what they see: their actions come once the files are in
    for action in world.actions:
        key, value = staff_letters.action_event(
            "write_off" if action.kind == "write_off" else "refund_sent",
            tenant_id=tenant,
            payer_id=action.payer_id,
            payee_id=action.payee_id,
            reference=action.reference,
            effective=action.effective,
            entered_by="oracle",
            amount=action.amount,
        )
        pipeline.send(Outgoing(STAFF_ACTIONS.name, key, value))
    await pipeline.run()
    assert not pipeline.dead_letters, dead_letter_reasons(pipeline)
    await drain_interest(ledger, pipeline, tenant, business)


def dead_letter_reasons(pipeline: InProcessPipeline) -> str:
    return "dead letters: " + "; ".join(
        f"{m.topic} " + ", ".join(f"{k}={v.decode(errors='replace')[:200]}" for k, v in m.headers)
        for m in pipeline.dead_letters
    )


# --- reading the ledger back and comparing -------------------------------------------------------------------

FIELDS = (
    "policy",
    "determination",
    "principal",
    "interest_accrued",
    "interest_recovered",
    "principal_recovered",
    "refunded",
    "written_off",
    "balance",
    "status",
)


async def ledger_view(conn: asyncpg.Connection, tenant: str) -> dict[str, Any]:
    receivables = await conn.fetch(
        """SELECT receivable_id, reference, payer_id, policy, determination_date, principal, interest_accrued,
                  interest_recovered, principal_recovered, refunded, written_off, status
           FROM matching.receivables WHERE tenant_id = $1""",
        tenant,
    )
    keys = await conn.fetch(
        "SELECT receivable_id, kind, key FROM matching.receivable_keys WHERE tenant_id = $1", tenant
    )
    allocations = await conn.fetch(
        """SELECT a.receivable_id, a.kind, a.to_interest, a.to_principal, j.trace_number, j.reason_code,
                  j.pair_index, r.trace_number AS remittance_trace
           FROM matching.allocations a LEFT JOIN matching.adjustments j
             ON j.tenant_id = a.tenant_id AND j.adjustment_id = a.adjustment_id
           LEFT JOIN intake.remittances r ON r.tenant_id = a.tenant_id AND r.remittance_id = a.remittance_id
           WHERE a.tenant_id = $1""",
        tenant,
    )
    adjustments = await conn.fetch(
        """SELECT trace_number, reason_code, reference, pair_index, amount, bucket, unmatched_amount
           FROM matching.adjustments WHERE tenant_id = $1""",
        tenant,
    )
    forwarding = await conn.fetch(
        "SELECT reference, opened_amount, applied_amount FROM matching.forwarding_balances WHERE tenant_id = $1",
        tenant,
    )
    periods = await conn.fetch(
        """SELECT receivable_id, period_number, sum(amount) AS amount FROM interest.accruals
           WHERE tenant_id = $1 GROUP BY receivable_id, period_number HAVING sum(amount) <> 0""",
        tenant,
    )
    return {
        "receivables": receivables,
        "keys": keys,
        "allocations": allocations,
        "adjustments": adjustments,
        "forwarding": forwarding,
        "periods": periods,
        "breaches": await ledger_check.check(conn, tenant),
    }


def differences(expected: Result, found: dict[str, Any]) -> list[str]:  # noqa: PLR0912
    """Every difference, the first differing receivable first."""
    problems: list[str] = []
    rows = [r for r in found["receivables"] if r["status"] != "merged"]
    keys: dict[Any, set[str]] = defaultdict(set)
    for k in found["keys"]:
        if k["kind"] in ("reference", "icn"):
            keys[k["receivable_id"]].add(k["key"])
    owner: dict[Any, str] = {}
    for debt in expected.receivables:
        mine = [r for r in rows if r["payer_id"] == debt.payer_id and r["reference"] in debt.identifiers]
        names = f"receivable {debt.key} (payer {debt.payer_id}, identifiers {sorted(debt.identifiers)})"
        if not mine:
            problems.append(f"{names}: missing in the ledger")
            continue
        if len(mine) > 1:
            listed = ", ".join(f"{r['reference']} ({r['status']}, principal {r['principal']})" for r in mine)
            problems.append(f"{names}: one debt is {len(mine)} receivables in the ledger: {listed}")
            continue
        row = mine[0]
        owner[row["receivable_id"]] = debt.key
        actual = {
            "policy": row["policy"],
            "determination": row["determination_date"],
            "principal": row["principal"],
            "interest_accrued": row["interest_accrued"],
            "interest_recovered": row["interest_recovered"],
            "principal_recovered": row["principal_recovered"],
            "refunded": row["refunded"],
            "written_off": row["written_off"],
            "balance": row["principal"]
            + row["interest_accrued"]
            - row["principal_recovered"]
            - row["interest_recovered"]
            - row["written_off"],
            "status": row["status"],
        }
        actual["identifiers"] = keys[row["receivable_id"]] | {row["reference"]}
        actual["periods"] = {
            p["period_number"]: p["amount"]
            for p in found["periods"]
            if p["receivable_id"] == row["receivable_id"]
        }
        wanted = {name: getattr(debt, name) for name in FIELDS}
        wanted["identifiers"] = set(debt.identifiers)
        wanted["periods"] = {p.number: p.amount for p in debt.periods if p.amount}
        bad = [
            f"{n}: expected {wanted[n]}, ledger {actual[n]}"
            for n in (*FIELDS, "identifiers", "periods")
            if wanted[n] != actual[n]
        ]
        if bad:
            periods = ", ".join(f"#{p.number} due {p.due} on {p.basis} = {p.amount}" for p in debt.periods)
            problems.append(
                f"{names} = ledger receivable {row['reference']} (keys {sorted(keys[row['receivable_id']])}):\n    "
                + "\n    ".join(bad)
                + f"\n    oracle interest periods: {periods or 'none'}"
            )
    for row in rows:
        if row["receivable_id"] not in owner and not any(
            row["reference"] in d.identifiers and row["payer_id"] == d.payer_id for d in expected.receivables
        ):
            problems.append(
                f"ledger receivable {row['reference']} (payer {row['payer_id']}, principal {row['principal']}, "
                f"{row['status']}) is no debt of the feed"
            )

    # allocations per PLB pair (and netting per receivable)
    want: dict[tuple[Any, ...], tuple[Decimal, Decimal]] = defaultdict(lambda: (D("0.00"), D("0.00")))
    for a in expected.allocations:
        where = (a.source.trace, a.source.code, a.source.ordinal) if a.source else (a.trace, a.kind)
        k = (*where, a.receivable, a.kind)
        want[k] = (want[k][0] + a.to_interest, want[k][1] + a.to_principal)
    got: dict[tuple[Any, ...], tuple[Decimal, Decimal]] = defaultdict(lambda: (D("0.00"), D("0.00")))
    for a in found["allocations"]:
        name = owner.get(a["receivable_id"], f"<ledger receivable {a['receivable_id']}>")
        where = (
            (a["trace_number"], a["reason_code"], a["pair_index"])
            if a["trace_number"]
            else (a["remittance_trace"] or ("staff" if a["kind"] == "refund" else "?"), a["kind"])
        )
        k = (*where, name, a["kind"])
        got[k] = (got[k][0] + a["to_interest"], got[k][1] + a["to_principal"])
    for k in sorted(set(want) | set(got), key=str):
        w, g = want.get(k, (D("0.00"), D("0.00"))), got.get(k, (D("0.00"), D("0.00")))
        if w != g and not (k[0] == "?" and sum(w) == 0):
            problems.append(f"allocation {k}: expected interest/principal {w}, ledger {g}")

    # the work queue and every pair's bucket
    queue_want: dict[tuple[str, str, int], Decimal] = defaultdict(lambda: D("0.00"))
    for q in expected.queue:
        queue_want[q.source.trace, q.source.code, q.source.ordinal] += q.amount
    queue_got = {
        (r["trace_number"], r["reason_code"], r["pair_index"]): r["unmatched_amount"]
        for r in found["adjustments"]
        if r["unmatched_amount"] != 0
    }
    for k in sorted(set(queue_want) | set(queue_got)):
        if queue_want.get(k, D("0.00")) != queue_got.get(k, D("0.00")):
            problems.append(
                f"work queue {k}: expected {queue_want.get(k, D('0.00'))}, ledger {queue_got.get(k)}"
            )
    buckets_got = {
        (r["trace_number"], r["reason_code"], r["pair_index"]): r["bucket"] for r in found["adjustments"]
    }
    for ref, bucket in expected.buckets.items():
        k = (ref.trace, ref.code, ref.ordinal)
        if buckets_got.get(k) != bucket:
            problems.append(
                f"PLB pair {k} ({ref.reference!r}): expected bucket {bucket}, ledger {buckets_got.get(k)}"
            )

    # forwarding balances
    fb_want = {ref: (b.opened, b.applied) for (_, ref), b in expected.forwarding.items()}
    fb_got = {r["reference"]: (r["opened_amount"], r["applied_amount"]) for r in found["forwarding"]}
    if fb_want != fb_got:
        problems.append(f"forwarding balances: expected {fb_want}, ledger {fb_got}")
    problems += [f"ledger check {b.rule}: {b.rows[:3]}" for b in found["breaches"]]
    return problems


RUNS: dict[str, int] = defaultdict(int)


def tenant_of(world: World, business: date, seed: int) -> str:
    """A tenant id that is the same on every run of the same examples (its ids, the account keys and
    everything ordered by them follow from it, so a fresh clone sees exactly what this machine saw) and new
    for each run of an example within one session (Hypothesis runs some twice; they share the database)."""
    digest = zlib.crc32(f"{world!r}|{business}|{seed}".encode())
    RUNS[f"{digest}"] += 1
    return f"oracle-{digest:08x}-{RUNS[f'{digest}']}"


def letter_moves_day_zero(amount: Decimal, letter_day: date, write_off: date | None) -> World:
    """Found by the differential (session 8): a deferral opens a debt on 2026-01-05, a letter days later moves
    its day 0, and a 0.01 recoupment on 2026-02-05 (period 1's due day under the first day 0) arrives before
    the letter in some interleavings; optionally staff write the rest off. Interest charged period 1, then
    reversed it dated by the new day 0 (a day not reached), and that date came back as a business date."""
    world = World()
    payer = ("01312", "MEDICARE PART B")
    rev, corr, fcn, pcn = "2200000000000", "2200000000001", "FCN26010500000", "ACCT00000"
    charge = amount + D("50.00")
    reversal = Claim(pcn, [Service(-charge, [Adj("CO", "45", -(charge - amount))])], status="22", icn=rev)
    correction = Claim(pcn, [Service(charge, [Adj("CO", "45", charge)])], icn=corr, original_reference=rev)
    claims = [filler(world, amount + D("10.00")), reversal, correction]
    remittance(world, payer, BASE, claims, [("WO", corr, -amount)], f"debt 0: reversal {rev}, deferred")
    world.letters.append(Letter(payer[0], PAYEE, fcn, amount, letter_day, (rev,)))
    world.story.append(f"{ymd(letter_day)} letter {fcn} {amount} (debt 0) lists {rev}")
    recouped = date(2026, 2, 5)
    remittance(world, payer, recouped, [filler(world, D("20.01"))], [("WO", corr, D("0.01"))], "recoupment")
    if write_off is not None:
        world.actions.append(StaffAction("write_off", payer[0], PAYEE, rev, write_off, None))
        world.story.append(f"{ymd(write_off)} staff write_off {rev} (the open balance) (debt 0)")
    return world


@settings(
    max_examples=EXAMPLES,
    derandomize=not RANDOM,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(case=worlds())
@example(case=(letter_moves_day_zero(D("1.00"), date(2026, 1, 8), None), date(2026, 2, 5), 0))
@example(case=(letter_moves_day_zero(D("1.57"), date(2026, 1, 9), date(2026, 2, 6)), date(2026, 2, 6), 0))
async def test_pipeline_equals_the_oracle(ledger: asyncpg.Connection, case: tuple[World, date, int]) -> None:
    world, business, seed = case
    tenant = tenant_of(world, business, seed)
    await run_pipeline(ledger, tenant, world, business, seed)
    feed = Feed(tuple(c for _, c in world.files), tuple(world.letters), tuple(world.actions))
    expected = reconcile(feed, business)
    found = await ledger_view(ledger, tenant)
    for label, seen in (
        ("interest came due", any(r.interest_accrued > 0 for r in expected.receivables)),
        ("two receivables merged", any(r["status"] == "merged" for r in found["receivables"])),
        ("work queue", bool(expected.queue)),
        ("refund for an unknown receivable", bool(expected.refunds_for_unknown)),
        ("refund of a known receivable", any(r.refunded > 0 for r in expected.receivables)),
        ("forwarding balance", bool(expected.forwarding)),
        ("a receivable named by 3+ identifiers", any(len(r.identifiers) > 2 for r in expected.receivables)),
    ):
        if seen:
            event(f"outcome: {label}")
    problems = differences(expected, found)
    if problems:
        story = "\n  ".join(sorted(world.story))
        raise AssertionError(
            f"pipeline differs from the oracle (business date {business}, seed {seed}, tenant {tenant}):\n"
            f"  {problems[0]}\n\nall differences:\n  " + "\n  ".join(problems) + f"\n\nfeed:\n  {story}"
        )


# --- a finding told in one arrival order -------------------------------------------------------------------


def day_zero_moves_last() -> World:
    world = World()
    world.letters.append(Letter(MEDICARE[0], PAYEE, "FCN00260202235", D("6.73"), date(2026, 1, 28), ()))
    claim = filler(world, D("25.00"))
    remittance(world, MEDICARE, date(2026, 2, 2), [claim], [("WO", "FCN00260202235", D("-6.73"))], "deferral")
    for day, amount in ((date(2026, 3, 2), D("0.01")), (date(2026, 4, 24), D("36.00"))):
        claim = filler(world, amount + D("20.00"))
        remittance(world, MEDICARE, day, [claim], [("WO", "FCN00260202235", amount)], "recoupment")
    return world


async def drain_interest(
    ledger: asyncpg.Connection, pipeline: InProcessPipeline, tenant: str, day: date
) -> None:
    """The interest tick on ``day``, its outbox drained into the pipeline until nothing more comes due; no
    input may be dead-lettered on the way."""
    engine = interest_engine()
    for _ in range(10):
        await engine.tick(ledger, day, [tenant])
        rows = await ledger.fetch(
            """SELECT message_id, record FROM ops.outbox WHERE service = 'interest' AND NOT published
               ORDER BY created_at, message_id"""
        )
        mine = [
            r
            for r in rows
            if json.loads(Outgoing.from_record(json.loads(r["record"])).value)["tenant_id"] == tenant
        ]
        if not mine:
            return
        await ledger.execute(
            "UPDATE ops.outbox SET published = true WHERE service = 'interest' AND message_id = ANY($1::text[])",
            [r["message_id"] for r in mine],
        )
        for r in mine:
            pipeline.send(Outgoing.from_record(json.loads(r["record"])))
        await pipeline.run()
        assert not pipeline.dead_letters, dead_letter_reasons(pipeline)
    raise AssertionError("the interest tick kept producing events")


async def test_a_letter_moving_day_zero_after_interest_was_charged_re_dates_the_charges(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    """Found by the oracle differential (session 9, random run): a letter dated before the deferral that opened a
    Medicare receivable arrives after the recoupments, when interest has already charged periods counted from the
    deferral's day 0. The letter moves day 0 five days earlier; the periods' amounts stay the same, so interest
    posted nothing and matching kept each charge on its old due day: the 0.01 recouped between the new and the
    old due day of period 1 paid principal instead of interest. Told in that arrival order (files first, then
    the letter), through the in-process pipeline, against the oracle."""
    world, business = day_zero_moves_last(), date(2026, 8, 23)
    pipeline = InProcessPipeline(ledger, tenant, seed=0)
    # Step: every file first: interest counts from the deferral's day 0 (2026-02-02) as the changes come.
    for name, content in world.files:
        pipeline.feed(content, f"{name}.835")
    await pipeline.run()
    # Step: the letter dated 2026-01-28 arrives last and moves day 0 earlier.
    [letter] = world.letters
    pipeline.send(letter_event(letter, tenant))
    await pipeline.run()
    await drain_interest(ledger, pipeline, tenant, business)
    assert not pipeline.dead_letters
    # The 0.01 of 2026-03-02 came after period 1 fell due (2026-02-28): it paid interest.
    expected = reconcile(Feed(tuple(c for _, c in world.files), tuple(world.letters)), business)
    assert differences(expected, await ledger_view(ledger, tenant)) == []
