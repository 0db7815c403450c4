"""Reading a PLB reference as a receivable key (DOMAIN.md §2, Medicare reference layout).

Medicare puts the FCN in positions 1–19 and the patient control number in 20–39, space padded. Detection and
matching must read a reference the same way or one overpayment would become two receivables, hence one
function here. Per-payer layouts (DME 1–14/15–29, 15-digit FCN ↔ ICN) become part of the payer policy plugins.
"""

FCN_WIDTH = 19


def receivable_reference(raw: str | None) -> str | None:
    """The receivable key inside a PLB reference: the FCN part of a padded Medicare reference, else the text."""
    if raw is None:
        return None
    text = raw.rstrip()
    if len(text) > FCN_WIDTH and " " in text[: FCN_WIDTH + 1]:
        return text[:FCN_WIDTH].strip() or None
    return text.strip() or None
