"""The batch oracle (tests/oracle) on tiny feeds worked out by hand, and on the README's example files.

The oracle is the independent side of the differential test, so it is checked against arithmetic done here in
comments, never against the pipeline.
"""

from datetime import date
from decimal import Decimal
from pathlib import Path

from oracle.reconciler import Feed, Letter, PairRef, StaffAction, receivable_key, reconcile
from oracle.x12 import read_835
from x12_builder import Adj, Claim, Delims, Plb, PlbPair, Service, Transaction, build_835

D = Decimal
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "835"
MEDICARE, COMMERCIAL = "01312", "60054"
STANDARD = Delims()


def file(
    trace: str,
    paid_on: str,
    *pairs: tuple[str, str | None, str],
    claims: list[Claim] | None = None,
    payer: str = MEDICARE,
    d: Delims = STANDARD,
) -> bytes:
    txn = Transaction(
        claims=claims
        if claims is not None
        else [Claim(f"P{trace}", [Service(D("500.00"))], icn=f"9{trace}")],
        plbs=[Plb([PlbPair(c, r, D(a)) for c, r, a in pairs])] if pairs else [],
        trace=trace,
        payment_date=paid_on,
        payer_id=payer,
    )
    if txn.total == 0:
        txn.handling, txn.method = "H", "NON"
    return build_835(txn, d=d, isa13=f"{abs(hash(trace)) % 999_999_999:09d}", created=paid_on).encode()


def reversal_pair(pcn: str, icn: str, paid: str, corrected: str) -> list[Claim]:
    """A reversal of ``paid`` (ICN ``icn``) and its correction paying ``corrected`` (ICN ``icn`` + 1)."""
    charge = D(paid) + 100
    return [
        Claim(pcn, [Service(-charge, [Adj("CO", "45", -(charge - D(paid)))])], status="22", icn=icn),
        Claim(
            pcn,
            [Service(charge, [Adj("CO", "45", charge - D(corrected))])],
            icn=str(int(icn) + 1),
            original_reference=icn,
        ),
        Claim("FILLER1", [Service(D("400.00"))], icn="7000000000001"),
    ]


def test_reader_keeps_padded_references_and_reads_any_delimiters() -> None:
    padded = "FCN123".ljust(19) + "ACCT77".ljust(20)
    content = file(
        "T1", "20260301", ("WO", padded, "10"), ("L6", None, "-2"), d=Delims("|", "^", "{", "!", "")
    )
    (remit,) = read_835(content)
    assert (remit.payer_id, remit.trace, remit.payment_date) == (MEDICARE, "T1", date(2026, 3, 1))
    assert remit.total_paid == D("492")
    assert [(p.code, p.reference, p.amount) for p in remit.pairs][1] == ("L6", None, D("-2"))
    assert remit.pairs[0].reference is not None
    assert receivable_key(remit.pairs[0].reference, "medicare") == "FCN123"
    assert receivable_key("F" * 19 + "ACCT77", "medicare") == "F" * 19  # not padded: split by position
    assert receivable_key("F" * 19 + "ACCT77", "commercial") == "F" * 19 + "ACCT77"


