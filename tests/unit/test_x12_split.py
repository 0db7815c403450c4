"""Cutting a file too large for one intake message into self-contained X12 files
(services/intake/x12/split.py).

The promise: the parts, read one by one, give exactly the remittances the whole file gives (same ids, same
claims and PLB pairs, same totals), each part within the size asked for; and a file whose envelope is not
sound is refused rather than silently recounted.
"""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_x12_parser import MEDICARE
from x12_builder import (
    DELIMITER_SETS,
    errors,
    groups,
    interchange,
    parse_all,
    remittances,
    swap,
)

from services.intake.feeds import ParsedRemittance
from services.intake.x12.split import SplitRefused, cut_x12, split_x12


def _essence(parsed: list[ParsedRemittance]) -> list[tuple[object, ...]]:
    """What must not change when a file is cut: every id and amount (not the file name, hash or index)."""
    return [
        (
            p.remittance.remittance_id,
            p.remittance.total_paid,
            p.remittance.interchange_control_number,
            p.remittance.group_control_number,
            p.remittance.transaction_control_number,
            p.claims,
            p.adjustments,
            p.warnings,
        )
        for p in parsed
    ]


@st.composite
def large_files(draw: st.DrawFn) -> str:
    """Two or three interchanges (own ISA13), each of one to three groups of one to three transactions."""
    d = draw(st.sampled_from(DELIMITER_SETS))
    text = ""
    for n in range(draw(st.integers(2, 3))):
        text += interchange(draw(groups()), d, isa13=f"{101 + n:09d}") + d.newline
    return text


@settings(max_examples=60, deadline=None)
@given(text=large_files(), fraction=st.floats(0.0, 1.0))
def test_the_parts_read_as_the_whole_file(text: str, fraction: float) -> None:
    whole = remittances(parse_all(text))
    content = text.encode()
    limit = 1_000 + int(fraction * len(content))
    try:
        parts = split_x12(content, limit)
    except SplitRefused as refused:  # only when one transaction with its headers cannot fit
        needed = re.search(r"alone needs (\d+) bytes", str(refused))
        assert needed and int(needed.group(1)) > limit, str(refused)
        return
    assert all(len(p) <= limit for p in parts)
    read = [r for p in parts for r in remittances(parse_all(p))]
    assert _essence(read) == _essence(whole)
    assert split_x12(content, limit) == parts  # deterministic: a file fed twice becomes the same parts


def test_a_file_within_the_limit_is_one_part_and_a_small_limit_gives_one_transaction_a_part() -> None:
    three = swap(MEDICARE, "SE*40*0001~\n", "SE*40*0001~\n" + _txn_copy("0002") + _txn_copy("0003"))
    three = swap(three, "GE*1*201", "GE*3*201")
    [whole] = split_x12(three.encode(), 1 << 20)
    assert len(remittances(parse_all(whole))) == 3
    parts = split_x12(three.encode(), 2_500)
    assert len(parts) == 3
    assert [len(remittances(parse_all(p))) for p in parts] == [1, 1, 1]
    assert all(p.count(b"GE*1*201~") == 1 and p.count(b"IEA*1*000000201~") == 1 for p in parts)


def _txn_copy(st02: str) -> str:
    start, end = MEDICARE.index("ST*835*0001"), MEDICARE.index("GE*1*201")
    return MEDICARE[start:end].replace("*0001", f"*{st02}").replace("EFT260803001", f"EFT26080300{st02[-1]}")


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (("GE*1*201", "GE*2*201"), "count or control number does not match the 1 transactions"),
        (("IEA*1*000000201", "IEA*1*000000999"), "count or control number does not match the 1 groups"),
        (("GE*1*201~\n", "XYZ*STRAY~\nGE*1*201~\n"), "outside any transaction"),
        (("SE*40*0001~\n", ""), "is out of place"),
        (("IEA*1*000000201~\n", ""), "no IEA"),
    ],
)
def test_a_file_whose_envelope_is_not_sound_is_refused(damage: tuple[str, str], said: str) -> None:
    with pytest.raises(SplitRefused, match=said):
        split_x12(swap(MEDICARE, *damage).encode(), 1 << 20)


def test_what_cannot_be_cut_is_refused_with_the_reason() -> None:
    with pytest.raises(SplitRefused, match="only X12 files"):
        split_x12(b"payer,trace,amount\n01312,EFT1,10.00\n", 100)
    with pytest.raises(SplitRefused, match="transaction #1 alone needs"):
        split_x12(MEDICARE.encode(), 1_000)
    other = MEDICARE.replace("*", "|").replace(":", "^")
    with pytest.raises(SplitRefused, match="outside any transaction"):
        split_x12((MEDICARE + other).encode(), 1 << 20)  # a second interchange with other delimiters


