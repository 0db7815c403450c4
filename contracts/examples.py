"""Example payloads for the published contract artefacts: small valid messages built through the models
themselves (money given as strings), one per event type and per topic, so a model change that breaks an example
fails in ``make contracts`` and ``tests/contract`` rather than in a consumer's hands. Fixed values (ids from a
fixed namespace, a fixed time) keep the generated documents free of diffs when nothing changed."""

import hashlib
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID, uuid5

from pydantic import BaseModel

from contracts import events as ev
from contracts.envelope import Envelope
from contracts.topics import Topic


def envelope_model(topic: Topic[Any]) -> type[Envelope[Any]]:
    """``Envelope[<payload>]`` of a topic (every topic carries a JSON payload model)."""
    return Envelope[topic.payload]  # type: ignore[name-defined]


_OFFSET_SHAPES: dict[str, tuple[str, str, str]] = {
    # event type: (bucket, PLB reason code, sign of the PLB amount)
    "OffsetApplied": ("allocated", "WO", "+"),
    "OffsetUnmatched": ("unmatched", "WO", "+"),
    "RecoveryDeferred": ("deferral", "WO", "-"),
    "ForwardingBalanceOpened": ("forwarding_balance", "FB", "-"),
    "ForwardingBalanceApplied": ("forwarding_balance", "FB", "+"),
    "RefundAcknowledged": ("refund_acknowledged", "72", "-"),
    "NonOffsetRecorded": ("non_offset", "L6", "-"),
    "OffsetDismissed": ("staff_dismissed", "WO", "+"),
}

_STAFF_ACTIONS: dict[str, dict[str, Any]] = {
    # event type: how its payload differs from the example appeal
    "AppealDecided": {"kind": "appeal_decided", "outcome": "upheld", "effective_date": date(2024, 7, 15)},
    "WriteOffRecorded": {"kind": "write_off", "amount": "20.00", "effective_date": date(2024, 7, 15)},
    "RefundSent": {"kind": "refund_sent", "amount": "120.00", "effective_date": date(2024, 5, 10)},
    "RepaymentScheduleGranted": {
        "kind": "repayment_schedule_granted",
        "effective_date": date(2024, 5, 10),
        "schedule": ev.RepaymentSchedule(
            installment_amount="24.00",
            installments=5,
            first_due_date=date(2024, 6, 1),
            frequency="monthly",
        ),
    },
}


_WORK_ITEM_ACTIONS: dict[str, dict[str, Any]] = {
    # event type: how its payload differs from the example link
    "WorkItemNotOurs": {"kind": "not_ours", "receivable_reference": None},
    "WorkItemAssigned": {"kind": "assign", "receivable_reference": None, "assignee": "staff-007"},
    "WorkItemNoted": {
        "kind": "note",
        "receivable_reference": None,
        "note": "called the payer: recoupment of a 2024 duplicate, letter on its way",
    },
}


_EXAMPLE_NAMESPACE = UUID("0f5c7d52-3c4e-5a8b-9d61-7e2f4a1b9c30")


_EXAMPLE_TIME = datetime(2024, 6, 3, 14, 5, 0, tzinfo=UTC)


_EXAMPLE_TENANT = "clinic-demo"


_EXAMPLE_ACCOUNT_KEY = hashlib.sha256(b"example account").hexdigest()[:32]


_EXAMPLE_835 = (
    b"ISA*00*          *00*          *ZZ*MEDICAREJ15    *ZZ*DEMOCLINIC     *240603*1405*^*00501*000000101"
    b"*0*P*:~"
)


def _example_id(name: str) -> UUID:
    return uuid5(_EXAMPLE_NAMESPACE, name)


_EXAMPLE_PHI_KEY = hashlib.sha256(
    b"offsetstream phi digest key v1:" + b"an-example-key-never-deployed-anywhere"
).digest()


def _token_digest(token: str) -> str:
    """``shared.phi.digest`` of an example token under an example key (``OFFSETSTREAM_PHI_KEY``; a deployment's
    own key gives other digests), spelt out here: contracts import nothing of the services."""
    return hashlib.blake2b(
        token.encode(), digest_size=16, person=b"offsetstream-phi", key=_EXAMPLE_PHI_KEY
    ).hexdigest()


