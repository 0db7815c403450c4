"""Money: ``Decimal`` with exactly two places, serialized as a JSON string.

Floats never touch an amount: a JSON number would be read back by many consumers as a binary float and lose
cents. Rounding, where an amount has to be rounded (interest), is ROUND_HALF_UP, as payers compute it.
"""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

CENT = Decimal("0.01")
ZERO = Decimal("0.00")


_SEEN_LIMIT = 65_536
_SEEN_LONGEST = 24
_seen: dict[str, Decimal] = {}
"""Amounts already read from text, by their text. Remittances repeat amounts (fee schedules, copays, 0.00 in
most CAS and patient-responsibility fields), and every message a stage reads runs every amount through here,
so a look-up is cheaper than building and quantizing a Decimal again (Decimal is immutable, so sharing one is
safe). Bounded: cleared when full, like the reader's memo tables, and only texts of an amount's length are kept
(a text padded with zeros is still an amount, and must not make the table hold megabytes)."""


def to_money(value: Any) -> Decimal:
    """Quantize a value to cents with ROUND_HALF_UP; refuse floats and non-finite numbers."""
    if value.__class__ is str:
        seen = _seen.get(value)
        if seen is not None:
            return seen
        amount = _quantized(_decimal(value))
        if len(value) <= _SEEN_LONGEST:
            if len(_seen) >= _SEEN_LIMIT:
                _seen.clear()
            _seen[value] = amount
        return amount
    if isinstance(value, float):
        raise ValueError("money must be given as a string or Decimal, never a float")
    return _quantized(value if isinstance(value, Decimal) else _decimal(str(value)))


def _decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation as exc:
        raise ValueError(f"not an amount: {text[:20]!r}") from exc


def _quantized(amount: Decimal) -> Decimal:
    if not amount.is_finite():
        raise ValueError("amount must be finite")
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


Money = Annotated[
    Decimal,
    BeforeValidator(to_money),
    PlainSerializer(lambda d: f"{d:.2f}", return_type=str, when_used="always"),
    WithJsonSchema(
        {"type": "string", "pattern": r"^-?\d+\.\d{2}$", "examples": ["125.00", "-40.50"]},
        mode="serialization",
    ),
    WithJsonSchema(
        {"type": "string", "pattern": r"^-?\d+(\.\d{1,2})?$", "examples": ["125.00", "-40.5"]},
        mode="validation",
    ),
]
"""An amount in US dollars, two decimal places, as a string such as ``"125.00"``."""
