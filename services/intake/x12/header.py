"""Reading an 835 transaction, part 1: the loop machine, the header and the two parties (payer, payee).

The reader is a small state machine over the guide's loops (header, 1000A payer, 1000B payee, 2000, 2100
claim, 2110 service, PLB). Segment handlers are looked up in a table, so the per-segment cost is one dict
lookup and one call; the first problem stops the transaction with one precise :class:`FeedError`. Segments
the guide does not define, or that sit in a loop where they mean nothing, are kept as warnings, never dropped
silently and never fatal. Claims, services and PLB live in :mod:`services.intake.x12.claims`.

Why a little over 500 lines: it is one class, the loop machine with the handlers of the header and party
segments, which all move the same state (:mod:`.claims` subclasses it for the rest); cut further, handlers
would sit apart from the state they move.
"""

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import ClassVar

from pydantic import ValidationError

from contracts.events import (
    ClaimAdjustment,
    ClaimPaymentReceived,
    ProviderAdjustmentReceived,
    ServicePayment,
)
from contracts.money import ZERO
from services.intake.feeds import FeedError, FeedErrorReason, ParsedRemittance
from services.intake.x12 import codes
from services.intake.x12.values import FileContext
from services.intake.x12.walker import RawTransaction, safe_id
from shared.ids import stable_id

FEED = "x12_835"

HEADER, PAYER, PAYEE, DETAIL, CLAIM, SERVICE, PLB = range(7)
_LOOP_NAMES = (
    "header",
    "payer loop 1000A",
    "payee loop 1000B",
    "loop 2000",
    "claim loop 2100",
    "service loop 2110",
    "PLB section",
)
_ALLOWED = (
    codes.HEADER_SEGMENTS,
    codes.PAYER_SEGMENTS,
    codes.PAYEE_SEGMENTS,
    codes.DETAIL_SEGMENTS,
    codes.CLAIM_SEGMENTS,
    codes.SERVICE_SEGMENTS,
    frozenset[str](),
)
Handler = Callable[[list[str], int], None]
"""A bound segment handler: (elements, segment ordinal within the transaction)."""
MAX_LISTED = 10
"""Segment ordinals listed per warning; the count says how many there were in all."""


class TransactionError(Exception):
    """Stops reading one transaction; :meth:`TransactionReader.read` turns it into a FeedError."""

    def __init__(
        self,
        reason: FeedErrorReason,
        message: str,
        ordinal: int | None,
        segment_id: str | None,
        *,
        element: str | None = None,
        expected: str | None = None,
    ) -> None:
        super().__init__(message)
        self.reason, self.message, self.ordinal = reason, message, ordinal
        self.segment_id, self.element, self.expected = segment_id, element, expected


class ClaimState:
    """A claim loop being read; becomes a ClaimPaymentReceived when the loop ends and balances.

    The reader holds one only while in loop 2100 or 2110 (``loop`` is CLAIM or SERVICE exactly when
    ``claim`` is set), which lets the hot handlers test ``claim`` alone.
    """

    __slots__ = (
        "adjustments",
        "cas_total",
        "charge",
        "claim_ordinal",
        "filing",
        "icn",
        "lines",
        "ordinal",
        "original_reference",
        "paid",
        "pcn",
        "responsibility",
        "service_from",
        "service_to",
        "services",
        "statement_from",
        "statement_to",
        "status",
    )

    def __init__(
        self,
        ordinal: int,
        claim_ordinal: int,
        els: list[str],
        charge: Decimal,
        paid: Decimal,
        responsibility: Decimal | None,
    ) -> None:
        self.ordinal, self.claim_ordinal = ordinal, claim_ordinal
        self.pcn, self.status = els[1], els[2]
        self.charge, self.paid, self.responsibility = charge, paid, responsibility
        self.filing: str | None = els[6] or None
        self.icn: str | None = els[7].strip() or None
        self.original_reference: str | None = None
        self.statement_from: date | None = None
        self.statement_to: date | None = None
        self.service_from: date | None = None
        self.service_to: date | None = None
        self.services = 0
        self.lines: list[ServicePayment] = []
        self.cas_total = ZERO
        self.adjustments: list[ClaimAdjustment] = []