def example_payloads() -> dict[type[BaseModel], BaseModel]:
    """One small, valid, PHI-free payload per payload model, telling one story: a WO offset of $120.00."""
    remittance_id = _example_id("remittance")
    receivable_id = _example_id("receivable")
    common = {
        "remittance_id": remittance_id,
        "payer_id": "CMS-J15",
        "trace_number": "EFT0000123",
        "payment_date": date(2024, 6, 3),
    }
    reference = "FCN22124000099000"
    claim = ev.ClaimPaymentReceived(
        **common,
        claim_ordinal=1,
        segment_ordinal=14,
        patient_control_number="ACCT-000117",
        status_code="1",
        charge="2000.00",
        paid="1500.00",
        patient_responsibility="0.00",
        claim_filing_indicator="MB",
        payer_claim_control_number="22124000117000",
        service_date_from=date(2024, 5, 2),
        service_date_to=date(2024, 5, 2),
        service_line_count=1,
        adjustments=(ev.ClaimAdjustment(level="claim", group_code="CO", reason_code="45", amount="500.00"),),
    )
    return {
        ev.RawFileReceived: ev.RawFileReceived(
            file_name="era-2024-06-03.835",
            content=_EXAMPLE_835,
            sha256=hashlib.sha256(_EXAMPLE_835).hexdigest(),
            source="cli",
            format_hint="x12_835",
        ),
        ev.RemittanceReceived: ev.RemittanceReceived(
            remittance_id=remittance_id,
            file_sha256=hashlib.sha256(_EXAMPLE_835).hexdigest(),
            file_name="era-2024-06-03.835",
            feed="x12_835",
            interchange_control_number="000000101",
            group_control_number="101",
            transaction_control_number="0001",
            transaction_index=1,
            payer_id="CMS-J15",
            payer_name="MEDICARE PART B",
            payee_id="1234567893",
            payee_name="DEMO CLINIC LLC",
            trace_number="EFT0000123",
            handling_code="I",
            total_paid="1380.00",
            credit_debit="C",
            payment_method="ACH",
            payment_date=date(2024, 6, 3),
            production_date=date(2024, 5, 31),
            claim_count=1,
            adjustment_count=1,
            total_claim_paid="1500.00",
            total_provider_adjustments="120.00",
        ),
        ev.ClaimPaymentReceived: claim,
        ev.ClaimPaymentsReceived: ev.ClaimPaymentsReceived(
            remittance_id=remittance_id, part=1, first_claim_ordinal=1, claim_count=1, claims=(claim,)
        ),
        ev.PatientTokensSeen: ev.PatientTokensSeen(
            remittance_id=remittance_id,
            part=1,
            first_claim_ordinal=1,
            claim_count=1,
            tokens=tuple(  # ACCT-000117 as written, and its piece 000117 (shared.phi.shaped_token_rows)
                ev.PatientToken(length=len(token), digest=_token_digest(token), alphanumeric=token.isalnum())
                for token in ("ACCT-000117", "000117")
            ),
        ),
        ev.ProviderAdjustmentReceived: ev.ProviderAdjustmentReceived(
            **common,
            segment_ordinal=31,
            pair_index=1,
            provider_identifier="1234567893",
            fiscal_period_date=date(2024, 12, 31),
            reason_code="WO",
            reference=reference,
            amount="120.00",
        ),
        ev.OverpaymentDetected: ev.OverpaymentDetected(
            receivable_id=receivable_id,
            payer_id="CMS-J15",
            reference=reference,
            rule="reversal_correction",
            evidence_channel="claim",
            evidence_amount="120.00",
            principal="120.00",
            determination_date=date(2024, 4, 15),
            policy="medicare",
            source="trace EFT0000040, CLP segment 22",
            claim_references=("22124000099000",),
        ),
        ev.OffsetRecorded: ev.OffsetRecorded(
            **common,
            offset_id=_example_id("offset"),
            segment_ordinal=31,
            pair_index=1,
            reason_code="WO",
            reference=reference,
            amount="120.00",
            bucket="allocated",
            allocations=(
                ev.Allocation(
                    receivable_id=receivable_id,
                    reference=reference,
                    to_interest="1.15",
                    to_principal="118.85",
                ),
            ),
            unmatched_amount="0.00",
            reason="matched FCN reference",
        ),
        ev.ReceivableChanged: ev.ReceivableChanged(
            receivable_id=receivable_id,
            payer_id="CMS-J15",
            reference=reference,
            status="open",
            policy="medicare",
            determination_date=date(2024, 4, 15),
            effective_date=date(2024, 4, 15),
            change_amount="120.00",
            principal="120.00",
            principal_recovered="0.00",
            interest_accrued="0.00",
            interest_recovered="0.00",
            balance="120.00",
            source="trace EFT0000040, CLP segment 22",
        ),
        ev.InterestAccrued: ev.InterestAccrued(
            receivable_id=receivable_id,
            payer_id="CMS-J15",
            reference=reference,
            policy="medicare",
            period_number=1,
            period_start=date(2024, 5, 16),
            period_end=date(2024, 6, 14),
            principal_basis="120.00",
            annual_rate="0.1150",
            amount="1.15",
        ),
        ev.FileReplayRequested: ev.FileReplayRequested(
            request_id=_example_id("file-replay"),
            sha256=hashlib.sha256(_EXAMPLE_835).hexdigest(),
            entered_by="staff-042",
        ),
        ev.LetterReceived: ev.LetterReceived(
            letter_id=_example_id("letter"),
            kind="demand_letter",
            payer_id="CMS-J15",
            payee_id="1234567893",
            reference=reference,
            amount="120.00",
            letter_date=date(2024, 4, 15),
            claim_references=("22124000099000",),
            entered_by="staff-042",
        ),
        ev.StaffActionRecorded: ev.StaffActionRecorded(
            action_id=_example_id("action"),
            kind="appeal_filed",
            payer_id="CMS-J15",
            payee_id="1234567893",
            reference=reference,
            effective_date=date(2024, 5, 1),
            entered_by="staff-042",
        ),
        ev.WorkItemActionRecorded: ev.WorkItemActionRecorded(
            action_id=_example_id("work-item-action"),
            kind="link",
            item_id=_example_id("event:remit.provider-adjustments.v1"),
            payer_id="CMS-J15",
            payee_id="1234567893",
            receivable_reference=reference,
            entered_by="staff-042",
            entered_at=_EXAMPLE_TIME,
        ),
        ev.AlertRaised: ev.AlertRaised(
            alert_id=_example_id("alert"),
            kind="forwarding_balance_not_closed",
            payer_id="CMS-J15",
            reference="EFT0000123",
            amount="180.00",
            observed_on=date(2024, 8, 2),
            detail="forwarding balance opened 2024-06-03 still open after 60 days",
        ),
        ev.NotificationEmitted: ev.NotificationEmitted(
            notification_id=_example_id("notification"),
            kind="offset_applied",
            severity="info",
            summary="CMS-J15 withheld 120.00 (WO) against FCN22124000099000: "
            "interest 1.15, principal 118.85.",
            facts={"reference": reference, "amount": "120.00", "trace_number": "EFT0000123"},
            related_event_id=_example_id("event:remit.offsets.v1"),
        ),
    }