def test_readme_example_on_2026_11_23() -> None:
    """The README's table: 2.88 + 0.03 + 0.03 on FCN26080300017, 0.72 on FCN26100500042."""
    files = tuple(p.read_bytes() for p in sorted(EXAMPLES.glob("*.835")))
    result = reconcile(Feed(files), date(2026, 11, 23))
    rows = {
        r.key: (
            r.status,
            r.determination,
            r.principal,
            r.principal_recovered,
            r.interest_accrued,
            r.interest_recovered,
            r.balance,
        )
        for r in result.receivables
    }
    assert rows == {
        "2226183201000": ("settled", date(2026, 8, 3), D("100"), D("100"), D("0"), D("0"), D("0")),
        "FCN26080300017": (
            "partially_recovered",
            date(2026, 8, 3),
            D("300"),
            D("297.12"),
            D("2.94"),
            D("2.88"),
            D("2.94"),
        ),
        "FCN26100500042": ("open", date(2026, 10, 5), D("75"), D("0"), D("0.72"), D("0"), D("75.72")),
    }
    # the reversal (ICN ...000) and its correction (...001) name one receivable
    reversal = result.receivable("2226183201001")
    assert reversal is not None
    assert reversal.identifiers == {"2226183201000", "2226183201001"}
    fcn17 = result.receivable("FCN26080300017")
    assert fcn17 is not None
    assert [(p.number, p.due, p.basis, p.amount) for p in fcn17.periods] == [
        (1, date(2026, 9, 3), D("300.00"), D("2.88")),
        (2, date(2026, 10, 3), D("2.88"), D("0.03")),
        (3, date(2026, 11, 2), D("2.88"), D("0.03")),
    ]
    assert {(k[1], (b.opened, b.applied)) for k, b in result.forwarding.items()} == {
        ("EFT260914001", (D("180"), D("180")))
    }
    assert result.queue == []
    assert result.buckets[PairRef("EFT260824001", "L6", None, 2)] == "non_offset"
    recovery = [a for a in result.allocations if a.receivable == "FCN26080300017"]
    assert [(a.trace, a.to_interest, a.to_principal) for a in recovery] == [
        ("EFT260914001", D("2.88"), D("297.12"))
    ]


def test_netted_reversal_is_settled_in_its_own_835_and_a_later_wo_is_excess() -> None:
    claims = reversal_pair("ACCT1", "2200000000010", "250.00", "150.00")
    feed = Feed(
        (file("T1", "20260301", claims=claims), file("T2", "20260310", ("WO", "2200000000011", "40")))
    )
    result = reconcile(feed, date(2026, 6, 1))
    (debt,) = result.receivables
    assert (debt.principal, debt.principal_recovered, debt.status) == (D("100"), D("100"), "settled")
    assert [(a.kind, a.to_principal) for a in result.allocations] == [("netting", D("100"))]
    assert [(q.source.trace, q.amount) for q in result.queue] == [("T2", D("40"))]


def test_one_debt_whatever_identifier_is_cited_in_any_file_order() -> None:
    """Reversal ...020/...021 deferred under a letter's FCN; the letter lists the corrected claim; recoveries
    cite the reversed ICN and a padded Medicare reference of the FCN. 200.00 determined on 2026-03-01
    (letter), 11.50 %: period 1 due 2026-04-01 (day 31) on 200.00 = 1.92 (200 × 0.115 / 12 = 1.9166…).
    2026-04-10 recovers 50.00: 1.92 interest, 48.08 principal → 151.92 owed. Period 2 due 05-01 on
    151.92 = 1.46 (1.4559). 2026-05-05 refund check acknowledged (72 + WO) 153.38 = 1.46 + 151.92: settled."""
    claims = reversal_pair("ACCT2", "2200000000020", "300.00", "100.00")
    fcn = "FCN260301000020"
    files = (
        file("T1", "20260301", ("WO", fcn, "-200"), claims=claims),
        file("T2", "20260410", ("WO", "2200000000020", "50")),
        file("T3", "20260505", ("WO", fcn.ljust(19) + "ACCT2", "153.38"), ("72", fcn, "-153.38")),
    )
    letter = Letter(MEDICARE, "1234567893", fcn, D("200"), date(2026, 3, 1), ("2200000000021",))
    for order in (files, files[::-1]):
        result = reconcile(Feed(order, (letter,)), date(2026, 7, 1))
        (debt,) = result.receivables
        assert debt.identifiers == {"2200000000020", "2200000000021", fcn}
        assert [(p.due, p.amount) for p in debt.periods] == [
            (date(2026, 4, 1), D("1.92")),
            (date(2026, 5, 1), D("1.46")),
        ]
        assert (debt.interest_recovered, debt.principal_recovered, debt.refunded) == (
            D("3.38"),
            D("200.00"),
            D("153.38"),
        )
        assert (debt.balance, debt.status) == (D("0"), "settled")
        assert not result.queue
        assert result.buckets[PairRef("T3", "WO", fcn.ljust(19) + "ACCT2", 1)] == "refund_acknowledged"


