"""Element value readers shared by the envelope and the transaction reader: amounts, quantities, dates.

They return ``None`` instead of raising so the caller can name the segment and element in its error; the
results are memoised per file because payers repeat the same amounts and dates thousands of times.
"""

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from pydantic import BaseModel

from contracts.events import ClaimAdjustment
from contracts.money import CENT, ZERO

_NUMBER_CHARS = "-0123456789."
_MAX_AMOUNT_LEN = 18
_MAX_QUANTITY_LEN = 15


def parse_amount(raw: str) -> Decimal | None:
    """An X12 ``R`` monetary value as a two-place Decimal, or None when it is not a valid amount.

    More than two decimal places is refused unless the extra digits are zeros: rounding a payer's amount
    would hide the very cent differences that balancing must catch.
    """
    if not raw or len(raw) > _MAX_AMOUNT_LEN or raw.strip(_NUMBER_CHARS):
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        return None
    cents = value.quantize(CENT)
    if cents != value:
        return None
    return cents if cents else ZERO


def parse_quantity(raw: str) -> Decimal | None:
    """An X12 ``R`` quantity (units, days), unrounded, or None when invalid."""
    if not raw or len(raw) > _MAX_QUANTITY_LEN or raw.strip(_NUMBER_CHARS):
        return None
    try:
        return Decimal(raw)
    except InvalidOperation:
        return None


def parse_date(raw: str) -> date | None:
    """A ``CCYYMMDD`` date, or None when the text is not a real calendar date."""
    if len(raw) != 8 or not raw.isdigit():
        return None
    try:
        return date(int(raw[:4]), int(raw[4:6]), int(raw[6:]))
    except ValueError:
        return None


M = TypeVar("M", bound=BaseModel)

_MODELS: dict[type[BaseModel], tuple[set[str], dict[str, Any]]] = {}


def trusted(model: type[M], values: dict[str, Any]) -> M:
    """Build a frozen contract object from values the parser has already checked, without re-validating.

    This is what ``BaseModel.model_construct`` does, minus its per-field alias handling, which makes it
    several times cheaper than validation: it is used only for per-claim and per-line payloads, whose every
    value comes from :func:`parse_amount`, :func:`parse_date`, ``str`` or ``int``. Fields left out get their
    declared default, so a new optional contract field cannot leave a half-built object; a new *required*
    field fails loudly. The fields-set is shared between instances (frozen models never change it);
    ``tests/unit/test_x12_contracts.py`` re-validates parser output to keep this honest.
    """
    known = _MODELS.get(model)
    if known is None:
        defaults = {
            name: info.get_default(call_default_factory=True)
            for name, info in model.model_fields.items()
            if not info.is_required()
        }
        known = _MODELS[model] = (set(model.model_fields), defaults)
    fields_set, defaults = known
    if len(values) != len(fields_set):
        values = {**defaults, **values}
        missing = fields_set - values.keys()
        if missing or len(values) != len(fields_set):
            raise TypeError(f"{model.__name__}: values for {sorted(missing)} missing or unknown fields given")
    obj = model.__new__(model)
    object.__setattr__(obj, "__dict__", values)
    object.__setattr__(obj, "__pydantic_fields_set__", fields_set)
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", None)
    return obj


AdjustmentKey = tuple[str, str, str, str, str]


@dataclass(slots=True)
class FileContext:
    """Identity of the file being parsed plus per-file memo tables (dropped with the file)."""

    file_name: str
    file_sha256: str
    tenant_id: str
    amounts: dict[str, Decimal] = field(default_factory=dict)
    dates: dict[str, date] = field(default_factory=dict)
    quantities: dict[str, Decimal | None] = field(default_factory=dict)
    adjustments: dict[AdjustmentKey, ClaimAdjustment] = field(default_factory=dict)

    def amount(self, raw: str) -> Decimal | None:
        """Memoised :func:`parse_amount`."""
        value = self.amounts.get(raw)
        if value is None:
            value = parse_amount(raw)
            if value is not None:
                self.amounts[raw] = value
        return value

    def date(self, raw: str) -> date | None:
        """Memoised :func:`parse_date`."""
        value = self.dates.get(raw)
        if value is None:
            value = parse_date(raw)
            if value is not None:
                self.dates[raw] = value
        return value
