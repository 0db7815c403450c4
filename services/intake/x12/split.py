"""Cut an X12 file too large for one intake message into smaller, self-contained X12 files.

A raw file travels to intake as one Kafka message (``shared.kafka.MAX_MESSAGE_BYTES``), yet a large
hospital's weekly Medicare 835 can be several times that. The payer's transactions (``ST..SE``) are the unit
everything downstream identifies a remittance by (tenant, payer, ``TRN02``, ``ISA13``/``GS06``/``ST02``),
so a file can be cut between transactions without changing a single id: each part repeats the
interchange and group headers (``ISA``, ``GS``) of the transactions it carries and closes them with
``GE``/``IEA`` trailers whose counts are those of the part, under the original control numbers. Every
segment of a transaction is kept as sent (only the line breaks between segments are the splitter's), so
the reader checks each transaction exactly as it would in the whole file: same balancing, same ``SE01``.

The same cut routes a file by payee: a clearinghouse delivers one ERA batch to a billing company holding
the transactions of many clinics (payees), and each clinic is a tenant whose data must never reach
another. :func:`cut_x12` groups the transactions by the tenant their payee (``N1*PE`` ``N104``, else the
``REF*TJ`` tax id of loop 1000B) belongs to, and each tenant gets parts holding only its own transactions.

The file is cut where the reader cuts it: both walk it with the one envelope walker
(:class:`~services.intake.x12.walker.EnvelopeWalker`), on the text the reader decodes (UTF-8, else Latin-1,
encoded back the same way), so they agree on the terminator, on line breaks (a file wrapped at a fixed
width is unwrapped), on what lies outside any transaction and on every count. The cut is refused, with a
reason, when the walker finds the file's own envelope not sound (counts or control numbers that disagree,
segments outside any transaction, an unclosed group or interchange): recounting the trailers would hide the
payer's error, so such a file must be corrected and sent again. A transaction whose own ``SE01``/``SE02`` is
wrong is carried as sent: each part then fails it exactly as the whole file does. The cut is deterministic, so a large file
fed twice becomes the same parts, which intake then recognises as copies it already has.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from services.intake.feeds import FeedError, FeedErrorReason
from services.intake.x12.source import TextWindow, byte_blocks, decode_blocks, whole_file_encoding
from services.intake.x12.walker import EnvelopeWalker


class SplitRefused(ValueError):
    """The file cannot be cut into parts; the message says why (segment ids and counts, never values)."""


class NotX12(SplitRefused):
    """The file does not start with an ISA segment (after what the reader skips): not X12 at all."""


@dataclass(frozen=True)
class _Group:
    gs: bytes
    gs06: bytes


@dataclass(frozen=True)
class _Interchange:
    isa: bytes
    isa13: bytes
    groups: dict[int, _Group] = field(default_factory=dict)
    """By the file segment number of each group's GS."""


@dataclass(frozen=True)
class _Item:
    """One transaction with the interchange and group it belongs to (file segment numbers of its ISA, GS)."""

    interchange: int
    group: int
    text: bytes


TenantOf = Callable[[tuple[str, ...]], str]
"""The tenant a transaction belongs to, from its payee's identifiers: N1*PE N104, then REF*TJ of loop 1000B."""


def split_x12(content: bytes, max_part_bytes: int) -> list[bytes]:
    """The file as parts of at most ``max_part_bytes`` each, in file order; raises :class:`SplitRefused`."""
    return [part for _, part in cut_x12(content, max_part_bytes, lambda _: "")]


def cut_x12(content: bytes, max_part_bytes: int, tenant_of: TenantOf) -> list[tuple[str, bytes]]:
    """``(tenant, part)`` pairs: each tenant's transactions (``tenant_of`` their payee) in parts of at most
    ``max_part_bytes``, tenants in the order their first transaction comes, each part's transactions in file
    order; raises :class:`SplitRefused`.

    A file that is not X12, whose envelope is not sound, or one of whose transactions alone exceeds the
    limit cannot be cut. Each segment of a part is the segment as the reader sees it (stripped, a wrapped
    file unwrapped) followed by the terminator and a newline (only the terminator when it is a line break).
    """
    encoding = whole_file_encoding(content)
    walker = EnvelopeWalker(TextWindow(decode_blocks(byte_blocks(content), encoding)), "")
    interchanges: dict[int, _Interchange] = {}
    by_tenant: dict[str, list[_Item]] = {}
    element = terminator = end = ""
    for item in walker.walk():
        if walker.first_stray:
            raise SplitRefused(f"segment #{walker.first_stray} is outside any transaction")
        if isinstance(item, FeedError):
            raise _refusal(item, walker)
        if not element:
            element, terminator = item.delimiters.element, item.delimiters.segment
            end = terminator if terminator in "\r\n" else terminator + "\n"
        elif (item.delimiters.element, item.delimiters.segment) != (element, terminator):
            raise SplitRefused(
                f"segment #{item.interchange} is outside any transaction as the file's first delimiters "
                "frame them: it starts an interchange with other delimiters, and such a file is not cut"
            )
        interchange = interchanges.setdefault(
            item.interchange,
            _Interchange(item.isa.encode(encoding), (item.interchange_control_number or "").encode(encoding)),
        )
        interchange.groups.setdefault(
            item.group, _Group(item.gs.encode(encoding), (item.group_control_number or "").encode(encoding))
        )
        text = (end.join(item.segments) + end).encode(encoding)
        items = by_tenant.setdefault(tenant_of(_payees(item.segments, element)), [])
        items.append(_Item(item.interchange, item.group, text))
    if walker.first_stray:
        raise SplitRefused(f"segment #{walker.first_stray} is outside any transaction")
    trailer = (element.encode(encoding), end.encode(encoding))
    return [
        (tenant, _render(interchanges, part, *trailer))
        for tenant, items in by_tenant.items()
        for part in _pack(interchanges, items, max_part_bytes)
    ]


