"""What an interchange's ISA header declares (its four delimiters) and how its segments are laid out in lines.

Both are read before any segment is cut: :mod:`.walker` asks :func:`read_delimiters` at every ISA and, once
per file, :func:`wrapped` whether the file's line breaks are layout to drop (a file wrapped at a fixed width)
or separate segments only.
"""

from dataclasses import dataclass

from services.intake.x12.source import TextWindow, unbroken

ISA_LENGTH = 106
"""ISA is fixed-length: 105 characters plus the segment terminator."""
_ISA16_OFFSET = 104
_ISA_SEPARATORS = 16


@dataclass(frozen=True, slots=True)
class Delimiters:
    """The four delimiters an interchange declares in its ISA header."""

    element: str
    component: str
    repetition: str | None
    segment: str


CUT_SHORT = "the ISA segment is cut short: it needs 16 elements and a segment terminator"


def read_delimiters(text: str, pos: int) -> tuple[Delimiters, bool] | str:
    """Delimiters of the ISA starting at ``pos`` and whether the ISA has its fixed length; else a problem.

    The element separator is the character after ``ISA``; ISA16 (after the 16th separator) is the component
    separator and the character after it terminates the segment. Counting separators instead of trusting the
    fixed offsets lets a slightly mis-padded ISA still be read (the caller warns about it).
    """
    element = text[pos + 3] if text.startswith("ISA", pos) and len(text) > pos + 3 else ""
    if not element or element.isalnum() or element.isspace():
        return "the interchange does not start with ISA followed by a special-character element separator"
    idx = pos + 3
    for _ in range(_ISA_SEPARATORS - 1):
        idx = text.find(element, idx + 1)
        if idx < 0 or idx + 2 >= len(text):
            return CUT_SHORT
    component, segment = text[idx + 1], text[idx + 2]
    if component.isalnum() or component.isspace() or component == element:
        return "ISA16 (component separator) must be a special character distinct from the element separator"
    if segment.isalnum() or segment in (element, component):
        return "the segment terminator after ISA16 must be a special character distinct from the separators"
    isa11 = text[pos : idx + 1].split(element)[11]
    special = len(isa11) == 1 and not isa11.isalnum() and isa11 not in (element, component, segment)
    delimiters = Delimiters(element, component, isa11 if special else None, segment)
    return delimiters, idx + 1 - pos == _ISA16_OFFSET


def starts_interchange(text: str, pos: int) -> bool:
    """True when ``ISA`` and a special character (the element separator) start at ``pos``."""
    return text.startswith("ISA", pos) and len(text) > pos + 3 and not text[pos + 3].isalnum()


def wrapped(window: TextWindow, start: int) -> bool:
    """True for a file wrapped at a fixed width: its first interchange's terminator (read with line breaks
    ignored) is not a line break, yet a line break in that interchange's first lines follows something other
    than a terminator or another line break, i.e. falls inside a segment (even inside the ISA). Its line breaks are
    layout and all go. A file with line breaks only between segments is left as it is, so a later
    interchange that ends its segments with line breaks still reads."""
    window.fill(start + 2 * ISA_LENGTH)
    found = read_delimiters(unbroken(window.text[start : start + 2 * ISA_LENGTH]), 0)
    if isinstance(found, str) or found[0].segment in "\r\n":
        return False
    terminator, element = found[0].segment, found[0].element
    first_end = window.text.find("IEA" + element, start, start + _WRAP_PROBE)  # the first interchange only
    text = window.text[: first_end if first_end > 0 else start + _WRAP_PROBE]
    at = _next_break(text, start)
    while at >= 0:
        before = text[at - 1] if at > start else terminator
        if before != terminator and before not in "\r\n":
            return True
        at = _next_break(text, at + 1)
    return False


_WRAP_PROBE = 1 << 16
"""Characters looked at for a wrap: a wrapped file breaks a segment every line, so its first lines tell."""


def _next_break(text: str, start: int) -> int:
    """Index of the next CR or LF at or after ``start``; -1 when there is none."""
    cr, lf = text.find("\r", start), text.find("\n", start)
    return lf if cr < 0 else cr if lf < 0 else min(cr, lf)
