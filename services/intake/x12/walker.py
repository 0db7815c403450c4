"""The one X12 envelope walker: ISA/GS/ST..SE/GE/IEA framing, counts and control numbers.

A file is cut into its transactions (ST..SE, as segment texts) exactly once, here, for both users of that
cut: the reader (:mod:`.parser`, which reads each transaction) and the splitter/router (:mod:`.split`,
which cuts a large or mixed-clinic file into parts between transactions). One walker means the two can
never disagree on where a transaction starts and ends, which terminator a file uses, what a line break
is, or which envelope is broken; they differ only in what they do with a broken one (the reader reports
it and reads on, the splitter refuses the file).

The walker checks every count and control number of the envelope but never interprets a transaction's
content, so one broken transaction costs only itself: envelope errors are yielded as :class:`FeedError`
alongside the transactions that are fine.

A little over 500 lines: one class, the envelope state machine, whose handlers share its counters; split,
they would pass those counters back and forth.
"""

from collections.abc import Generator, Iterator
from dataclasses import dataclass, field

from services.intake.feeds import FeedError, FeedErrorReason
from services.intake.x12.codes import ENVELOPE_SEGMENTS
from services.intake.x12.delimiters import (
    CUT_SHORT,
    ISA_LENGTH,
    Delimiters,
    read_delimiters,
    starts_interchange,
    wrapped,
)
from services.intake.x12.source import TextWindow

_ISA_ELEMENTS = 17


@dataclass(slots=True)
class RawTransaction:
    """One ST..SE transaction, as segment texts, with its place in the envelope."""

    index: int
    interchange_control_number: str | None
    group_control_number: str | None
    transaction_control_number: str
    segments: list[str]
    """Segment texts from ST to SE, stripped; split into elements by the reader as it goes."""
    delimiters: Delimiters
    warnings: list[str] = field(default_factory=list)
    group_version: str = ""
    """GS08 of the transaction's functional group: the guide version when ST03 does not name one."""
    problem: FeedError | None = None
    """Set when SE01 or SE02 disagrees with the transaction: the reader reports this instead of reading it;
    the splitter carries the transaction unchanged, so each part fails exactly as the whole file does."""
    interchange: int = 0
    """File segment number of the transaction's ISA: tells apart interchanges that repeat a control number."""
    group: int = 0
    """File segment number of the transaction's GS (0 outside any group)."""
    isa: str = ""
    """The ISA segment heading the transaction's interchange, as sent (stripped)."""
    gs: str = ""
    """The GS segment heading the transaction's functional group, as sent ("" outside any group)."""


_PADDING = "\x00\x1a \t\r\n\x0b\x0c"
"""What some systems pad a file with after its last segment: NUL bytes up to a block size, a DOS end-of-file
mark (SUB, 0x1A), blanks. Padding is not a segment, so it is neither counted nor reported as stray."""
_REDELIMIT = "ISA with other delimiters"
_ENVELOPE_FIRST = "GIS"
_ENVELOPE_SECOND = "EST"
"""First and second letters of ISA, IEA, GS, GE, ST and SE: a cheap test before the real one."""


