"""A file holding the same interchange many times: one remittance posts, and it says so in a warning.

Every copy of a transaction has the same remittance identity (tenant, payer, TRN02, ISA13/GS06/ST02), hence the
same event ids, so only one can ever post; before, the copies were dropped as "already posted" without a word.
"""

from decimal import Decimal

from test_x12_parser import MEDICARE
from x12_builder import Claim, Service, Transaction, build_835, parse_all, remittances, swap

from services.intake import domain

TIMES = 12


def test_an_interchange_repeated_in_one_file_posts_once_with_a_warning() -> None:
    parsed = remittances(parse_all(MEDICARE * TIMES))
    assert len(parsed) == TIMES
    assert len({p.remittance.remittance_id for p in parsed}) == 1
    kept, repeats = domain.collapse_repeats(parsed)
    assert repeats == TIMES - 1
    [only] = kept
    assert only.remittance == parsed[0].remittance
    assert only.warnings == (
        "transaction #1 is repeated 11 more time(s) in this file (transactions #2, #3, #4, #5, #6, #7, #8, #9, "
        "#10, #11, …) under the same control numbers (ISA13/GS06/ST02) and trace number, with the same claims "
        "and money: posted once",
    )


def test_a_copy_with_other_money_under_the_same_control_numbers_is_named() -> None:
    """The same ISA13/GS06/ST02 and TRN02 with other money shares the first one's ids and cannot post: staff
    must hear which copies differ (positions and counts only, never a value)."""
    other = swap(
        swap(MEDICARE, "CLP*ACCT10001*1*200*128*32", "CLP*ACCT10001*1*200*118*32"),
        "CAS*CO*45*40~",
        "CAS*CO*45*50~",
    )
    other = swap(other, "SVC*HC:99214:25*200*128**1", "SVC*HC:99214:25*200*118**1")
    other = swap(other, "BPR*I*430.37*", "BPR*I*420.37*")
    parsed = remittances(parse_all(MEDICARE + MEDICARE + other))
    kept, repeats = domain.collapse_repeats(parsed)
    assert repeats == 2
    [only] = kept
    [warning] = only.warnings
    assert warning == (
        "transaction #1 is repeated 2 more time(s) in this file (transactions #2, #3) under the same control "
        "numbers (ISA13/GS06/ST02) and trace number; 1 of them (#3) carry other claims or money and were not "
        "posted (they share this remittance's ids): ask the payer for a corrected file"
    )
    for value in ("EFT260803001", "000000201", "420.37", "430.37", "ACCT10001", "TESTPATIENT"):
        assert value not in warning


def test_distinct_transactions_are_left_alone_and_reader_warnings_kept() -> None:
    txns = [Transaction([Claim("PCN1", [Service(Decimal("100"))])], st02=st02) for st02 in ("0001", "0002")]
    parsed = remittances(parse_all(build_835(*txns)))
    assert [p.remittance.transaction_control_number for p in parsed] == ["0001", "0002"]
    assert domain.collapse_repeats(parsed) == (parsed, 0)
    unknown = swap(swap(MEDICARE, "DTM*405*20260801~", "DTM*405*20260801~\nZZZ*1~"), "SE*40*", "SE*41*")
    [first], repeats = domain.collapse_repeats(remittances(parse_all(unknown * 2)))
    assert repeats == 1
    assert len(first.warnings) == 2
    assert first.warnings[0].startswith("unsupported segment ZZZ ×1")
    assert first.warnings[1].endswith("with the same claims and money: posted once")
