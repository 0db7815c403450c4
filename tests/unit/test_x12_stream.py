"""Streaming 835 reads: a file cut into byte blocks anywhere reads exactly like the whole file, transaction by
transaction, without holding more than a block and the transaction being read."""

from collections.abc import Iterator
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_x12_parser import MEDICARE
from x12_builder import Delims, Transaction, errors, files, parse_all, remittances, swap

from services.intake.feeds import FeedError, FeedErrorReason, ParsedRemittance
from services.intake.x12 import X12Parser, values
from services.intake.x12.source import decode_blocks, whole_file_encoding


def stream(chunks: list[bytes], encoding: str | None = None) -> list[ParsedRemittance | FeedError]:
    """Every result of ``parse_stream`` over the given blocks (same identity as ``parse_all``)."""
    return list(
        X12Parser().parse_stream(
            iter(chunks), file_name="test.835", file_sha256="0" * 64, tenant_id="t1", encoding=encoding
        )
    )


def cut(content: bytes, *at: int) -> list[bytes]:
    """The content split at the given byte positions."""
    bounds = [0, *at, len(content)]
    return [content[a:b] for a, b in pairwise(bounds)]


def in_sizes(content: bytes, sizes: list[int]) -> list[bytes]:
    """The content in blocks of the given sizes, repeated until it is used up."""
    chunks, pos, i = [], 0, 0
    while pos < len(content):
        chunks.append(content[pos : pos + sizes[i % len(sizes)]])
        pos += sizes[i % len(sizes)]
        i += 1
    return chunks


def test_a_boundary_anywhere_in_the_file_reads_like_the_whole_file() -> None:
    # Every position: inside the ISA header (delimiters need its first 106 characters), inside segment ids,
    # elements and composites, right before and after a terminator, inside ST, SE, GE and IEA.
    content = MEDICARE.encode()
    expected = parse_all(content)
    assert remittances(expected)
    for at in range(1, len(content)):
        assert stream(cut(content, at)) == expected, at


def test_one_byte_blocks_and_the_isa_header_cut_into_pieces() -> None:
    content = MEDICARE.encode()
    expected = parse_all(content)
    assert stream(in_sizes(content, [1])) == expected
    assert stream(cut(content, 3, 4, 50, 104, 105, 106, 107)) == expected
    assert stream([b"", *in_sizes(content, [7]), b""]) == expected


def test_crlf_split_between_the_carriage_return_and_the_line_feed() -> None:
    content = MEDICARE.replace("~\n", "~\r\n").encode()
    expected = parse_all(content)
    assert remittances(expected)
    for at in [i + 1 for i, byte in enumerate(content) if byte == ord("\r")][:12]:
        assert stream(cut(content, at)) == expected


def test_a_multi_byte_utf8_character_split_across_blocks() -> None:
    content = swap(MEDICARE, "N1*PR*MEDICARE PART B*", "N1*PR*MÉDICARE PART B – JÜ*").encode()
    expected = parse_all(content)
    [parsed] = remittances(expected)
    assert parsed.remittance.payer_name == "MÉDICARE PART B – JÜ"
    start = content.index("É".encode())
    for at in range(start - 1, start + 12):
        assert stream(cut(content, at)) == expected, at


def test_a_latin1_file_falls_back_to_latin1_whether_whole_or_streamed() -> None:
    content = swap(MEDICARE, "N1*PR*MEDICARE PART B*", "N1*PR*MÉDICARE PART B*").encode("latin-1")
    assert whole_file_encoding(content) == "latin-1"
    expected = parse_all(content)
    [parsed] = remittances(expected)
    assert parsed.remittance.payer_name == "MÉDICARE PART B"
    at = content.index(b"\xc9")
    for pos in (at - 1, at, at + 1, at + 2):
        assert stream(cut(content, pos)) == expected


def test_a_stream_switches_to_latin1_at_its_first_byte_that_is_not_utf8() -> None:
    # A stream cannot be rewound: valid UTF-8 before the first bad byte stays UTF-8, the rest is Latin-1.
    # A caller holding the whole file passes its encoding and gets exactly what parse(bytes) gives.
    text = "ISA É".encode() + b" \xc9 " + "É".encode()
    for at in range(1, len(text)):
        assert "".join(decode_blocks(cut(text, at))) == "ISA É É Ã\x89"
    assert "".join(decode_blocks(cut(text, 4), "latin-1")) == text.decode("latin-1")
    assert "".join(decode_blocks([b"ISA\xc3"])) == "ISAÃ"
    assert whole_file_encoding(text) == "latin-1" and whole_file_encoding("É".encode()) == "utf-8"


