"""Element value readers shared by the envelope and the transaction reader: amounts, quantities, dates.

They return ``None`` instead of raising so the caller can name the segment and element in its error; the
results are memoised per file because payers repeat the same amounts and dates thousands of times.
"""

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Generic, TypeVar

from pydantic import BaseModel

from contracts.events import ClaimAdjustment
from contracts.money import CENT, ZERO

_NUMBER_CHARS: Final = "-0123456789."
_MAX_AMOUNT_LEN: Final = 18
_MAX_QUANTITY_LEN: Final = 15
_CENT: Final = CENT
_ZERO: Final = ZERO


def parse_amount(raw: str) -> Decimal | None:
    """An X12 ``R`` monetary value as a two-place Decimal, or None when it is not a valid amount.

    More than two decimal places is refused unless the extra digits are zeros: rounding a payer's amount
    would hide the very cent differences that balancing must catch.
    """
    size = len(raw)
    if not size or size > _MAX_AMOUNT_LEN or raw.strip(_NUMBER_CHARS):
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        return None
    if size < 3 or raw[size - 3] != ".":  # not written with exactly two places (the common case)
        cents = value.quantize(_CENT)
        if cents != value:
            return None
        value = cents
    return value if value else _ZERO


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

_SET_DICT: Final = BaseModel.__dict__["__dict__"].__set__
_SET_FIELDS: Final = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_SET_EXTRA: Final = BaseModel.__dict__["__pydantic_extra__"].__set__
_SET_PRIVATE: Final = BaseModel.__dict__["__pydantic_private__"].__set__
_NEW: Final = object.__new__


class TrustedBuilder(Generic[M]):
    """A constructor of frozen contract objects from values the parser has already checked.

    This is what ``BaseModel.model_construct`` does, minus its per-field alias and default handling, which
    makes it several times cheaper than validation: it is used only for per-claim and per-line payloads, whose
    every value comes from :func:`parse_amount`, :func:`parse_date`, ``str`` or ``int``. Fields left out get
    their declared default, so a new optional contract field cannot leave a half-built object; a new
    *required* field fails loudly. The four slots pydantic keeps per instance are written through their
    descriptors (the model is frozen); the fields-set is shared between instances (frozen models never change
    it). A class rather than a closure so that, compiled, :meth:`build` is a direct call.
    ``tests/unit/test_x12_contracts.py`` re-validates parser output to keep this honest.
    """

    def __init__(self, model: type[M]) -> None:
        self.model = model
        self.fields_set = set(model.model_fields)
        self.defaults = {
            name: info.get_default(call_default_factory=True)
            for name, info in model.model_fields.items()
            if not info.is_required()
        }
        self.size = len(self.fields_set)

    def build(self, values: dict[str, Any]) -> M:
        """A ``model`` instance holding ``values`` (field name → value), unvalidated."""
        if len(values) != self.size:
            values = {**self.defaults, **values}
            missing = self.fields_set - values.keys()
            if missing or len(values) != self.size:
                raise TypeError(
                    f"{self.model.__name__}: values for {sorted(missing)} missing or unknown fields given"
                )
        obj = _NEW(self.model)
        _SET_DICT(obj, values)
        _SET_FIELDS(obj, self.fields_set)
        _SET_EXTRA(obj, None)
        _SET_PRIVATE(obj, None)
        return obj


MEMO_LIMIT = 1 << 15
"""Entries a memo table (dates, quantities, CAS triples) holds before it starts over (32 768 CAS triples,
each a built ClaimAdjustment, are about 14 MiB)."""
AMOUNT_LIMIT = 1 << 16
"""The same for amounts, the most varied values (65 536 amounts are about 13 MiB).

Sized so that a file of random cents (the benchmark's, 61 000 distinct amounts in 102 000 claims) rarely
starts over: each start-over re-parses every amount still in use, which cost 9 % more instructions at half
these sizes. Real remittances repeat far more (fee schedules, copays), so they stay well below the caps."""

Adjustments = dict[str, dict[str, dict[str, tuple[ClaimAdjustment, Decimal]]]]
"""CAS triples without quantity already built: CAS01 → reason → amount as written → (adjustment, amount).

Nested by single strings rather than keyed by a tuple: a tuple key costs a comparison of each of its
strings per lookup, and this lookup runs for every triple of the file.
"""


@dataclass(slots=True)
class FileContext:
    """Identity of the file being parsed plus its memo tables (dropped with the file).

    Payers repeat the same amounts, dates and adjustments thousands of times, so a value is parsed (and a CAS
    triple built) once and then looked up. A table that fills up is emptied and fills again with the values
    in use, so the tables are bounded: a 20 000-claim and a 1 000 000-claim file need the same memory. The
    limits are read at run time, so a test can make them tiny.
    """

    file_name: str
    file_sha256: str
    tenant_id: str
    amounts: dict[str, Decimal] = field(default_factory=dict)
    dates: dict[str, date] = field(default_factory=dict)
    quantities: dict[str, Decimal | None] = field(default_factory=dict)
    claim_adjustments: Adjustments = field(default_factory=dict)
    service_adjustments: Adjustments = field(default_factory=dict)
    adjustment_count: int = 0

    def amount(self, raw: str) -> Decimal | None:
        """Memoised :func:`parse_amount` (the hot path looks in ``amounts`` itself first)."""
        amounts = self.amounts
        value = amounts.get(raw)
        if value is None:
            value = parse_amount(raw)
            if value is not None:
                if len(amounts) >= AMOUNT_LIMIT:
                    amounts.clear()
                amounts[raw] = value
        return value

    def date(self, raw: str) -> date | None:
        """Memoised :func:`parse_date`."""
        dates = self.dates
        value = dates.get(raw)
        if value is None:
            value = parse_date(raw)
            if value is not None:
                if len(dates) >= MEMO_LIMIT:
                    dates.clear()
                dates[raw] = value
        return value

    def quantity(self, raw: str) -> Decimal | None:
        """Memoised :func:`parse_quantity` (None, remembered too, when ``raw`` is not a number)."""
        quantities = self.quantities
        if raw in quantities:
            return quantities[raw]
        if len(quantities) >= MEMO_LIMIT:
            quantities.clear()
        value = quantities[raw] = parse_quantity(raw)
        return value

    def remember_adjustment(
        self, service: bool, group: str, reason: str, amount: str, found: tuple[ClaimAdjustment, Decimal]
    ) -> None:
        """Remember a CAS triple without quantity by level, group, reason and amount as written."""
        if self.adjustment_count >= MEMO_LIMIT:
            self.claim_adjustments.clear()
            self.service_adjustments.clear()
            self.adjustment_count = 0
        tables = self.service_adjustments if service else self.claim_adjustments
        tables.setdefault(group, {}).setdefault(reason, {})[amount] = found
        self.adjustment_count += 1