def test_a_wrapped_file_is_cut_into_unwrapped_parts() -> None:
    flat = MEDICARE.replace("\n", "")
    wrapped = "\r\n".join(flat[i : i + 80] for i in range(0, len(flat), 80)).encode()
    [part] = split_x12(wrapped, 1 << 20)
    assert _essence(remittances(parse_all(part))) == _essence(remittances(parse_all(MEDICARE)))
    assert b"\r" not in part


def _batch_of_three_clinics() -> str:
    """A clearinghouse batch: transactions for payee NPI 1234567893, 1999999984 and an unlisted one."""
    second = (
        _txn_copy("0002").replace("*XX*1234567893", "*XX*1999999984").replace("REF*TJ*561234567", "REF*TJ*5")
    )
    third = (
        _txn_copy("0003").replace("*XX*1234567893", "*XX*1555555553").replace("REF*TJ*561234567", "REF*TJ*7")
    )
    batch = swap(MEDICARE, "SE*40*0001~\n", "SE*40*0001~\n" + second + third)
    return swap(batch, "GE*1*201", "GE*3*201")


def test_a_batch_is_cut_per_clinic_by_payee_npi_or_tax_id() -> None:
    """Each tenant gets only its own payees' transactions; what no directory entry names stays with the
    tenant the file was received for; together the parts are the whole file."""
    batch = _batch_of_three_clinics()
    directory = {"1234567893": "clinic-a", "7": "clinic-c"}  # the third payee is known by its tax id only
    cut = cut_x12(
        batch.encode(), 1 << 20, lambda ids: next((directory[i] for i in ids if i in directory), "inbox")
    )
    assert [tenant for tenant, _ in cut] == ["clinic-a", "inbox", "clinic-c"]
    payees = {tenant: [r.remittance.payee_id for r in remittances(parse_all(part))] for tenant, part in cut}
    assert payees == {"clinic-a": ["1234567893"], "inbox": ["1999999984"], "clinic-c": ["1555555553"]}
    read = [r for _, part in cut for r in remittances(parse_all(part))]
    assert sorted(_essence(read)) == sorted(_essence(remittances(parse_all(batch))))


def test_messages_route_by_payee_and_a_file_all_of_one_tenant_goes_as_it_came() -> None:
    from contracts.envelope import parse_envelope
    from contracts.events import RawFileReceived
    from services.intake.publish import raw_file_messages

    batch = _batch_of_three_clinics().encode()
    routed = raw_file_messages(batch, "era.835", "inbox", "cli", payees={"1999999984": "clinic-b"})
    tenants = [parse_envelope(value, RawFileReceived).tenant_id for _, value in routed]
    assert tenants == ["inbox", "clinic-b"]
    names = [parse_envelope(value, RawFileReceived).payload.file_name for _, value in routed]
    assert names == ["era.835", "era.835"]
    [same] = raw_file_messages(batch, "era.835", "inbox", "cli", payees={"1234567893": "inbox"})
    assert parse_envelope(same[1], RawFileReceived).payload.content == batch
    [csv] = raw_file_messages(b"payer,trace\n", "era.csv", "inbox", "cli", payees={"1": "clinic-b"})
    assert parse_envelope(csv[1], RawFileReceived).payload.content == b"payer,trace\n"


@pytest.mark.parametrize(
    "preamble",
    [b" " * 70, b"\r\n" * 40, b"\x1f", b"\xef\xbb\xbf\xef\xbb\xbf", "\u00a0\n".encode()],
)
def test_whatever_the_reader_skips_before_the_isa_does_not_stop_routing(preamble: bytes) -> None:
    """The reader skips any byte-order marks and whitespace before ISA; routing must see the same file, or
    another clinic's transaction would go, unrouted, to the receiving tenant."""
    from contracts.envelope import parse_envelope
    from contracts.events import RawFileReceived
    from services.intake.publish import raw_file_messages

    batch = preamble + _batch_of_three_clinics().encode()
    routed = raw_file_messages(batch, "era.835", "inbox", "cli", payees={"1999999984": "clinic-b"})
    assert [parse_envelope(v, RawFileReceived).tenant_id for _, v in routed] == ["inbox", "clinic-b"]


def test_padding_inside_a_transaction_is_a_segment_in_the_parts_as_in_the_whole() -> None:
    """NUL or SUB between segments of a transaction is counted by the reader (so SE01 disagrees); the parts
    must not quietly drop it and post what the whole file rejects."""
    damaged = swap(MEDICARE, "DTM*405*20260801~\n", "DTM*405*20260801~\n\x00\x00~\n")
    whole = errors(parse_all(damaged))
    [part] = split_x12(damaged.encode(), 1 << 20)
    assert [e.message for e in errors(parse_all(part))] == [e.message for e in whole]
    assert whole and "SE01" in whole[0].message