def test_several_interchanges_with_other_delimiters_in_small_blocks() -> None:
    second = (
        MEDICARE.replace("~\n", "!").replace("*", "|").replace(":", "^").replace("000000201", "000000202")
    )
    content = (MEDICARE + second).encode()
    expected = parse_all(content)
    assert len(remittances(expected)) == 2
    for sizes in ([1], [5, 3], [105], [106, 1], [1900, 7]):
        assert stream(in_sizes(content, sizes)) == expected, sizes


def test_errors_keep_their_precision_when_streamed() -> None:
    broken = [
        swap(MEDICARE, "CLP*ACCT20417*1*400*150*", "CLP*ACCT20417*1*400*151*"),
        swap(MEDICARE, "*72:FCN26070100003*", "*ZZ:FCN26070100003*"),
        swap(MEDICARE, "SE*40*0001", "SE*38*0001"),
        swap(swap(MEDICARE, "GE*1*201", "GE*2*202"), "IEA*1*000000201", "IEA*3*000000201"),
        swap(MEDICARE, "SE*40*0001~\n", ""),
        swap(MEDICARE, "ST*835*0001", "TA1*000000201*260803*0615*A*000~\nST*835*0001"),
        MEDICARE[:60],
        "claim_id,amount\nA1,100\n",
        "",
    ]
    for text in broken:
        content = text.encode()
        expected = parse_all(content)
        assert expected
        for sizes in ([1], [4], [64, 3]):
            assert stream(in_sizes(content, sizes)) == expected
    [unbalanced] = errors(stream(in_sizes(broken[0].encode(), [3])))
    assert (unbalanced.reason, unbalanced.segment_ordinal, unbalanced.segment_id, unbalanced.element) == (
        FeedErrorReason.UNBALANCED,
        29,
        "CLP",
        "CLP04",
    )
    assert (unbalanced.interchange_control_number, unbalanced.transaction_control_number) == (
        "000000201",
        "0001",
    )


def test_results_come_transaction_by_transaction_while_the_file_is_read() -> None:
    body = MEDICARE[MEDICARE.index("ST*835") : MEDICARE.index("GE*")]
    txns = "".join(body.replace("*0001", f"*{n:04d}") for n in range(1, 6))
    content = MEDICARE.replace(body, txns).replace("GE*1*201", "GE*5*201").encode()
    read = 0

    def blocks() -> Iterator[bytes]:
        nonlocal read
        for chunk in in_sizes(content, [256]):
            read += len(chunk)
            yield chunk

    seen = []
    for result in X12Parser().parse_stream(blocks(), file_name="f", file_sha256="0" * 64, tenant_id="t1"):
        assert isinstance(result, ParsedRemittance)
        seen.append(read)
    assert len(seen) == 5
    assert seen[0] < len(content) / 3, "the first transaction must come before the file is read"
    assert seen == sorted(seen) and seen[-1] >= seen[0] + 3 * len(body)


def test_memo_tables_that_fill_up_start_over_without_changing_results(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = MEDICARE[MEDICARE.index("ST*835") : MEDICARE.index("GE*")]
    content = MEDICARE.replace(body, body + body.replace("*0001", "*0002")).replace("GE*1*201", "GE*2*201")
    expected = parse_all(content)
    monkeypatch.setattr(values, "MEMO_LIMIT", 3)
    monkeypatch.setattr(values, "AMOUNT_LIMIT", 2)
    assert parse_all(content) == expected
    assert len(remittances(expected)) == 2


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files(), st.lists(st.integers(1, 400), min_size=1, max_size=8))
def test_random_files_in_random_blocks_read_like_the_whole_file(
    generated: tuple[str, list[Transaction], Delims], sizes: list[int]
) -> None:
    text, transactions, _ = generated
    content = text.encode()
    expected = parse_all(content)
    assert len(remittances(expected)) == len(transactions)
    assert stream(in_sizes(content, sizes)) == expected
