"""Reading an 835 transaction, part 2: claims (2100), service lines (2110) and provider adjustments (PLB).

Balancing happens as each loop closes, in Decimal cents: a service line when the next SVC/CLP/PLB/SE starts
(``SVC02 − ΣCAS = SVC03``), a claim when the next claim or the PLB section starts (``CLP03 − ΣCAS of both
levels = CLP04``), the transaction at SE (``ΣCLP04 − ΣPLB = BPR02``, in the header reader). Each imbalance
names the segment and element and shows computed against declared amounts, never patient data.
"""

from decimal import Decimal
from typing import ClassVar, Final

from contracts.events import (
    ClaimAdjustment,
    ClaimPaymentReceived,
    ProviderAdjustmentReceived,
    RemittanceReceived,
    ServicePayment,
)
from contracts.money import ZERO
from services.intake.feeds import FeedErrorReason, ParsedRemittance
from services.intake.x12 import codes
from services.intake.x12.header import (
    CLAIM,
    FEED,
    MAX_LISTED,
    PLB,
    SERVICE,
    ClaimState,
    Handler,
    HeaderReader,
    TransactionError,
)
from services.intake.x12.values import TrustedBuilder

_CAS_LAST: Final = 19
_PLB_LAST: Final = 14
_PAD: Final = ((), ("", ""), ("",))
"""Empty elements completing a CAS segment's last triple (missing trailing elements are empty)."""
_NONE_KNOWN: Final[dict[str, dict[str, tuple[ClaimAdjustment, Decimal]]]] = {}
"""Stands for a CAS group code with no triple remembered yet (never written to)."""
_claim_adjustment: Final = TrustedBuilder(ClaimAdjustment)
_service_payment: Final = TrustedBuilder(ServicePayment)
_ONE_UNIT: Final = Decimal(1)
"""SVC05 absent: the guide says one unit was paid (SVC07, units submitted, is another count)."""
_claim_payment: Final = TrustedBuilder(ClaimPaymentReceived)


