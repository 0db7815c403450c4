"""Reading a PLB reference (PLB03-2) as receivable keys, per payer reference layout (DOMAIN.md §2).

Detection, matching and the payer policies must read a reference the same way or one overpayment would become
two receivables, hence one module and one table of layouts. Which layout a payer uses is a policy field
(``reference_layout``), chosen per tenant and payer by ``policies.config``. Layouts (payer-specific):

- ``medicare``: FCN in positions 1–19, patient control number in 20–39. Contractors space-pad the FCN field, but
  not all do: a reference whose FCN is followed by blanks is split at the blanks, and one longer than 19
  characters without them is split at position 19 (an FCN never exceeds its 19-position field, so the rest is
  the patient control number, PHI that must never become a key or leave the system).
- ``dme``: FCN in 1–14, adjustment claim number in 15–29 (split by position, padded or not).
- ``plain``: the whole reference is the key.

In every layout a 15-digit FCN whose last 13 digits are the ICN of the claim is also tried as that ICN.
"""

from dataclasses import dataclass
from typing import Literal

KeyKind = Literal["reference", "icn", "pcn", "trace"]


@dataclass(frozen=True)
class ParsedReference:
    """The parts of one PLB reference."""

    receivable: str | None
    secondary: str | None = None
    icn: str | None = None

    def candidates(self, raw: str | None) -> list[tuple[KeyKind, str]]:
        """Keys to try, most specific first: the FCN, the whole text, the ICN forms, the secondary number."""
        keys: list[tuple[KeyKind, str]] = []
        whole = raw.strip() if raw else None
        for kind, key in (
            ("reference", self.receivable),
            ("reference", whole),
            ("icn", self.receivable),
            ("icn", self.icn),
            ("pcn", self.secondary),
            ("icn", self.secondary),
            ("trace", whole),
        ):
            if key and (kind, key) not in keys:
                keys.append((kind, key))  # type: ignore[arg-type]
        return keys


@dataclass(frozen=True)
class ReferenceLayout:
    """Where the receivable key sits in a PLB reference: a fixed-width FCN field then a second field, or the
    whole text when ``fcn_width`` is None. ``blank_ends_fcn``: a blank inside the FCN field ends the FCN
    (Medicare pads the field, and some contractors put the patient control number after one blank); without
    it the field is cut by position only (DME contractors fill the field to the last position)."""

    name: str
    fcn_width: int | None = None
    second_width: int | None = None
    blank_ends_fcn: bool = True

    def parse(self, raw: str | None) -> ParsedReference:
        """Split one reference; a reference that fits the FCN field is the key itself in every layout."""
        if raw is None or not raw.strip():
            return ParsedReference(None)
        text = raw.strip()
        width = self.fcn_width
        fcn, secondary = text, ""
        if width is not None:
            head = text[: width + 1]
            if self.blank_ends_fcn and any(c.isspace() for c in head):
                fcn, _, rest = text.partition(next(c for c in head if c.isspace()))
                secondary = rest.strip()
            elif len(text) > width:
                fcn, secondary = text[:width], text[width:]
            if self.second_width is not None:
                secondary = secondary[: self.second_width]
        fcn, secondary = fcn.strip(), secondary.strip()
        icn = fcn[-13:] if len(fcn) == 15 and fcn.isdigit() else None
        return ParsedReference(fcn or None, secondary or None, icn)


LAYOUTS: dict[str, ReferenceLayout] = {
    "medicare": ReferenceLayout("medicare", 19, 20, blank_ends_fcn=True),
    "dme": ReferenceLayout("dme", 14, 15, blank_ends_fcn=False),
    "plain": ReferenceLayout("plain"),
}
"""Every layout a payer policy's ``reference_layout`` may name."""

DEFAULT_LAYOUT = LAYOUTS["medicare"]


class UnknownLayoutError(ValueError):
    """A policy names a reference layout this module does not define."""


def layout(name: str) -> ReferenceLayout:
    """The layout called ``name``; an unknown name is an error, never a silent fallback that misreads FCNs."""
    try:
        return LAYOUTS[name]
    except KeyError:
        raise UnknownLayoutError(
            f"unknown reference layout {name!r}; expected one of {', '.join(sorted(LAYOUTS))}"
        ) from None


def parse_reference(raw: str | None, layout_: ReferenceLayout | str = DEFAULT_LAYOUT) -> ParsedReference:
    """Split a reference by layout (a :class:`ReferenceLayout` or its name)."""
    chosen = layout(layout_) if isinstance(layout_, str) else layout_
    return chosen.parse(raw)


def receivable_reference(raw: str | None, layout_: ReferenceLayout | str = DEFAULT_LAYOUT) -> str | None:
    """The receivable key inside a PLB reference (the FCN part)."""
    return parse_reference(raw, layout_).receivable
