"""Property tests: random valid 835s keep their totals; random damage never makes the parser raise."""

from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from x12_builder import Delims, Transaction, files, parse_all, remittances

from services.intake.feeds import FeedError, ParsedRemittance


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files())
def test_random_valid_835s_round_trip_with_totals_intact(
    generated: tuple[str, list[Transaction], Delims],
) -> None:
    text, transactions, _ = generated
    parsed = remittances(parse_all(text))
    assert len(parsed) == len(transactions)
    for result, txn in zip(parsed, transactions, strict=True):
        remittance = result.remittance
        assert remittance.total_paid == txn.total
        assert remittance.total_claim_paid == txn.claims_paid
        assert remittance.total_provider_adjustments == txn.plb_total
        assert remittance.total_claim_paid - remittance.total_provider_adjustments == remittance.total_paid
        assert [c.paid for c in result.claims] == [c.paid for c in txn.claims]
        assert [c.charge for c in result.claims] == [c.charge for c in txn.claims]
        assert [c.service_line_count for c in result.claims] == [len(c.services) for c in txn.claims]
        assert [[s.paid for s in c.services] for c in result.claims] == [
            [s.paid for s in c.services] for c in txn.claims
        ]
        expected_adjustments = [
            len(c.adjustments) + sum(len(s.adjustments) for s in c.services) for c in txn.claims
        ]
        assert [len(c.adjustments) for c in result.claims] == expected_adjustments
        expected_pairs = [(p.reason, p.reference, p.amount) for plb in txn.plbs for p in plb.pairs]
        assert [(a.reason_code, a.reference, a.amount) for a in result.adjustments] == expected_pairs
        assert sum((a.amount for a in result.adjustments), Decimal("0")) == txn.plb_total


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    """A valid file with a few bytes replaced, inserted or deleted (delimiters included, on purpose)."""
    text, _, _ = draw(files())
    content = bytearray(text.encode())
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(content) - 1))
        action = draw(st.sampled_from(["replace", "insert", "delete"]))
        byte = draw(st.sampled_from([*b"*:~|^!\n-.0123456789AZ ", 0x00, 0xFF]))
        if action == "replace":
            content[at] = byte
        elif action == "insert":
            content.insert(at, byte)
        else:
            del content[at]
    return bytes(content)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged())
def test_damaged_files_only_ever_yield_remittances_or_errors(content: bytes) -> None:
    results = parse_all(content)
    assert results
    assert all(isinstance(r, ParsedRemittance | FeedError) for r in results)
    for result in results:
        if isinstance(result, ParsedRemittance):
            remittance = result.remittance
            assert remittance.total_claim_paid - remittance.total_provider_adjustments in (
                remittance.total_paid,
                -remittance.total_paid,
            )
        else:
            str(result)
            result.location()


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([b"", b"ISA", b"ISA*", b"\xef\xbb\xbfISA*00*"]))
def test_arbitrary_bytes_never_raise(content: bytes, prefix: bytes) -> None:
    results = parse_all(prefix + content)
    assert all(isinstance(r, ParsedRemittance | FeedError) for r in results)