def example_envelope(topic: Topic[Any]) -> Envelope[Any]:
    """A complete example message of a topic (its first event type), as a producer would send it."""
    payloads = example_payloads()
    if topic.payload not in payloads:
        raise KeyError(f"no example payload for topic {topic.name}; add one to contracts.generate")
    return envelope_model(topic)(
        event_id=_example_id(f"event:{topic.name}"),
        event_type=topic.event_types[0],
        occurred_at=_EXAMPLE_TIME,
        tenant_id=_EXAMPLE_TENANT,
        account_key=_EXAMPLE_ACCOUNT_KEY,
        causation_id=f"sha256:{hashlib.sha256(_EXAMPLE_835).hexdigest()[:16]}#ST0001",
        payload=payloads[topic.payload],
    )


_RECEIVABLE_STATUS = {
    "ReceivableOpened": "open",
    "ReceivableIncreased": "open",
    "ReceivableUpdated": "open",
    "ReceivableReduced": "partially_recovered",
    "ReceivableSettled": "settled",
    "ReceivableRefunded": "refunded",
    "ReceivableWrittenOff": "written_off",
    "ReceivablePaused": "paused",
    "ReceivableResumed": "partially_recovered",
    "InterestAdded": "partially_recovered",
}


def examples_per_event_type(topic: Topic[Any], example: Envelope[Any]) -> list[Envelope[Any]]:
    """One example per event type of the topic, its payload shaped like that fact (bucket, sign, status)."""
    found = []
    for event_type in topic.event_types:
        payload = example.payload
        if isinstance(payload, ev.OffsetRecorded) and event_type in _OFFSET_SHAPES:
            bucket, code, sign = _OFFSET_SHAPES[event_type]
            amount = abs(payload.amount) if sign == "+" else -abs(payload.amount)
            payload = payload.model_copy(
                update={
                    "bucket": bucket,
                    "reason_code": code,
                    "amount": amount,
                    "allocations": payload.allocations if bucket == "allocated" else (),
                    "unmatched_amount": amount if bucket == "unmatched" else payload.unmatched_amount * 0,
                }
            )
        elif isinstance(payload, ev.StaffActionRecorded) and event_type in _STAFF_ACTIONS:
            payload = ev.StaffActionRecorded.model_validate({**dict(payload), **_STAFF_ACTIONS[event_type]})
        elif isinstance(payload, ev.WorkItemActionRecorded) and event_type in _WORK_ITEM_ACTIONS:
            payload = ev.WorkItemActionRecorded.model_validate(
                {**dict(payload), **_WORK_ITEM_ACTIONS[event_type]}
            )
        elif isinstance(payload, ev.ReceivableChanged) and event_type in _RECEIVABLE_STATUS:
            status = _RECEIVABLE_STATUS[event_type]
            payload = payload.model_copy(update={"status": status, "paused": status == "paused"})
        found.append(
            example.model_copy(
                update={
                    "event_type": event_type,
                    "event_id": _example_id(f"event:{topic.name}:{event_type}"),
                    "payload": payload,
                }
            )
        )
    return found