def _refusal(error: FeedError, walker: EnvelopeWalker) -> SplitRefused:
    """Why an envelope error the walker reports stops the cut, in the splitter's terms."""
    if error.reason is FeedErrorReason.UNKNOWN_FORMAT:
        return NotX12("the file does not start with an ISA segment: only X12 files can be cut")
    if walker.at_end:
        return SplitRefused(f"the file ends inside an interchange (no IEA): {error.message}")
    where = f"segment #{walker.ordinal}"
    if error.element in ("GE01", "GE02", "IEA01", "IEA02"):
        closed = (
            f"{walker.transactions_in_group} transactions"
            if error.segment_id == "GE"
            else f"{walker.groups_in_interchange} groups"
        )
        return SplitRefused(
            f"{where} ({error.segment_id}): its count or control number does not match the {closed} it "
            "closes; recounting it would hide the payer's error, so the file must be corrected before it is cut"
        )
    if error.segment_id == "ISA":
        return SplitRefused(f"{where} (ISA): {error.message}")
    return SplitRefused(f"{where} is out of place: {error.message}")


def _pack(
    interchanges: dict[int, _Interchange], items: list[_Item], max_part_bytes: int
) -> list[list[_Item]]:
    """``items`` in runs of at most ``max_part_bytes`` once rendered (headers and trailers counted)."""
    parts: list[list[_Item]] = [[]]
    size = 0
    for number, item in enumerate(items, start=1):
        alone = _overhead(interchanges, item, None) + len(item.text)
        if alone > max_part_bytes:
            raise SplitRefused(
                f"transaction #{number} alone needs {alone} bytes, more than a part may hold "
                f"({max_part_bytes}): the file cannot be cut between transactions"
            )
        grown = size + _overhead(interchanges, item, parts[-1][-1] if parts[-1] else None) + len(item.text)
        if parts[-1] and grown > max_part_bytes:
            parts.append([])
            grown = alone
        parts[-1].append(item)
        size = grown
    return [part for part in parts if part]


def _payees(segments: list[str], element: str) -> tuple[str, ...]:
    """Payee identifiers of a transaction's header (loops up to 1000B): N1*PE N104, then REF*TJ."""
    payee, tax = element.join(("N1", "PE", "")), element.join(("REF", "TJ", ""))
    header_ends = ("LX" + element, "CLP" + element, "PLB" + element, "SE" + element)
    found: list[str] = []
    for segment in segments:
        if segment.startswith(header_ends):
            break
        if segment.startswith(payee):
            found.append(_element(segment.split(element), 4))
        elif segment.startswith(tax) and found:
            found.append(_element(segment.split(element), 2))
    return tuple(p for p in found if p)


def _element(els: list[str], index: int) -> str:
    return els[index].strip() if len(els) > index else ""


def _overhead(interchanges: dict[int, _Interchange], item: _Item, last: _Item | None) -> int:
    """Bytes a part needs besides ``item`` itself to carry it after ``last``: the headers and trailers it
    opens (trailers: id, a count of up to 9 digits, the control number, separators and line ends)."""
    interchange = interchanges[item.interchange]
    size = 0
    if last is None or last.interchange != item.interchange:
        size += len(interchange.isa) + len(interchange.isa13) + 20
    if last is None or (last.interchange, last.group) != (item.interchange, item.group):
        size += len(interchange.groups[item.group].gs) + len(interchange.groups[item.group].gs06) + 20
    return size


def _render(interchanges: dict[int, _Interchange], part: list[_Item], element: bytes, end: bytes) -> bytes:
    """One part as an X12 file: each run of its transactions under its own ISA/GS, closed and counted."""
    out: list[bytes] = []
    index = 0
    while index < len(part):
        at = part[index].interchange
        interchange = interchanges[at]
        out.append(interchange.isa + end)
        groups = 0
        while index < len(part) and part[index].interchange == at:
            g = part[index].group
            group = interchange.groups[g]
            out.append(group.gs + end)
            count = 0
            while index < len(part) and (part[index].interchange, part[index].group) == (at, g):
                out.append(part[index].text)
                count += 1
                index += 1
            out.append(element.join((b"GE", str(count).encode(), group.gs06)) + end)
            groups += 1
        out.append(element.join((b"IEA", str(groups).encode(), interchange.isa13)) + end)
    return b"".join(out)