class TransactionReader(HeaderReader):
    """Reads one whole transaction: header and parties (inherited), claims, services and PLB."""

    handler_names: ClassVar[dict[str, str]] = {
        **HeaderReader.handler_names,
        "CLP": "_clp",
        "CAS": "_cas",
        "SVC": "_svc",
        "PLB": "_plb",
    }

    def _segment(self, segment: str, ordinal: int, handlers: dict[str, Handler]) -> None:
        """The claim loop's segments (about nine in ten) straight to their handlers, the rest by table.

        Recognised by their id and element separator before being split; compiled, these are direct C
        calls, where the table would be a Python-level call with boxed arguments. ``AMT`` and ``NM1`` are
        read for structure only, so they are never split. The order is by frequency in payer files.
        """
        if segment.startswith(self.cas_id):
            self._cas(segment.split(self.element), ordinal)
        elif segment.startswith(self.dtm_id):
            self._dtm(segment.split(self.element), ordinal)
        elif segment.startswith(self.svc_id):
            self._svc(segment.split(self.element), ordinal)
        elif segment.startswith(self.ref_id):
            if self.loop != SERVICE:  # no REF of loop 2110 (6R, LU, 0K, ...) carries anything kept
                self._ref(segment.split(self.element), ordinal)
        elif segment.startswith(self.amt_id):
            self._structure("AMT", ordinal)
        elif segment.startswith(self.clp_id):
            self._clp(segment.split(self.element), ordinal)
        elif segment.startswith(self.nm1_id):
            self._structure("NM1", ordinal)
        else:
            super()._segment(segment, ordinal, handlers)

    def _clp(self, els: list[str], ordinal: int) -> None:
        if self.claim is not None:
            self._end_claim()
        else:
            self._enter_detail(els, ordinal)
        if len(els) < 8:
            els.extend([""] * (8 - len(els)))
        if not els[1]:
            raise TransactionError(
                FeedErrorReason.INVALID_ELEMENT,
                "CLP01 (patient control number) is missing",
                ordinal,
                "CLP",
                element="CLP01",
                expected="the provider's patient control number",
            )
        statuses = self.guide.claim_status_codes
        if els[2] not in statuses:
            shown = f"{els[2][:4]!r}" if els[2] else "missing"
            raise TransactionError(
                FeedErrorReason.INVALID_ELEMENT,
                f"CLP02 claim status {shown} is not valid in {self.guide.version}",
                ordinal,
                "CLP",
                element="CLP02",
                expected="one of " + " ".join(sorted(statuses, key=int)),
            )
        amounts = self.amounts
        charge = amounts.get(els[3]) or self._amount(els, 3, ordinal)
        paid = amounts.get(els[4]) or self._amount(els, 4, ordinal)
        responsibility = (amounts.get(els[5]) or self._amount(els, 5, ordinal)) if els[5] else None
        self.claim = ClaimState(ordinal, len(self.claims) + 1, els, charge, paid, responsibility)
        self.loop = CLAIM

    def _cas(self, els: list[str], ordinal: int) -> None:
        claim = self.claim
        count = len(els)
        if claim is None or count < 2 or count > _CAS_LAST + 1 or els[1] not in self.cas_groups:
            self._refuse_cas(els, ordinal)
            return
        service = self.loop == SERVICE
        group = els[1]
        known = (self.service_adjustments if service else self.claim_adjustments).get(group, _NONE_KNOWN)
        adjustments = claim.adjustments
        total = ZERO
        if (count - 2) % 3:
            els.extend(_PAD[(count - 2) % 3])
        for pos in range(2, len(els), 3):
            reason = els[pos]
            by_amount = known.get(reason) if not els[pos + 2] else None
            found = by_amount.get(els[pos + 1]) if by_amount is not None else None
            if found is None:
                found = self._adjustment(els, pos, ordinal, service)
                if found is None:
                    continue
            adjustments.append(found[0])
            total += found[1]
        claim.cas_total += total
        if service:
            self.service_cas += total

    def _refuse_cas(self, els: list[str], ordinal: int) -> None:
        """Raise what is wrong with a CAS segment the fast path turned down, checked in the guide's order."""
        if self.claim is None:
            raise TransactionError(
                FeedErrorReason.SYNTAX,
                "CAS outside a claim or service line",
                ordinal,
                "CAS",
                element=None,
                expected="CAS after CLP or SVC",
            )
        group = els[1] if len(els) > 1 else ""
        if group not in self.cas_groups:
            shown = f"{group[:4]!r}" if group else "missing"
            raise TransactionError(
                FeedErrorReason.INVALID_ELEMENT,
                f"CAS01 group code {shown} is not valid in {self.guide.version}",
                ordinal,
                "CAS",
                element="CAS01",
                expected="one of " + " ".join(sorted(self.cas_groups)),
            )
        raise TransactionError(
            FeedErrorReason.INVALID_ELEMENT,
            "CAS has more than six reason/amount/quantity triples",
            ordinal,
            "CAS",
            element=f"CAS{_CAS_LAST + 1}",
            expected="at most CAS19",
        )

    def _adjustment(
        self, els: list[str], pos: int, ordinal: int, service: bool
    ) -> tuple[ClaimAdjustment, Decimal] | None:
        """The CAS triple at ``pos`` as a ClaimAdjustment and its amount, checked and remembered when it has
        no quantity; None for an empty triple (skipped)."""
        count = len(els)
        reason = els[pos]
        amount_raw = els[pos + 1] if pos + 1 < count else ""
        quantity_raw = els[pos + 2] if pos + 2 < count else ""
        if not reason:
            if amount_raw or quantity_raw:
                raise TransactionError(
                    FeedErrorReason.INVALID_ELEMENT,
                    f"CAS{pos:02d} reason code is missing",
                    ordinal,
                    "CAS",
                    element=f"CAS{pos:02d}",
                    expected="a claim adjustment reason code before its amount",
                )
            return None
        amount = self._amount(els, pos + 1, ordinal)
        quantity = self.ctx.quantity(quantity_raw) if quantity_raw else None
        if quantity_raw and quantity is None:
            raise TransactionError(
                FeedErrorReason.INVALID_ELEMENT,
                f"CAS{pos + 2:02d} is not a quantity",
                ordinal,
                "CAS",
                element=f"CAS{pos + 2:02d}",
                expected="a number of units",
            )
        adjustment = _claim_adjustment.build(
            {
                "level": "service" if service else "claim",
                "group_code": els[1],
                "reason_code": reason,
                "amount": amount,
                "quantity": quantity,
            }
        )
        found = adjustment, amount
        if not quantity_raw:
            self.ctx.remember_adjustment(service, els[1], reason, amount_raw, found)
        return found

    def _svc(self, els: list[str], ordinal: int) -> None:
        claim = self.claim
        if claim is None:
            raise TransactionError(
                FeedErrorReason.SYNTAX,
                "SVC outside a claim",
                ordinal,
                "SVC",
                element=None,
                expected="SVC after CLP",
            )
        if self.loop == SERVICE:
            self._end_service()
        if len(els) < 2 or not els[1]:
            raise TransactionError(
                FeedErrorReason.INVALID_ELEMENT,
                "SVC01 (procedure) is missing",
                ordinal,
                "SVC",
                element="SVC01",
                expected="a composite procedure such as HC:99213",
            )
        if len(els) < 8:
            els.extend([""] * (8 - len(els)))
        amounts = self.amounts
        charge = amounts.get(els[2]) or self._amount(els, 2, ordinal)
        paid = amounts.get(els[3]) or self._amount(els, 3, ordinal)
        self.service_charge, self.service_paid, self.service_cas = charge, paid, ZERO
        self.service_ordinal, self.service_els, self.service_date = ordinal, els, None
        claim.services += 1
        self.loop = SERVICE

    def _units(self, raw: str) -> Decimal:
        """SVC05, the units paid of the open service line."""
        units = self.ctx.quantity(raw)
        if units is None:
            raise TransactionError(
                FeedErrorReason.INVALID_ELEMENT,
                "SVC05 (units paid) is not a number",
                self.service_ordinal,
                "SVC",
                element="SVC05",
                expected="a number of units",
            )
        return units

    def _end_service(self) -> None:
        """Close the open service line: balance it and add it to its claim as a ServicePayment."""
        charge, paid, cas = self.service_charge, self.service_paid, self.service_cas
        expected = charge - cas
        claim = self.claim
        assert claim is not None
        if expected != paid:
            raise TransactionError(
                FeedErrorReason.UNBALANCED,
                f"service line {claim.services} of claim {claim.claim_ordinal} does not balance: SVC02 "
                f"{charge} − ΣCAS {cas} = {expected}, but SVC03 is {paid}",
                self.service_ordinal,
                "SVC",
                element="SVC03",
                expected=f"SVC03 = SVC02 − ΣCAS = {expected}",
            )
        els = self.service_els
        procedure = els[1].split(self.component)
        if len(procedure) < 2 or not procedure[0] or not procedure[1]:
            raise TransactionError(
                FeedErrorReason.INVALID_ELEMENT,
                "SVC01 needs a qualifier and a procedure code",
                self.service_ordinal,
                "SVC",
                element="SVC01-2",
                expected="a composite procedure such as HC:99213",
            )
        units = self._units(els[5]) if els[5] else _ONE_UNIT
        submitted = self.ctx.quantity(els[7]) if els[7] else None
        if els[7] and submitted is None:  # informational only: the line still balances and posts
            self.warnings.append(
                f"SVC07 (units submitted) of service line {claim.services} of claim {claim.claim_ordinal} "
                "is not a number; ignored"
            )
        claim.lines.append(
            _service_payment.build(
                {
                    "line_ordinal": claim.services,
                    "procedure_qualifier": procedure[0],
                    "procedure_code": procedure[1],
                    "modifiers": () if len(procedure) == 2 else tuple(m for m in procedure[2:6] if m),
                    "charge": charge,
                    "paid": paid,
                    "units": units,
                    "units_submitted": submitted,
                    "service_date": self.service_date,
                },
            )
        )
        self.loop = CLAIM

    def _end_claim(self) -> None:
        claim = self.claim
        if claim is None:
            return
        if self.loop == SERVICE:
            self._end_service()
        expected = claim.charge - claim.cas_total
        if expected != claim.paid:
            raise TransactionError(
                FeedErrorReason.UNBALANCED,
                f"claim {claim.claim_ordinal} does not balance: CLP03 {claim.charge} − ΣCAS "
                f"{claim.cas_total} = {expected}, but CLP04 is {claim.paid}",
                claim.ordinal,
                "CLP",
                element="CLP04",
                expected=f"CLP04 = CLP03 − ΣCAS (claim and service level) = {expected}",
            )
        self.claims.append(
            _claim_payment.build(
                {
                    "remittance_id": self.remittance_id,
                    "payer_id": self.payer_id,
                    "trace_number": self.trace,
                    "payment_date": self.payment_date,
                    "claim_ordinal": claim.claim_ordinal,
                    "segment_ordinal": claim.ordinal,
                    "patient_control_number": claim.pcn,
                    "status_code": claim.status,
                    "charge": claim.charge,
                    "paid": claim.paid,
                    "patient_responsibility": claim.responsibility,
                    "claim_filing_indicator": claim.filing,
                    "payer_claim_control_number": claim.icn,
                    "original_reference": claim.original_reference,
                    "service_date_from": claim.statement_from or claim.service_from,
                    "service_date_to": claim.statement_to or claim.service_to,
                    "service_line_count": claim.services,
                    "adjustments": tuple(claim.adjustments),
                    "services": tuple(claim.lines),
                },
            )
        )
        self.claims_paid += claim.paid
        self.claim = None

    def _plb(self, els: list[str], ordinal: int) -> None:
        if self.loop != PLB:
            self._enter_detail(els, ordinal)
            self.loop = PLB
        count = len(els)
        if count > _PLB_LAST + 1:
            raise TransactionError(
                FeedErrorReason.INVALID_ELEMENT,
                "PLB has more than six reason/amount pairs",
                ordinal,
                "PLB",
                element=f"PLB{_PLB_LAST + 1}",
                expected="at most PLB14; further pairs in another PLB",
            )
        provider = els[1].strip() if count > 1 else ""
        if not provider:
            raise TransactionError(
                FeedErrorReason.INVALID_ELEMENT,
                "PLB01 (provider identifier) is missing",
                ordinal,
                "PLB",
                element="PLB01",
                expected="the payee's NPI or TIN",
            )
        fiscal = self._date(els, 2, ordinal)
        component = self.raw.delimiters.component
        found = 0
        for pair in range(1, codes.MAX_PLB_PAIRS + 1):
            pos = 1 + 2 * pair
            composite = els[pos] if pos < count else ""
            if not composite and not (pos + 1 < count and els[pos + 1]):
                continue
            parts = composite.split(component)
            reason = parts[0]
            if reason not in self.guide.plb_reason_codes:
                shown = f"{reason[:4]!r}" if reason else "missing"
                valid = len(self.guide.plb_reason_codes)
                raise TransactionError(
                    FeedErrorReason.INVALID_ELEMENT,
                    f"PLB{pos:02d} adjustment reason {shown} is not one of the {valid} valid PLB reason codes",
                    ordinal,
                    "PLB",
                    element=f"PLB{pos:02d}-1",
                    expected="a PLB reason code such as WO, FB, 72, L6, WU, OB",
                )
            if len(parts) > 2:
                self.warnings.append(
                    f"PLB segment #{ordinal} pair {pair}: components after the reference ignored"
                )
            amount = self._amount(els, pos + 1, ordinal)
            reference = parts[1].rstrip(" ") if len(parts) > 1 else ""
            self.pairs.append(
                ProviderAdjustmentReceived(
                    remittance_id=self.remittance_id,
                    payer_id=self.payer_id,
                    trace_number=self.trace,
                    payment_date=self.payment_date,
                    segment_ordinal=ordinal,
                    pair_index=pair,
                    provider_identifier=provider,
                    fiscal_period_date=fiscal,
                    reason_code=reason,
                    reference=reference or None,
                    amount=amount,
                )
            )
            self.plb_total += amount
            found += 1
        if not found:
            raise TransactionError(
                FeedErrorReason.INVALID_ELEMENT,
                "PLB has no reason/amount pair",
                ordinal,
                "PLB",
                element="PLB03",
                expected="at least PLB03 and PLB04",
            )

    def _finish(self, se_ordinal: int) -> ParsedRemittance:
        self._close_header(se_ordinal, "SE")
        self._end_claim()
        assert self.bpr is not None and self.payer is not None and self.payee is not None
        bpr = self.bpr
        declared = -self.total_paid if bpr[3] == "D" else self.total_paid
        computed = self.claims_paid - self.plb_total
        if computed != declared:
            raise TransactionError(
                FeedErrorReason.UNBALANCED,
                f"transaction does not balance: ΣCLP04 {self.claims_paid} − ΣPLB {self.plb_total} = "
                f"{computed}, but BPR02 is {self.total_paid}{' (debit)' if bpr[3] == 'D' else ''}",
                self.bpr_ordinal,
                "BPR",
                element="BPR02",
                expected=f"BPR02 = ΣCLP04 − ΣPLB = {computed}",
            )
        raw = self.raw
        remittance = RemittanceReceived(
            remittance_id=self.remittance_id,
            file_sha256=self.ctx.file_sha256,
            file_name=self.ctx.file_name,
            feed=FEED,
            interchange_control_number=raw.interchange_control_number,
            group_control_number=raw.group_control_number,
            transaction_control_number=raw.transaction_control_number,
            transaction_index=raw.index,
            payer_id=self.payer_id,
            payer_name=self.payer[2].strip(),
            payee_id=self.payee[4].strip() or self.payee_tin,
            payee_name=self.payee[2].strip(),
            trace_number=self.trace,
            handling_code=bpr[1],
            total_paid=self.total_paid,
            credit_debit=bpr[3],
            payment_method=bpr[4],
            payment_date=self.payment_date,
            production_date=self.production_date,
            claim_count=len(self.claims),
            adjustment_count=len(self.pairs),
            total_claim_paid=self.claims_paid,
            total_provider_adjustments=self.plb_total,
        )
        return ParsedRemittance(remittance, tuple(self.claims), tuple(self.pairs), tuple(self._warnings()))

    def _warnings(self) -> list[str]:
        """Envelope notes, then one line per unknown or misplaced segment id: count and first ordinals."""
        notes = list(self.warnings)
        groups = (
            ("unsupported segment {} ×{} not in the 835 guide; kept, not interpreted", self.unknown),
            ("segment out of place ({}) ×{} kept, not interpreted", self.misplaced),
        )
        for template, found in groups:
            for key, ordinals in found.items():
                listed = ", ".join(f"#{o}" for o in ordinals[:MAX_LISTED])
                more = ", …" if len(ordinals) > MAX_LISTED else ""
                notes.append(template.format(key, len(ordinals)) + f" (segments {listed}{more})")
        return notes
