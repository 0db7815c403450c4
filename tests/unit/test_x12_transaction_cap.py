"""The reader's bound on one transaction (issue #18.6): a transaction longer than ``max_transaction_segments``
is refused whole with a ``too_large`` error naming it, the file's other transactions still post, and the
reader's memory stays near the cap however long the refused transaction is."""

import hashlib
import tracemalloc
from decimal import Decimal

from x12_builder import Claim, Service, Transaction, build_835

from services.intake.feeds import FeedError, FeedErrorReason, ParsedRemittance
from services.intake.x12 import X12Parser


def _file(*claim_counts: int) -> bytes:
    transactions = [
        Transaction(
            claims=[Claim(f"PCN{n}-{i}", [Service(Decimal("100.00"), [])]) for i in range(count)],
            st02=f"{n + 1:04d}",
            trace=f"EFT{n}",
        )
        for n, count in enumerate(claim_counts)
    ]
    return build_835(*transactions).encode()


def _parse(content: bytes, cap: int) -> list[ParsedRemittance | FeedError]:
    sha = hashlib.sha256(content).hexdigest()
    return list(X12Parser(cap).parse(content, file_name="big.835", file_sha256=sha, tenant_id="t1"))


def test_a_transaction_over_the_cap_is_refused_whole_and_the_next_one_posts() -> None:
    small = _parse(_file(3, 200, 2), cap=5_000)
    assert [type(r).__name__ for r in small] == ["ParsedRemittance"] * 3  # 200 claims fit 5 000 segments
    first, big, last = _parse(_file(3, 200, 2), cap=300)
    assert isinstance(first, ParsedRemittance) and len(first.claims) == 3
    assert isinstance(last, ParsedRemittance) and len(last.claims) == 2
    assert isinstance(big, FeedError)
    assert big.reason == FeedErrorReason.TOO_LARGE
    assert big.transaction_control_number == "0002"
    assert big.segment_id == "SE"
    assert (
        "at most 300 segments" in big.message and "OFFSETSTREAM_X12_MAX_TRANSACTION_SEGMENTS" in big.message
    )
    assert big.segment_ordinal is not None and big.segment_ordinal > 300  # the transaction's real length


def test_memory_of_a_refused_transaction_stays_near_the_cap() -> None:
    def peak(claims: int) -> int:
        content = _file(claims)
        tracemalloc.start()
        try:
            [result] = _parse(content, cap=2_000)
            assert isinstance(result, FeedError)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    # three times the claims, refused alike: the reader held about the same, a block of the file (1 MiB, both
    # files are larger) and the cap (the file itself is not traced: it was built before tracing started)
    smaller, larger = peak(20_000), peak(60_000)
    assert larger < 1.2 * smaller, (smaller, larger)
