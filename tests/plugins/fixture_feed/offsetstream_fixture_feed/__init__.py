"""A third-party feed parser in miniature, used to prove plugins are found without touching offsetstream.

Format (one record per line, ``|`` separated, amounts as decimal text)::

    FIXTURE-PIPE|1
    R|payer_id|payer_name|payee_id|payee_name|trace_number|payment_date|total_paid
    C|patient_control_number|status_code|charge|paid
    P|provider_identifier|fiscal_period_date|reason_code|reference|amount

One remittance per file; no balancing beyond the transaction total. It only shows the plugin contract.
"""

from collections.abc import Iterator
from datetime import date
from decimal import Decimal

from contracts.events import ClaimPaymentReceived, ProviderAdjustmentReceived, RemittanceReceived
from services.intake.feeds import FeedError, FeedErrorReason, ParsedRemittance
from shared.ids import stable_id

MAGIC = b"FIXTURE-PIPE|1"


class PipeParser:
    """The ``fixture_pipe`` feed parser: satisfies :class:`services.intake.feeds.FeedParser` structurally."""

    name = "fixture_pipe"

    def sniff(self, head: bytes) -> bool:
        """True when the file starts with the format's magic line."""
        return head.lstrip().startswith(MAGIC)

    def parse(
        self, content: bytes, *, file_name: str, file_sha256: str, tenant_id: str
    ) -> Iterator[ParsedRemittance | FeedError]:
        """Yield the file's one remittance, or one FeedError naming the line that is wrong."""
        lines = content.decode("utf-8").splitlines()
        try:
            yield _read(lines, file_name, file_sha256, tenant_id)
        except (IndexError, ValueError, ArithmeticError):
            yield FeedError(
                FeedErrorReason.SYNTAX,
                "a fixture_pipe record is malformed",
                file_name,
                expected="R, C and P records as in the module docstring",
            )


def _read(lines: list[str], file_name: str, file_sha256: str, tenant_id: str) -> ParsedRemittance | FeedError:
    header = lines[1].split("|")
    if header[0] != "R":
        return FeedError(FeedErrorReason.MISSING_SEGMENT, "no R record", file_name, segment_ordinal=2)
    payer_id, payer_name, payee_id, payee_name, trace = header[1:6]
    paid_on, total = date.fromisoformat(header[6]), Decimal(header[7])
    rid = stable_id("remittance", tenant_id, payer_id, trace, None, None, trace)
    common = {"remittance_id": rid, "payer_id": payer_id, "trace_number": trace, "payment_date": paid_on}
    claims: list[ClaimPaymentReceived] = []
    pairs: list[ProviderAdjustmentReceived] = []
    for ordinal, line in enumerate(lines[2:], start=3):
        fields = line.split("|")
        if fields[0] == "C":
            claims.append(
                ClaimPaymentReceived(
                    **common,
                    claim_ordinal=len(claims) + 1,
                    segment_ordinal=ordinal,
                    patient_control_number=fields[1],
                    status_code=fields[2],
                    charge=Decimal(fields[3]),
                    paid=Decimal(fields[4]),
                    service_line_count=0,
                )
            )
        elif fields[0] == "P":
            pairs.append(
                ProviderAdjustmentReceived(
                    **common,
                    segment_ordinal=ordinal,
                    pair_index=1,
                    provider_identifier=fields[1],
                    fiscal_period_date=date.fromisoformat(fields[2]),
                    reason_code=fields[3],
                    reference=fields[4] or None,
                    amount=Decimal(fields[5]),
                )
            )
    claims_paid = sum((c.paid for c in claims), Decimal("0.00"))
    plb_total = sum((p.amount for p in pairs), Decimal("0.00"))
    if claims_paid - plb_total != total:
        return FeedError(
            FeedErrorReason.UNBALANCED, "the remittance does not balance", file_name, segment_ordinal=2
        )
    remittance = RemittanceReceived(
        remittance_id=rid,
        file_sha256=file_sha256,
        file_name=file_name,
        feed="fixture_pipe",
        transaction_control_number=trace,
        transaction_index=1,
        payer_id=payer_id,
        payer_name=payer_name,
        payee_id=payee_id,
        payee_name=payee_name,
        trace_number=trace,
        handling_code="I",
        total_paid=total,
        credit_debit="C",
        payment_method="ACH",
        payment_date=paid_on,
        claim_count=len(claims),
        adjustment_count=len(pairs),
        total_claim_paid=claims_paid,
        total_provider_adjustments=plb_total,
    )
    return ParsedRemittance(remittance, tuple(claims), tuple(pairs))
