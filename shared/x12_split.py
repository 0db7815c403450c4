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

The cut is refused, with a reason, when the file's own envelope is not sound (counts or control numbers
that disagree, segments outside any transaction, an unclosed group): recounting the trailers would hide the
payer's error, so such a file must be corrected and sent again. The cut is deterministic, so a large file
fed twice becomes the same parts, which intake then recognises as copies it already has.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

_SPACE = b" \t\r\n\x0b\x0c"
_PADDING = b"\x00\x1a" + _SPACE
_ISA_SEPARATORS = 16


class SplitRefused(ValueError):
    """The file cannot be cut into parts; the message says why (segment ids and counts, never values)."""


class NotX12(SplitRefused):
    """The file does not start with an ISA segment (after what the reader skips): not X12 at all."""


@dataclass(frozen=True)
class _Transaction:
    text: bytes
    payees: tuple[str, ...]
    """The payee's identifiers as the transaction gives them: N1*PE N104, then REF*TJ of loop 1000B."""


@dataclass(frozen=True)
class _Group:
    gs: bytes
    gs06: bytes
    transactions: list[_Transaction] = field(default_factory=list)


@dataclass(frozen=True)
class _Interchange:
    isa: bytes
    isa13: bytes
    groups: list[_Group] = field(default_factory=list)


@dataclass(frozen=True)
class _Item:
    """One transaction with the interchange and group it belongs to (by position in the file)."""

    interchange: int
    group: int
    text: bytes


TenantOf = Callable[[tuple[str, ...]], str]
"""The tenant a transaction belongs to, from its payee's identifiers (see :class:`_Transaction`)."""


def split_x12(content: bytes, max_part_bytes: int) -> list[bytes]:
    """The file as parts of at most ``max_part_bytes`` each, in file order; raises :class:`SplitRefused`."""
    return [part for _, part in cut_x12(content, max_part_bytes, lambda _: "")]


def cut_x12(content: bytes, max_part_bytes: int, tenant_of: TenantOf) -> list[tuple[str, bytes]]:
    """``(tenant, part)`` pairs: each tenant's transactions (``tenant_of`` their payee) in parts of at most
    ``max_part_bytes``, tenants in the order their first transaction comes, each part's transactions in file
    order; raises :class:`SplitRefused`.

    A file that is not X12, whose envelope is not sound, or one of whose transactions alone exceeds the
    limit cannot be cut. A file whose segment terminator is not a line break loses its line breaks (layout,
    as the reader treats them); each segment of a part ends with the terminator and a newline.
    """
    text = content[_preamble_end(content) :]
    element, terminator = _delimiters(text)
    if terminator not in b"\r\n":
        text = text.replace(b"\r", b"").replace(b"\n", b"")
    end = terminator if terminator in b"\r\n" else terminator + b"\n"
    interchanges = _envelope(text, element, terminator, end)
    by_tenant: dict[str, list[_Item]] = {}
    for i, interchange in enumerate(interchanges):
        for g, group in enumerate(interchange.groups):
            for txn in group.transactions:
                by_tenant.setdefault(tenant_of(txn.payees), []).append(_Item(i, g, txn.text))
    return [
        (tenant, _render(interchanges, part, element, end))
        for tenant, items in by_tenant.items()
        for part in _pack(interchanges, items, max_part_bytes)
    ]


def _pack(interchanges: list[_Interchange], items: list[_Item], max_part_bytes: int) -> list[list[_Item]]:
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


def _delimiters(text: bytes) -> tuple[bytes, bytes]:
    """Element separator and segment terminator of the first ISA (line breaks in it ignored, unless the
    terminator is one)."""
    if not text.startswith(b"ISA") or len(text) < 4 or text[3:4].isalnum() or text[3:4].isspace():
        raise NotX12("the file does not start with an ISA segment: only X12 files can be cut")
    element = text[3:4]
    for head in (text[:400].replace(b"\r", b"").replace(b"\n", b""), text[:400]):
        idx = 3
        for _ in range(_ISA_SEPARATORS - 1):
            idx = head.find(element, idx + 1)
            if idx < 0:
                break
        terminator = head[idx + 2 : idx + 3] if idx >= 0 else b""
        if terminator and not terminator.isalnum() and terminator not in (element, head[idx + 1 : idx + 2]):
            return element, terminator
    raise SplitRefused("the ISA segment is cut short or has no segment terminator after ISA16")