class HeaderReader:
    """Reads one :class:`RawTransaction`'s header and parties; the subclass adds claims and PLB."""

    handler_names: ClassVar[dict[str, str]] = {
        "BPR": "_bpr",
        "TRN": "_trn",
        "N1": "_n1",
        "PER": "_per",
        "REF": "_ref",
        "DTM": "_dtm",
        "LX": "_lx",
        **dict.fromkeys(
            ("CUR", "N3", "N4", "RDM", "TS3", "TS2", "NM1", "MIA", "MOA", "AMT", "QTY", "LQ"), "_other"
        ),
    }
    """Segment id → handler method; the claim reader adds CLP, CAS, SVC and PLB."""

    def __init__(self, raw: RawTransaction, ctx: FileContext) -> None:
        self.raw, self.ctx = raw, ctx
        self.amounts, self.dates = ctx.amounts, ctx.dates
        self.claim_adjustments, self.service_adjustments = ctx.claim_adjustments, ctx.service_adjustments
        self.component = raw.delimiters.component
        self.element = element = raw.delimiters.element
        # "CAS*" and the like: the claim reader recognises its segments by these prefixes before splitting
        self.cas_id, self.dtm_id, self.svc_id, self.ref_id = (
            f"{s}{element}" for s in ("CAS", "DTM", "SVC", "REF")
        )
        self.amt_id, self.clp_id, self.nm1_id = (f"{s}{element}" for s in ("AMT", "CLP", "NM1"))
        self.loop = HEADER
        self.header_closed = False
        self.bpr: list[str] | None = None
        self.bpr_ordinal = 0
        self.total_paid = ZERO
        self.payment_date = date.min
        self.trace = self.trn03 = ""
        self.production_date: date | None = None
        self.payer: list[str] | None = None
        self.payee: list[str] | None = None
        self.payee_tin = ""
        self.per_bl = False
        self.per_bl_reachable = False
        self.payer_id = ""
        self.remittance_id = stable_id("unset")
        self.claim: ClaimState | None = None
        self.claims: list[ClaimPaymentReceived] = []
        self.claims_paid = ZERO
        self.service_ordinal = 0
        self.service_charge = self.service_paid = self.service_cas = ZERO
        self.service_els: list[str] = []
        self.service_date: date | None = None
        self.pairs: list[ProviderAdjustmentReceived] = []
        self.plb_total = ZERO
        self.unknown: dict[str, list[int]] = {}
        self.misplaced: dict[str, list[int]] = {}
        self.warnings = list(raw.warnings)
        self.guide = codes.DEFAULT_GUIDE
        """The guide the transaction names (set at ST): its code lists and rules."""
        self.cas_groups = self.guide.cas_group_codes
        """The guide's CAS01 codes, held directly for the CAS fast path."""

    def read(self) -> ParsedRemittance | FeedError:
        """The transaction's payloads, or the first thing wrong with it."""
        raw = self.raw
        segments = raw.segments
        element = raw.delimiters.element
        # Bound methods refer to the reader: a local table, never an attribute, so no reference cycle
        # (the parser hands the payloads to the oldest GC generation, where a cycle would linger).
        handlers: dict[str, Handler] = {sid: getattr(self, name) for sid, name in self.handler_names.items()}
        try:
            self._st(segments[0].split(element))
            for ordinal in range(2, len(segments)):
                self._segment(segments[ordinal - 1], ordinal, handlers)
            return self._finish(len(segments))
        except TransactionError as exc:
            return self._error(exc)
        except ValidationError as exc:
            fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors())
            problem = TransactionError(
                FeedErrorReason.INVALID_ELEMENT,
                f"values do not fit the event contract: {fields}",
                None,
                None,
                expected="values within the contract's limits",
            )
            return self._error(problem)

    def _segment(self, segment: str, ordinal: int, handlers: dict[str, Handler]) -> None:
        """Hand one segment (between ST and SE), split into elements, to its handler, or note it as unknown."""
        els = segment.split(self.element)
        handler = handlers.get(els[0])
        if handler is None:
            self.unknown.setdefault(safe_id(els[0]), []).append(ordinal)
        else:
            handler(els, ordinal)

    def _error(self, exc: TransactionError) -> FeedError:
        raw = self.raw
        return FeedError(
            exc.reason,
            exc.message,
            self.ctx.file_name,
            raw.interchange_control_number,
            raw.transaction_control_number,
            raw.index,
            exc.ordinal,
            exc.segment_id,
            exc.element,
            exc.expected,
        )

    # --- value helpers ------------------------------------------------------------------------------------

    def _amount(self, els: list[str], pos: int, ordinal: int) -> Decimal:
        raw = els[pos] if pos < len(els) else ""
        value = self.amounts.get(raw)
        if value is None:
            value = self.ctx.amount(raw)
        if value is None:
            what = "missing" if not raw else "not an amount with at most two decimals"
            raise TransactionError(
                FeedErrorReason.INVALID_ELEMENT,
                f"{els[0]}{pos:02d} is {what}",
                ordinal,
                els[0],
                element=f"{els[0]}{pos:02d}",
                expected="a decimal amount such as 125.00 or -40.5",
            )
        return value

    def _date(self, els: list[str], pos: int, ordinal: int) -> date:
        raw = els[pos] if pos < len(els) else ""
        value = self.ctx.date(raw)
        if value is None:
            raise TransactionError(
                FeedErrorReason.INVALID_ELEMENT,
                f"{els[0]}{pos:02d} is {'not a valid date' if raw else 'missing'}",
                ordinal,
                els[0],
                element=f"{els[0]}{pos:02d}",
                expected="a calendar date CCYYMMDD",
            )
        return value

    def _misplaced(self, els: list[str], ordinal: int) -> None:
        self._misplaced_id(els[0], ordinal)

    def _misplaced_id(self, sid: str, ordinal: int) -> None:
        key = f"{sid} in {_LOOP_NAMES[self.loop]}"
        self.misplaced.setdefault(key, []).append(ordinal)

    # --- header and parties -------------------------------------------------------------------------------

    def _st(self, els: list[str]) -> None:
        st01 = els[1] if len(els) > 1 else ""
        if st01 != "835":
            raise TransactionError(
                FeedErrorReason.UNSUPPORTED,
                f"transaction set {st01 if st01.isdigit() and len(st01) == 3 else '<malformed>'} is not an 835",
                1,
                "ST",
                element="ST01",
                expected="835",
            )
        version, source = (els[3], "ST03") if len(els) > 3 and els[3] else (self.raw.group_version, "GS08")
        guide = codes.guide_for(version)
        if guide is None:
            guide = codes.DEFAULT_GUIDE
            shown = version[:12] if version.isalnum() else "missing"
            known = " or ".join(g.version for g in codes.GUIDES)
            self.warnings.append(f"{source} version {shown} is not {known}; read as {guide.version}")
        self.guide, self.cas_groups = guide, guide.cas_group_codes

    def _bpr(self, els: list[str], ordinal: int) -> None:
        if self.loop != HEADER or self.bpr is not None:
            raise TransactionError(
                FeedErrorReason.SYNTAX,
                "BPR out of place",
                ordinal,
                "BPR",
                element=None,
                expected="one BPR after ST",
            )
        if len(els) < 17:
            els.extend([""] * (17 - len(els)))
        self._code(els, 1, ordinal, codes.BPR_HANDLING_CODES)
        self.total_paid = self._amount(els, 2, ordinal)
        if self.total_paid < 0:
            raise TransactionError(
                FeedErrorReason.INVALID_ELEMENT,
                f"BPR02 is negative ({self.total_paid})",
                ordinal,
                "BPR",
                element="BPR02",
                expected="a payment amount ≥ 0 (BPR03=D marks a debit)",
            )
        self._code(els, 3, ordinal, codes.BPR_CREDIT_DEBIT)
        self._code(els, 4, ordinal, codes.BPR_PAYMENT_METHODS)
        self.payment_date = self._date(els, 16, ordinal)
        self.bpr, self.bpr_ordinal = els, ordinal

    def _code(self, els: list[str], pos: int, ordinal: int, valid: frozenset[str]) -> None:
        if els[pos] not in valid:
            shown = f"{els[pos][:4]!r}" if els[pos] else "missing"
            raise TransactionError(
                FeedErrorReason.INVALID_ELEMENT,
                f"{els[0]}{pos:02d} code {shown} is not valid",
                ordinal,
                els[0],
                element=f"{els[0]}{pos:02d}",
                expected="one of " + " ".join(sorted(valid)),
            )

    def _trn(self, els: list[str], ordinal: int) -> None:
        if self.loop != HEADER or self.trace:
            raise TransactionError(
                FeedErrorReason.SYNTAX,
                "TRN out of place",
                ordinal,
                "TRN",
                element=None,
                expected="one TRN after BPR",
            )
        self.trace = els[2].strip() if len(els) > 2 else ""
        self.trn03 = els[3].strip() if len(els) > 3 else ""
        if not self.trace:
            raise TransactionError(
                FeedErrorReason.INVALID_ELEMENT,
                "TRN02 (check/EFT trace number) is missing",
                ordinal,
                "TRN",
                element="TRN02",
                expected="the check or EFT trace number",
            )

    def _n1(self, els: list[str], ordinal: int) -> None:
        if len(els) < 5:
            els.extend([""] * (5 - len(els)))
        if els[1] == "PR":
            if self.loop != HEADER or self.payer is not None:
                raise TransactionError(
                    FeedErrorReason.SYNTAX,
                    "N1*PR out of place",
                    ordinal,
                    "N1",
                    element="N101",
                    expected="one payer loop 1000A after the header",
                )
            if self.bpr is None or not self.trace:
                missing = "BPR" if self.bpr is None else "TRN"
                raise TransactionError(
                    FeedErrorReason.MISSING_SEGMENT,
                    f"the header has no {missing}",
                    ordinal,
                    missing,
                    element=None,
                    expected=f"{missing} before the payer loop",
                )
            self.payer, self.loop = els, PAYER
        elif els[1] == "PE":
            if self.loop != PAYER:
                no_payer = self.loop == HEADER
                raise TransactionError(
                    FeedErrorReason.MISSING_SEGMENT if no_payer else FeedErrorReason.SYNTAX,
                    "N1*PE without a payer loop" if no_payer else "N1*PE out of place",
                    ordinal,
                    "N1",
                    element="N101",
                    expected="N1*PE right after the payer loop 1000A",
                )
            self.payee, self.loop = els, PAYEE
        else:
            self._misplaced(els, ordinal)

    def _per(self, els: list[str], ordinal: int) -> None:
        if self.loop == PAYER:
            if len(els) > 1 and els[1] == "BL":
                self.per_bl = True
                self.per_bl_reachable = self.per_bl_reachable or (len(els) > 4 and bool(els[3] and els[4]))
        elif self.loop != CLAIM:
            self._misplaced(els, ordinal)

    def _ref(self, els: list[str], ordinal: int) -> None:
        loop, qualifier = self.loop, els[1] if len(els) > 1 else ""
        if loop == CLAIM and qualifier == "F8" and self.claim is not None:
            self.claim.original_reference = (els[2].rstrip() if len(els) > 2 else "") or None
        elif loop == PAYEE and qualifier == "TJ":
            self.payee_tin = els[2].strip() if len(els) > 2 else ""
        elif loop in (DETAIL, PLB):
            self._misplaced(els, ordinal)

    def _dtm(self, els: list[str], ordinal: int) -> None:
        value = self.dates.get(els[2]) if len(els) > 2 else None
        if value is None:
            value = self._date(els, 2, ordinal)
        loop, qualifier = self.loop, els[1]
        claim = self.claim
        if loop == SERVICE and claim is not None:
            if qualifier == "472" or (qualifier == "150" and self.service_date is None):
                self.service_date = value
            if qualifier in ("472", "150") and (claim.service_from is None or value < claim.service_from):
                claim.service_from = value
            if qualifier in ("472", "151") and (claim.service_to is None or value > claim.service_to):
                claim.service_to = value
        elif loop == CLAIM and claim is not None:
            if qualifier == "232":
                claim.statement_from = value
            elif qualifier == "233":
                claim.statement_to = value
        elif loop == HEADER:
            if qualifier == "405":
                self.production_date = value
        else:
            self._misplaced(els, ordinal)

    def _other(self, els: list[str], ordinal: int) -> None:
        """Segments read for structure only (N3, N4, NM1, MIA, MOA, AMT, QTY, LQ, TS3, ...)."""
        self._structure(els[0], ordinal)

    def _structure(self, sid: str, ordinal: int) -> None:
        """A segment read for structure only needs its id alone: is it where the guide puts it?"""
        if sid not in _ALLOWED[self.loop]:
            self._misplaced_id(sid, ordinal)

    def _close_header(self, ordinal: int, segment_id: str) -> None:
        """Check the header and both parties once, before the first claim, PLB or SE."""
        if self.header_closed:
            return
        for present, missing in (
            (self.bpr, "BPR"),
            (self.trace, "TRN"),
            (self.payer, "N1*PR"),
            (self.payee, "N1*PE"),
        ):
            if not present:
                raise TransactionError(
                    FeedErrorReason.MISSING_SEGMENT,
                    f"the transaction has no {missing} before {segment_id}",
                    ordinal,
                    segment_id,
                    element=None,
                    expected=f"{missing} before the claims",
                )
        assert self.payer is not None and self.payee is not None
        self.payer_id = self.payer[4].strip() or self.trn03 or self.payer[2].strip()
        if not (self.payee[4].strip() or self.payee_tin):
            raise TransactionError(
                FeedErrorReason.MISSING_SEGMENT,
                "the payee has no identifier",
                ordinal,
                segment_id,
                element=None,
                expected="N1*PE N104 (NPI or TIN) or REF*TJ in loop 1000B",
            )
        if self.guide.payer_contact_required:
            if not self.per_bl:
                self.warnings.append(
                    "payer loop 1000A has no PER*BL (technical contact) required by the guide"
                )
            elif not self.per_bl_reachable:
                self.warnings.append(
                    "payer loop 1000A PER*BL has no contact number (PER03 qualifier and PER04) required by the "
                    "guide"
                )
        raw = self.raw
        self.remittance_id = stable_id(
            "remittance",
            self.ctx.tenant_id,
            self.payer_id,
            self.trace,
            raw.interchange_control_number,
            raw.group_control_number,
            raw.transaction_control_number,
        )
        self.header_closed = True

    def _enter_detail(self, els: list[str], ordinal: int) -> None:
        if self.loop == PLB:
            raise TransactionError(
                FeedErrorReason.SYNTAX,
                f"{els[0]} after PLB",
                ordinal,
                els[0],
                element=None,
                expected="PLB segments only after the last claim",
            )
        self._close_header(ordinal, els[0])
        self._end_claim()

    def _lx(self, els: list[str], ordinal: int) -> None:
        self._enter_detail(els, ordinal)
        self.loop = DETAIL

    def _finish(self, se_ordinal: int) -> ParsedRemittance:
        """Close the transaction at SE: balance it and build the payloads; provided by the claim reader."""
        raise NotImplementedError

    def _end_claim(self) -> None:
        """Close the open claim loop (balance it, emit its event); provided by the claim reader."""
        raise NotImplementedError