class EnvelopeWalker:
    """Cuts one decoded file into :class:`RawTransaction` objects and envelope :class:`FeedError` objects.

    The text comes as a :class:`TextWindow` over the file's blocks: only the transaction being collected and
    the current block are held, so memory does not grow with the file.
    """

    def __init__(self, window: TextWindow, file_name: str, max_segments: int | None = None) -> None:
        """``max_segments`` bounds the segments of one transaction that are kept (see :meth:`_body`); the
        splitter passes none, since it carries transactions unchanged and the reader refuses them later."""
        self._window = window
        self._file = file_name
        self._max_segments = max_segments
        self._skipped = 0
        self._ordinal = 0
        self._isa13: str | None = None
        self._isa_ordinal = 0
        self._groups = 0
        self._in_interchange = False
        self._isa_text = ""
        self._gs06: str | None = None
        self._gs08 = ""
        self._gs_text = ""
        self._gs_ordinal = 0
        self._in_group = False
        self._transactions_in_group = 0
        self._txn: list[str] | None = None
        self._txn_index = 0
        self._st02 = ""
        self._interchange_warnings: list[str] = []
        self._stray: list[str] = []
        self._first_stray = 0
        self._at_end = False
        self._element = "*"

    def walk(self) -> Iterator[RawTransaction | FeedError]:
        """Yield transactions and envelope errors in file order; never raises for bad input.

        A file that does not start (after byte-order marks and whitespace) with ISA and a special character
        yields one ``unknown_format`` error and nothing else. A file wrapped at a fixed width loses all its
        line breaks first (see :func:`~services.intake.x12.delimiters.wrapped`).
        """
        window = self._window
        start = window.skip_preamble()
        window.fill(start + 4)
        if not starts_interchange(window.text, start):
            yield FeedError(
                FeedErrorReason.UNKNOWN_FORMAT,
                "the file does not start with an ISA segment",
                self._file,
                segment_ordinal=1,
                expected="an X12 interchange starting with ISA",
            )
            return
        if wrapped(window, start):
            window.unwrap()
        pos: int | None = window.skip_preamble()
        while pos is not None:
            window.fill(pos + ISA_LENGTH)
            found = read_delimiters(window.text, pos)
            while found == CUT_SHORT and window.more():
                found = read_delimiters(window.text, pos)
            if isinstance(found, str):
                self._ordinal += 1
                yield self._error(
                    FeedErrorReason.ENVELOPE, found, "ISA", expected="a 106-character ISA header"
                )
                break
            delimiters, fixed = found
            self._interchange_warnings = (
                [] if fixed else ["ISA is not the fixed 106 characters; delimiters found"]
            )
            pos = yield from self._interchange(pos, delimiters)
        self._at_end = True
        yield from self._close_all("end of file")

    def stray_segments(self) -> list[str]:
        """Ids (with file ordinals) of segments found outside any transaction, for a warning."""
        return self._stray

    @property
    def first_stray(self) -> int:
        """File segment number of the first segment found outside any transaction; 0 while there is none."""
        return self._first_stray

    @property
    def ordinal(self) -> int:
        """File segment number of the segment last walked (the one an envelope error is about)."""
        return self._ordinal

    @property
    def at_end(self) -> bool:
        """True once the end of the file is reached: errors from now on are about what it leaves open."""
        return self._at_end

    @property
    def transactions_in_group(self) -> int:
        """Transactions (ST segments) in the functional group walked last: what its GE01 must say."""
        return self._transactions_in_group

    @property
    def groups_in_interchange(self) -> int:
        """Functional groups (GS segments) in the interchange walked last: what its IEA01 must say."""
        return self._groups

    def _interchange(
        self, pos: int, delims: Delimiters
    ) -> Generator[RawTransaction | FeedError, None, int | None]:
        """Walk the segments of one interchange (from its ISA at ``pos``) cut with its terminator.

        Returns where, in the window, an ISA with other delimiters starts (``None`` at the end of the file).
        The window is cut at its last terminator: the complete segments before it are split at C speed and
        looked at one by one, but only a segment starting with an envelope id's first two letters
        (ISA/IEA/GS/GE/ST/SE) is examined further; the rest go, in runs, to the open transaction. Invariant:
        ``window.text[body]`` is the terminator after the last segment handled.
        """
        window, terminator = self._window, delims.segment
        self._element = delims.element
        end = window.find(terminator, pos)
        self._ordinal += 1
        yield from self._isa(window.text[pos:end].strip().split(delims.element))
        body = end
        while True:
            text = window.text
            last = len(text) if window.eof else text.rfind(terminator)
            start = body + 1
            run: list[str] = []
            for piece in text[start:last].split(terminator):
                segment = piece.strip()
                if (
                    len(segment) >= 2
                    and segment[0] in _ENVELOPE_FIRST
                    and segment[1] in _ENVELOPE_SECOND
                    and (sid := self._envelope_id(segment, delims)) is not None
                ):
                    self._body(run, delims)
                    run = []
                    if sid == _REDELIMIT:
                        window.drop(start + len(piece) - len(piece.lstrip()))
                        return 0
                    self._ordinal += 1
                    yield from self._envelope_segment(sid, segment.split(delims.element), delims)
                elif segment:
                    run.append(segment)
                start += len(piece) + 1
            self._body(run, delims)
            if window.eof:
                return None
            window.drop(last)
            body = 0
            window.more(until=terminator)

    def _envelope_segment(
        self, sid: str, els: list[str], delims: Delimiters
    ) -> Iterator[RawTransaction | FeedError]:
        """Dispatch by id. An ``if`` chain, not a table of bound methods: that table would be a reference
        cycle through the walker, which the parser must never leave behind (see ``parser._read``)."""
        if sid == "SE":
            return self._se(els, delims)
        if sid == "ST":
            return self._st(els)
        if sid == "GS":
            return self._gs(els)
        if sid == "GE":
            return self._ge(els)
        if sid == "IEA":
            return self._iea(els)
        return self._isa(els)

    @staticmethod
    def _envelope_id(segment: str, delims: Delimiters) -> str | None:
        """The envelope id of a candidate segment; :data:`_REDELIMIT` for an ISA of another interchange
        whose delimiters differ (read again); None when it only looks like one (it is body or stray)."""
        if segment.startswith("ISA") and len(segment) > 3 and not segment[3].isalnum():
            same = len(segment) == 105 and segment[3] == delims.element and segment[104] == delims.component
            return "ISA" if same else _REDELIMIT
        sid = segment.split(delims.element, 1)[0]
        return sid if sid in ENVELOPE_SEGMENTS else None

    def _body(self, segments: list[str], delims: Delimiters) -> None:
        """Segments between envelope segments: a transaction's content, or stray ones outside any."""
        txn = self._txn
        if txn is not None:
            self._ordinal += len(segments)
            limit = self._max_segments
            if limit is not None and (self._skipped or len(txn) + len(segments) > limit):
                # over the cap: keep counting (SE01 is still checked) but hold nothing more, and let go of
                # what is held, so a transaction's memory never exceeds the cap, whatever its size
                self._skipped += len(txn) + len(segments)
                txn.clear()
                return
            txn.extend(segments)
            return
        for seg in segments:
            if not seg.strip(_PADDING):
                continue
            self._ordinal += 1
            if not self._stray:
                self._first_stray = self._ordinal
            self._stray.append(f"{safe_id(seg.split(delims.element, 1)[0])} (file segment #{self._ordinal})")

    def _isa(self, els: list[str]) -> Iterator[FeedError]:
        if self._in_interchange:
            yield from self._close_all("a new ISA")
        self._in_interchange = True
        self._isa_ordinal = self._ordinal
        self._isa_text = self._element.join(els)
        self._groups = 0
        self._isa13 = els[13].strip() if len(els) > 13 else None
        if len(els) != _ISA_ELEMENTS:
            yield self._error(
                FeedErrorReason.ENVELOPE, f"ISA has {len(els)} elements", "ISA", expected="16 elements"
            )

    def _gs(self, els: list[str]) -> Iterator[FeedError]:
        yield from self._close_transaction("GS")
        if self._in_group:
            yield self._missing("GE", f"functional group GS06 {self._gs06} is not closed before the next GS")
        if not self._in_interchange:
            yield self._error(
                FeedErrorReason.ENVELOPE, "GS outside an interchange", "GS", expected="ISA first"
            )
        self._in_group = True
        self._groups += 1
        self._gs06 = els[6].strip() if len(els) > 6 else None
        self._gs08 = els[8].strip() if len(els) > 8 else ""
        self._gs_text = self._element.join(els)
        self._gs_ordinal = self._ordinal
        self._transactions_in_group = 0

    def _st(self, els: list[str]) -> Iterator[FeedError]:
        yield from self._close_transaction("ST")
        self._txn_index += 1
        self._transactions_in_group += 1
        self._st02 = els[2].strip() if len(els) > 2 else ""
        self._txn = [self._element.join(els)]
        if not self._in_group:
            yield self._error(
                FeedErrorReason.ENVELOPE, "ST outside a functional group", "ST", expected="GS before ST"
            )

    def _se(self, els: list[str], delims: Delimiters) -> Iterator[RawTransaction | FeedError]:
        txn = self._txn
        if txn is None:
            yield self._error(FeedErrorReason.ENVELOPE, "SE without a matching ST", "SE", expected="ST first")
            return
        txn.append(self._element.join(els))
        self._txn = None
        count = els[1].strip() if len(els) > 1 else ""
        control = els[2].strip() if len(els) > 2 else ""
        problem = None
        size, self._skipped = len(txn) + self._skipped, 0
        if size > len(txn):
            txn.clear()
            problem = self._too_large(size)
        elif count != str(len(txn)):
            problem = self._txn_error(
                f"SE01 says {shown_value(count, 'nothing')} segments but the transaction has {len(txn)}",
                len(txn),
                "SE",
                "SE01",
                f"{len(txn)} (segments from ST to SE inclusive)",
            )
        elif control != self._st02:
            problem = self._txn_error(
                f"SE02 {shown_value(control)} does not match ST02 {self._st02}",
                len(txn),
                "SE",
                "SE02",
                "SE02 = ST02",
            )
        in_group = self._in_group
        yield RawTransaction(
            self._txn_index,
            self._isa13,
            self._gs06 if in_group else None,
            self._st02,
            txn,
            delims,
            list(self._interchange_warnings),
            self._gs08 if in_group else "",
            problem,
            self._isa_ordinal,
            self._gs_ordinal if in_group else 0,
            self._isa_text,
            self._gs_text if in_group else "",
        )

    def _ge(self, els: list[str]) -> Iterator[FeedError]:
        yield from self._close_transaction("GE")
        if not self._in_group:
            yield self._error(FeedErrorReason.ENVELOPE, "GE without a matching GS", "GE", expected="GS first")
            return
        self._in_group = False
        count = els[1].strip() if len(els) > 1 else ""
        control = els[2].strip() if len(els) > 2 else ""
        if count != str(self._transactions_in_group):
            yield self._error(
                FeedErrorReason.ENVELOPE,
                f"GE01 says {shown_value(count, 'nothing')} transactions but the group has "
                f"{self._transactions_in_group}",
                "GE",
                "GE01",
                f"{self._transactions_in_group}",
            )
        if control != self._gs06:
            yield self._error(
                FeedErrorReason.ENVELOPE,
                f"GE02 {shown_value(control)} does not match GS06 {self._gs06}",
                "GE",
                "GE02",
                "GE02 = GS06",
            )

    def _iea(self, els: list[str]) -> Iterator[FeedError]:
        yield from self._close_transaction("IEA")
        if self._in_group:
            self._in_group = False
            yield self._missing("GE", f"functional group GS06 {self._gs06} is not closed before IEA")
        if not self._in_interchange:
            yield self._error(
                FeedErrorReason.ENVELOPE, "IEA without a matching ISA", "IEA", expected="ISA first"
            )
            return
        self._in_interchange = False
        count = els[1].strip() if len(els) > 1 else ""
        control = els[2].strip() if len(els) > 2 else ""
        if count != str(self._groups):
            yield self._error(
                FeedErrorReason.ENVELOPE,
                f"IEA01 says {shown_value(count, 'nothing')} groups but the interchange has {self._groups}",
                "IEA",
                "IEA01",
                f"{self._groups}",
            )
        if control != self._isa13:
            yield self._error(
                FeedErrorReason.ENVELOPE,
                f"IEA02 {shown_value(control)} does not match ISA13 {self._isa13}",
                "IEA",
                "IEA02",
                "IEA02 = ISA13",
            )

    def _close_transaction(self, by: str) -> Iterator[FeedError]:
        if self._txn is not None:
            ordinal = len(self._txn) + self._skipped + 1
            self._txn, self._skipped = None, 0
            yield self._txn_error(
                f"transaction ST02 {self._st02} has no SE before {by}", ordinal, by, None, "SE closing the ST"
            )

    def _close_all(self, by: str) -> Iterator[FeedError]:
        yield from self._close_transaction(by)
        if self._in_group:
            self._in_group = False
            yield self._missing("GE", f"functional group GS06 {self._gs06} is not closed before {by}")
        if self._in_interchange:
            self._in_interchange = False
            yield self._missing("IEA", f"interchange ISA13 {self._isa13} is not closed before {by}")

    def _missing(self, segment_id: str, message: str) -> FeedError:
        return self._error(FeedErrorReason.ENVELOPE, message, segment_id, expected=segment_id)

    def _error(
        self,
        reason: FeedErrorReason,
        message: str,
        segment_id: str,
        element: str | None = None,
        expected: str | None = None,
    ) -> FeedError:
        return FeedError(
            reason,
            message,
            self._file,
            interchange_control_number=self._isa13,
            segment_ordinal=max(self._ordinal, 1),
            segment_id=segment_id,
            element=element,
            expected=expected,
        )

    def _too_large(self, size: int) -> FeedError:
        """The error of a transaction longer than the reader's cap (``max_segments``), refused whole."""
        return FeedError(
            FeedErrorReason.TOO_LARGE,
            f"transaction ST02 {shown_value(self._st02)} has {size} segments; the reader takes at most "
            f"{self._max_segments} segments in one transaction (its memory grows with the transaction, whose "
            "claims post together), so it was not read: ask the payer to split the payment into transactions, "
            "or raise OFFSETSTREAM_X12_MAX_TRANSACTION_SEGMENTS",
            self._file,
            interchange_control_number=self._isa13,
            transaction_control_number=self._st02,
            transaction_index=self._txn_index,
            segment_ordinal=size,
            segment_id="SE",
            expected=f"at most {self._max_segments} segments from ST to SE",
        )

    def _txn_error(
        self, message: str, ordinal: int, segment_id: str, element: str | None, expected: str
    ) -> FeedError:
        return FeedError(
            FeedErrorReason.ENVELOPE,
            message,
            self._file,
            interchange_control_number=self._isa13,
            transaction_control_number=self._st02,
            transaction_index=self._txn_index,
            segment_ordinal=ordinal,
            segment_id=segment_id,
            element=element,
            expected=expected,
        )


_SHOWN_MAX = 20
"""Longest control number or count quoted in a message: X12 allows 9 digits, so a longer one is quoted whole
(it is the error), while a long run of anything else is never data worth quoting."""


def shown_value(value: str, missing: str = "missing") -> str:
    """A control number or count for a message, exactly as sent when it looks like one (letters and digits,
    at most 20), so two different values never print alike; anything else is described, not quoted."""
    if not value:
        return missing
    if len(value) <= _SHOWN_MAX and value.isalnum():
        return value
    return f"<{len(value)} characters, not a control number or count>"


def safe_id(segment_id: str) -> str:
    """A segment id fit for a message: X12 ids are 2-3 upper-case letters/digits; anything else may be data.

    Quoting only id-shaped text keeps a corrupted segment (say, a name after a stray terminator) out of logs.
    """
    if (
        2 <= len(segment_id) <= 3
        and segment_id.isalnum()
        and segment_id.isupper()
        and segment_id[0].isalpha()
    ):
        return segment_id
    return "<malformed>"