def _preamble_end(content: bytes) -> int:
    """Where the first ISA starts once what the reader skips before it is skipped: byte-order marks and
    whitespace of any kind (``str.isspace``, as ``TextWindow.skip_preamble``), decoded as the reader decodes
    (UTF-8, else Latin-1). 0 when anything else comes first, so the caller's ISA check refuses the file."""
    head = content[:_PREAMBLE_LIMIT]
    at = head.find(b"ISA")
    if at <= 0:
        return 0
    try:
        before = head[:at].decode("utf-8")
    except UnicodeDecodeError:
        before = head[:at].decode("latin-1")
    return at if all(c == "\ufeff" or c.isspace() for c in before) else 0


_PREAMBLE_LIMIT = 1 << 16


def _segments(text: bytes, terminator: bytes) -> Iterator[bytes]:
    for piece in text.split(terminator):
        if segment := piece.strip(_SPACE):
            yield segment


_ENVELOPE = (b"ISA", b"GS", b"ST", b"SE", b"GE", b"IEA")


def _envelope(text: bytes, element: bytes, terminator: bytes, end: bytes) -> list[_Interchange]:
    """The file's interchanges, groups and transactions; :class:`SplitRefused` unless the envelope is sound."""
    interchanges: list[_Interchange] = []
    open_interchange = False
    group: _Group | None = None
    txn: list[bytes] | None = None
    for ordinal, segment in enumerate(_segments(text, terminator), start=1):
        sid = segment.split(element, 1)[0]
        if sid not in _ENVELOPE:
            if txn is None and not segment.strip(_PADDING):
                continue  # padding between interchanges (inside a transaction it is a segment, as the reader counts)
            if txn is None:
                raise SplitRefused(f"segment #{ordinal} is outside any transaction")
            txn.append(segment)
            continue
        els = segment.split(element)
        where = f"segment #{ordinal} ({sid.decode()})"
        if sid == b"ST" and group is not None and txn is None:
            txn = [segment]
        elif sid == b"SE" and group is not None and txn is not None:
            txn.append(segment)
            group.transactions.append(_Transaction(end.join(txn) + end, _payees(txn, element)))
            txn = None
        elif sid == b"GS" and open_interchange and group is None and txn is None:
            group = _Group(segment, _element(els, 6))
            interchanges[-1].groups.append(group)
        elif sid == b"GE" and group is not None and txn is None:
            _check_count(els, len(group.transactions), group.gs06, where, "transactions")
            group = None
        elif sid == b"ISA" and not open_interchange:
            interchanges.append(_Interchange(segment, _element(els, 13)))
            open_interchange = True
        elif sid == b"IEA" and open_interchange and group is None and txn is None:
            _check_count(els, len(interchanges[-1].groups), interchanges[-1].isa13, where, "groups")
            open_interchange = False
        else:
            raise SplitRefused(f"{where} is out of place")
    if open_interchange:
        raise SplitRefused("the file ends inside an interchange (no IEA)")
    return interchanges


def _payees(segments: list[bytes], element: bytes) -> tuple[str, ...]:
    """Payee identifiers of a transaction's header (loops up to 1000B): N1*PE N104, then REF*TJ."""
    payee, tax = element.join((b"N1", b"PE", b"")), element.join((b"REF", b"TJ", b""))
    header_ends = (b"LX" + element, b"CLP" + element, b"PLB" + element, b"SE" + element)
    found: list[str] = []
    for segment in segments:
        if segment.startswith(header_ends):
            break
        if segment.startswith(payee):
            found.append(_element(segment.split(element), 4).decode("latin-1"))
        elif segment.startswith(tax) and found:
            found.append(_element(segment.split(element), 2).decode("latin-1"))
    return tuple(p for p in found if p)


def _element(els: list[bytes], index: int) -> bytes:
    return els[index].strip() if len(els) > index else b""


def _check_count(els: list[bytes], actual: int, control: bytes, where: str, what: str) -> None:
    if _element(els, 1) != str(actual).encode() or _element(els, 2) != control:
        raise SplitRefused(
            f"{where}: its count or control number does not match the {actual} {what} it closes; "
            "recounting it would hide the payer's error, so the file must be corrected before it is cut"
        )


def _overhead(interchanges: list[_Interchange], item: _Item, last: _Item | None) -> int:
    """Bytes a part needs besides ``item`` itself to carry it after ``last``: the headers and trailers it
    opens (trailers: id, a count of up to 9 digits, the control number, separators and line ends)."""
    interchange = interchanges[item.interchange]
    size = 0
    if last is None or last.interchange != item.interchange:
        size += len(interchange.isa) + len(interchange.isa13) + 20
    if last is None or (last.interchange, last.group) != (item.interchange, item.group):
        size += len(interchange.groups[item.group].gs) + len(interchange.groups[item.group].gs06) + 20
    return size


def _render(interchanges: list[_Interchange], part: list[_Item], element: bytes, end: bytes) -> bytes:
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