def test_refund_pair_for_an_unknown_receivable_is_acknowledged_never_queued() -> None:
    feed = Feed((file("T1", "20260301", ("WO", "NOBODY", "25"), ("72", "NOBODY", "-25"), ("WU", None, "5")),))
    result = reconcile(feed, date(2026, 3, 1))
    assert result.receivables == []
    assert result.refunds_for_unknown == [PairRef("T1", "WO", "NOBODY", 1)]
    assert [(q.source.code, q.amount) for q in result.queue] == [("WU", D("5"))]


def test_commercial_payer_charges_no_interest_and_reads_references_whole() -> None:
    files = (
        file("C1", "20260101", ("WO", "CLAIM77", "-80"), payer=COMMERCIAL),
        file("C2", "20260601", ("WO", "CLAIM77", "30"), payer=COMMERCIAL),
    )
    result = reconcile(Feed(files), date(2026, 12, 31))
    (debt,) = result.receivables
    assert (debt.policy, debt.interest_accrued, debt.balance, debt.status) == (
        "commercial",
        D("0"),
        D("50"),
        "partially_recovered",
    )


def test_forwarding_balance_and_over_recovery_queue_the_excess() -> None:
    """Deferral 100.00 on 03-01; on 03-20 a WO of 130.00 (BPR02 = 0, FB −30.00 carried); 04-02 FB +30.00.
    The 130.00 before day 31 pays the 100.00 principal and queues 30.00."""
    files = (
        file("M1", "20260301", ("WO", "FCNX", "-100")),
        file(
            "M2",
            "20260320",
            ("WO", "FCNX", "130"),
            ("FB", "M2", "-30"),
            claims=[Claim("P", [Service(D("100"))], icn="9")],
        ),
        file("M3", "20260402", ("FB", "M2", "30")),
    )
    result = reconcile(Feed(files), date(2026, 5, 1))
    (debt,) = result.receivables
    assert (debt.principal_recovered, debt.interest_accrued, debt.status) == (D("100"), D("0"), "settled")
    assert [(q.source.trace, q.amount) for q in result.queue] == [("M2", D("30"))]
    assert result.forwarding[MEDICARE, "M2"].applied == D("30")


def test_write_off_ends_interest_and_staff_refund_counts_as_refunded() -> None:
    """1000.00 letter of 2026-01-01: period 1 (due 02-01, day 31) 9.58. Staff refund of 500.00 on 02-10 pays
    9.58 + 490.42. Write-off of the rest (509.58) on 02-20: no period 2 (principal 0 when it ends on 03-02)."""
    letter = Letter(MEDICARE, "1234567893", "FCNW", D("1000"), date(2026, 1, 1))
    actions = (
        StaffAction("refund_sent", MEDICARE, "1234567893", "FCNW", date(2026, 2, 10), D("500")),
        StaffAction("write_off", MEDICARE, "1234567893", "FCNW", date(2026, 2, 20)),
    )
    result = reconcile(Feed((), (letter,), actions), date(2026, 6, 1))
    (debt,) = result.receivables
    assert [p.amount for p in debt.periods] == [D("9.58")]
    assert (debt.refunded, debt.written_off, debt.balance, debt.status) == (
        D("500"),
        D("509.58"),
        D("0"),
        "written_off",
    )


def test_a_15_digit_medicare_fcn_names_the_icn_it_ends_with() -> None:
    claims = reversal_pair("ACCT3", "2200000000030", "90.00", "30.00")
    files = (
        file("T1", "20260301", ("WO", "102200000000030", "-60"), claims=claims),
        # unknown as such, but it ends with the correction's ICN
        file("T2", "20260320", ("WO", "102200000000031", "20")),
        file("T3", "20260325", ("WO", "2200000000031", "25")),
    )
    result = reconcile(Feed(files), date(2026, 3, 31))
    (debt,) = result.receivables
    assert debt.identifiers == {"102200000000030", "2200000000030", "2200000000031"}
    assert (debt.principal, debt.principal_recovered) == (D("60"), D("45"))
    commercial = reconcile(
        Feed((file("C1", "20260301", ("WO", "102200000000030", "-60"), payer=COMMERCIAL),)), date(2026, 3, 1)
    )
    assert commercial.receivables[0].identifiers == {"102200000000030"}
