"""A parked recovery re-matched later: staff who were asked to review it hear that it is resolved."""

from datetime import date
from decimal import Decimal
from uuid import UUID, uuid4

from contracts.events import Allocation, OffsetRecorded
from services.notification import domain
from services.notification.routes import Routes

D = Decimal
ORIGINAL = UUID("00000000-0000-4000-8000-000000000001")


def rematch(applied: str, left: str, *, rematch_of: UUID | None = ORIGINAL) -> OffsetRecorded:
    """The OffsetRecorded matching emits when a letter or deferral finally explains a parked 80.00 WO."""
    return OffsetRecorded(
        offset_id=uuid4(),
        remittance_id=uuid4(),
        payer_id="01312",
        trace_number="EFT300002",
        payment_date=date(2026, 8, 24),
        segment_ordinal=1,
        pair_index=1,
        reason_code="WO",
        reference="FCN300             PCN-55120",
        amount=D("80.00"),
        bucket="allocated",
        allocations=(
            Allocation(
                receivable_id=uuid4(), reference="FCN300", to_interest=D("0.00"), to_principal=D(applied)
            ),
        ),
        unmatched_amount=D(left),
        reason="re-matched to FCN300 after the receivable appeared",
        rematch_of=rematch_of,
    )


def test_a_full_rematch_tells_staff_the_unmatched_item_is_resolved() -> None:
    [message] = domain.for_offset("OffsetApplied", rematch("80.00", "0.00"))
    assert (message.kind, message.severity) == ("unmatched_recovery_resolved", "info")
    assert message.facts["rematch_of"] == str(ORIGINAL)
    assert (message.facts["applied"], message.facts["unmatched"]) == ("80.00", "0.00")
    assert message.facts["applied_to"] == "FCN300"
    assert "80.00 re-matched to FCN300" in message.summary


def test_a_partial_rematch_repeats_the_unmatched_action_with_the_new_remainder() -> None:
    [message] = domain.for_offset("OffsetApplied", rematch("50.00", "30.00"))
    assert (message.kind, message.severity) == ("unmatched_recovery", "action")
    assert message.facts["unmatched"] == "30.00"
    assert message.facts["rematch_of"] == str(ORIGINAL)
    assert "30.00" in message.summary


def test_the_resolved_message_never_quotes_the_patient_control_number() -> None:
    [message] = domain.for_offset("OffsetApplied", rematch("80.00", "0.00"))
    assert message.facts["reference"] == "FCN300"
    assert "PCN-55120" not in message.summary + repr(message.facts)


def test_a_first_explanation_fully_allocated_still_leaves_the_notice_to_the_join() -> None:
    assert domain.for_offset("OffsetApplied", rematch("80.00", "0.00", rematch_of=None)) == []


def test_the_resolved_kind_is_routable() -> None:
    assert domain.UNMATCHED_RECOVERY_RESOLVED in domain.KINDS
    routes = Routes.parse(
        {
            "tenants": {
                "clinic-a": {"unmatched_recovery_resolved": [{"channel": "webhook", "target": "https://x"}]}
            }
        },
        ["webhook"],
        None,
    )
    assert routes.resolve("clinic-a", "unmatched_recovery_resolved")[0].target == "https://x"


def test_an_old_offset_without_the_field_still_reads() -> None:
    # Consumers are tolerant: an OffsetRecorded produced before `rematch_of` existed validates as a first
    # explanation.
    payload = rematch("80.00", "0.00").model_dump(mode="json")
    del payload["rematch_of"]
    assert OffsetRecorded.model_validate(payload).rematch_of is None


def test_an_item_staff_dismiss_as_not_ours_is_resolved_without_repeating_the_reason() -> None:
    dismissed = rematch("0.00", "0.00").model_copy(
        update={
            "bucket": "staff_dismissed",
            "allocations": (),
            "reason": "80.00 dismissed by staff as not ours (work-item action x)",
        }
    )
    (message,) = domain.for_offset("OffsetDismissed", dismissed)
    assert message.kind == domain.UNMATCHED_RECOVERY_RESOLVED
    assert "dismissed by staff as not ours" in message.summary
    assert message.facts["rematch_of"] == str(ORIGINAL)
    assert "work-item action" not in message.summary
