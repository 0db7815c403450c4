"""The ``x12_835`` feed-parser plugin: a payer file in (bytes, or byte blocks read from disk), one result per
transaction out."""

import gc
from collections.abc import Iterable, Iterator

from services.intake.feeds import FeedError, FeedErrorReason, ParsedRemittance
from services.intake.x12.claims import TransactionReader
from services.intake.x12.source import TextWindow, byte_blocks, decode_blocks, whole_file_encoding
from services.intake.x12.values import FileContext
from services.intake.x12.walker import EnvelopeWalker, RawTransaction

_SNIFF_SKIP = b" \t\r\n\x0b\x0c"

MAX_TRANSACTION_SEGMENTS = 1_000_000
"""Segments (ST to SE) of the longest transaction read; a longer one is refused whole (``too_large``).

The reader streams a file, but one transaction is read whole: its claims are one payment's money and post
together, so the transaction, its claims and their events are in memory at once, about 0.25 KiB a segment
(measured with ``make bench-parse`` files cut into one transaction: 670 000 segments peak at 215 MiB,
2.7 million at 700 MiB). At a million segments (40 000–75 000 claims, far above what payers send in one
payment) intake peaks near 300 MiB; ``OFFSETSTREAM_X12_MAX_TRANSACTION_SEGMENTS`` moves the bound."""
_BOM = b"\xef\xbb\xbf"


class X12Parser:
    """Reads X12 835 (005010X221A1) files with any delimiters, several interchanges/groups/transactions.

    Stateless and pure: the same bytes always give the same results, so a replayed file yields the same ids.
    """

    name = "x12_835"

    def __init__(self, max_transaction_segments: int = MAX_TRANSACTION_SEGMENTS) -> None:
        self.max_transaction_segments = max_transaction_segments

    def sniff(self, head: bytes) -> bool:
        """True when the bytes start (after an optional BOM and whitespace) with an ISA segment."""
        head = head.removeprefix(_BOM).lstrip(_SNIFF_SKIP)
        return head.startswith(b"ISA") and len(head) > 3 and not head[3:4].isalnum()

    def parse(
        self, content: bytes, *, file_name: str, file_sha256: str, tenant_id: str
    ) -> Iterator[ParsedRemittance | FeedError]:
        """Yield a :class:`ParsedRemittance` per good transaction and a :class:`FeedError` per problem.

        The whole file is at hand, so it is decoded with one encoding (UTF-8, or Latin-1 when any byte is not
        UTF-8) and then read exactly as :meth:`parse_stream` reads a file from disk.
        """
        return self.parse_stream(
            byte_blocks(content),
            file_name=file_name,
            file_sha256=file_sha256,
            tenant_id=tenant_id,
            encoding=whole_file_encoding(content),
        )

    def parse_stream(
        self,
        chunks: Iterable[bytes],
        *,
        file_name: str,
        file_sha256: str,
        tenant_id: str,
        encoding: str | None = None,
    ) -> Iterator[ParsedRemittance | FeedError]:
        """Like :meth:`parse`, for a file arriving in byte blocks of any size (say 1 MiB reads from disk).

        Results come transaction by transaction while the blocks are read, and only the current block and
        the transaction being read are held, so memory stays flat whatever the file's size. ``file_sha256``
        must be known up front (every remittance carries it): hash the file in a first pass. Without an
        ``encoding`` the text is UTF-8 up to the first byte that is not, Latin-1 from there on (see
        :func:`~services.intake.x12.source.decode_blocks`).

        Segments found outside any transaction are attached as a warning to the next good transaction; if
        none follows they are reported as one ``unsupported`` FeedError, so nothing is dropped silently.
        """
        ctx = FileContext(file_name, file_sha256, tenant_id)
        walker = EnvelopeWalker(
            TextWindow(decode_blocks(chunks, encoding)), file_name, self.max_transaction_segments
        )
        reported = 0
        for item in walker.walk():
            if isinstance(item, FeedError):
                yield item
            elif item.problem is not None:
                yield item.problem
            else:
                stray = walker.stray_segments()
                if len(stray) > reported:
                    item.warnings.append(_stray_warning(stray[reported:]))
                result = _read(item, ctx)
                if isinstance(result, ParsedRemittance):
                    reported = len(stray)
                yield result
        stray = walker.stray_segments()
        if len(stray) > reported:
            yield FeedError(
                FeedErrorReason.UNSUPPORTED,
                _stray_warning(stray[reported:]),
                file_name,
                expected="only ISA/GS/GE/IEA outside ST..SE",
            )


LARGE_TRANSACTION = 2_000
"""Segments from which a transaction is read with the collector paused (below, the pause gains nothing)."""


def _read(raw: RawTransaction, ctx: FileContext) -> ParsedRemittance | FeedError:
    """Read one transaction; a large one with the cyclic garbage collector paused and its payloads handed
    to the oldest generation without a collection.

    A transaction of thousands of claims allocates tens of thousands of long-lived payload objects. Left to
    the collector, each full collection during the read walks every object in the process (measured: ~40 %
    of the time at 100 000 claims), and even the one young collection afterwards walks all of them once
    (measured: 0.40 s of 3.9 s for 102 000 claims). Reading creates no reference cycles (a unit test keeps
    it so), so there is nothing in them for the collector to find. Hence, for a large transaction:

    1. ``gc.collect(1)`` first gives the host's young objects their ordinary collection, so its cyclic
       garbage is found as usual and the young generations hold nothing of the host's;
    2. the read runs with the collector disabled;
    3. ``gc.freeze()`` + ``gc.unfreeze()`` then moves what the read allocated into the oldest generation in
       constant time. The payloads are freed by reference counting when the caller drops them, as always.

    A host that keeps objects frozen itself (the stages, ``shared.gc_tuning``; a pre-fork server) must never
    be thawed, so step 3 is left out there: the read still runs with the collector paused, and the payloads
    meet one young collection afterwards instead of the many the read would have set off. Skipped when the
    host runs with the collector off. The pause never spans a ``yield``: the caller's code always runs with
    the collector as it found it. The segment list is emptied before the collector is back.
    """
    if len(raw.segments) < LARGE_TRANSACTION or not gc.isenabled():
        try:
            return TransactionReader(raw, ctx).read()
        finally:
            raw.segments.clear()
    thaw = not gc.get_freeze_count()
    gc.collect(1)
    gc.disable()
    try:
        return TransactionReader(raw, ctx).read()
    finally:
        raw.segments.clear()
        if thaw:
            gc.freeze()
            gc.unfreeze()
        gc.enable()


def _stray_warning(stray: list[str]) -> str:
    listed = ", ".join(stray[:10]) + (", …" if len(stray) > 10 else "")
    return f"{len(stray)} segment(s) outside any transaction kept, not interpreted: {listed}"
