"""Reading a PLB reference (PLB03-2) as receivable keys, per payer reference layout (DOMAIN.md §2).

Detection and matching must read a reference the same way or one overpayment would become two receivables,
hence one module. Layouts (payer-specific, chosen by the payer's policy plugin ``reference_layout``):

- ``medicare``: FCN in positions 1–19, patient control number in 20–39, space padded. A 15-digit FCN whose last
  13 digits are the ICN of the claim is also tried as that ICN.
- ``dme``: FCN in 1–14, adjustment claim number in 15–29.
- ``plain``: the whole reference is the key.
"""

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

Layout = Literal["medicare", "dme", "plain"]
KeyKind = Literal["reference", "icn", "pcn", "trace"]

FCN_WIDTH = 19
DME_FCN_WIDTH = 14


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


def parse_reference(raw: str | None, layout: Layout = "medicare") -> ParsedReference:
    """Split a reference by layout; an unpadded short reference is the key itself in every layout."""
    if raw is None or not raw.strip():
        return ParsedReference(None)
    text = raw.rstrip()
    if layout == "medicare" and len(text) > FCN_WIDTH and " " in text[: FCN_WIDTH + 1]:
        fcn, secondary = text[:FCN_WIDTH].strip(), text[FCN_WIDTH : FCN_WIDTH + 20].strip()
    elif layout == "dme" and len(text) > DME_FCN_WIDTH:
        fcn, secondary = text[:DME_FCN_WIDTH].strip(), text[DME_FCN_WIDTH : DME_FCN_WIDTH + 15].strip()
    else:
        fcn, secondary = text.strip(), ""
    icn = fcn[-13:] if len(fcn) == 15 and fcn.isdigit() else None
    return ParsedReference(fcn or None, secondary or None, icn)


def receivable_reference(raw: str | None, layout: Layout = "medicare") -> str | None:
    """The receivable key inside a PLB reference (the FCN part)."""
    return parse_reference(raw, layout).receivable


@lru_cache(maxsize=256)
def layout_for(policy_name: str) -> Layout:
    """The reference layout of a payer policy plugin (``medicare`` when the plugin does not say)."""
    from shared import plugins

    policy = plugins.load_plugins(plugins.PAYER_POLICIES).get(policy_name)
    layout = getattr(policy, "reference_layout", "medicare")
    if layout == "dme":
        return "dme"
    return "plain" if layout == "plain" else "medicare"
