"""Notification's pure domain: rules, timelines, routing, digests, back-off and the e-mail text."""

import random
from datetime import date
from decimal import Decimal
from uuid import uuid4

import pytest

from contracts.events import AlertRaised, Allocation, InterestAccrued, OffsetRecorded, ReceivableChanged
from services.notification import domain
from services.notification.routes import Destination, Routes, RoutingError, load_routes_document
from services.notification.timelines import medicare_fallback, policy_timelines
from shared import plugins

D = Decimal
DET = date(2026, 8, 3)


def change(status: str = "open", balance: str = "300.00", policy: str = "medicare") -> ReceivableChanged:
    return ReceivableChanged(
        receivable_id=uuid4(),
        payer_id="01312",
        reference="FCN26080300017",
        status=status,
        policy=policy,
        determination_date=DET,
        effective_date=DET,
        change_amount=D("300.00"),
        principal=D("300.00"),
        principal_recovered=D("0.00"),
        interest_accrued=D("0.00"),
        interest_recovered=D("0.00"),
        balance=D(balance),
        source="test",
    )


def offset(bucket: str, amount: str, unmatched: str = "0.00", reference: str | None = None) -> OffsetRecorded:
    return OffsetRecorded(
        offset_id=uuid4(),
        remittance_id=uuid4(),
        payer_id="01312",
        trace_number="EFT260914001",
        payment_date=date(2026, 9, 14),
        segment_ordinal=1,
        pair_index=1,
        reason_code="WO",
        reference=reference,
        amount=D(amount),
        bucket=bucket,
        allocations=(
            (
                Allocation(
                    receivable_id=uuid4(), reference="FCN1", to_interest=D("2.88"), to_principal=D("97.12")
                ),
            )
            if bucket == "allocated"
            else ()
        ),
        unmatched_amount=D(unmatched),
        reason="no receivable with that reference",
    )


# --- timeline -------------------------------------------------------------------------------------------------


def test_receivable_opened_carries_the_medicare_timeline_from_the_policy_plugin() -> None:
    # The payer policy plugin answers; DOMAIN.md §3: rebuttal day 15, interest day 31, recoupment day 41.
    timeline_of = policy_timelines(plugins.load_plugins(plugins.PAYER_POLICIES))
    timeline = timeline_of("medicare", DET, None)
    [message] = domain.for_receivable("ReceivableOpened", change(), timeline)
    assert message.kind == "receivable_opened"
    assert message.facts["rebuttal_deadline"] == "2026-08-18"
    assert message.facts["interest_start"] == "2026-09-03"
    assert message.facts["recoupment_start"] == "2026-09-13"
    assert "rebuttal deadline 2026-08-18" in message.summary


def test_unknown_policy_falls_back_to_domain_section_3() -> None:
    timeline_of = policy_timelines({})
    assert dict(timeline_of("no-such-policy", DET, None)) == dict(medicare_fallback(DET))
    assert dict(medicare_fallback(DET))["recoupment_start"] == date(2026, 9, 13)


def test_watched_milestones_skip_the_determination_itself() -> None:
    labels = [label for label, _ in domain.watched(medicare_fallback(DET))]
    assert labels == ["rebuttal_deadline", "interest_start", "recoupment_start", "appeal_deadline"]


def test_a_provider_identified_overpayment_is_reminded_of_its_return_deadline_as_an_action() -> None:
    found = date(2026, 9, 1)
    for timeline in (
        policy_timelines(plugins.load_plugins(plugins.PAYER_POLICIES))("medicare", found, found),
        medicare_fallback(found, found),
    ):
        assert ("report_and_return_deadline", date(2026, 10, 31)) in domain.watched(timeline)
    deadline = domain.Deadline(
        "r", "SELF-17", "01312", "report_and_return_deadline", date(2026, 10, 31), D("240")
    )
    message = domain.deadline_approaching(deadline, date(2026, 10, 28))
    assert message.severity == "action"
    assert message.summary == "SELF-17: report and return deadline in 3 days (2026-10-31), 240.00 open"


# --- rules ----------------------------------------------------------------------------------------------------


def test_settled_notifies_and_other_changes_do_not() -> None:
    assert [m.kind for m in domain.for_receivable("ReceivableSettled", change("settled", "0.00"), [])] == [
        "receivable_settled"
    ]
    assert domain.for_receivable("ReceivableReduced", change(), []) == []


def test_offset_applied_says_which_receivable_how_much_and_what_is_left() -> None:
    app = domain.OffsetApplication(
        "o",
        "r",
        "FCN1",
        "EFT1",
        date(2026, 9, 14),
        "WO",
        D("100.00"),
        D("2.88"),
        D("97.12"),
        D("200.00"),
        "open",
    )
    message = domain.offset_applied(app)
    assert message.summary == "Payer withheld 100.00 on EFT1 against FCN1: 200.00 left"
    assert message.facts["balance_left"] == "200.00"
    assert message.facts["to_interest"] == "2.88"
    settled = domain.offset_applied(app.__class__(**{**app.__dict__, "balance_after": D("0.00")}))
    assert settled.summary.endswith(": settled")


def test_unmatched_recovery_quotes_the_fcn_but_never_the_patient_control_number_behind_it() -> None:
    # Medicare PLB reference: FCN in 1-19, patient control number in 20-39 (space padded).
    [message] = domain.for_offset(
        "OffsetUnmatched", offset("unmatched", "50.00", "50.00", "FCN99            PCN-77341")
    )
    assert message.kind == "unmatched_recovery"
    assert message.facts["reference"] == "FCN99"
    assert "PCN-77341" not in message.summary + repr(message.facts)


def test_allocated_offset_leaves_the_applied_notice_to_the_join() -> None:
    assert domain.for_offset("OffsetApplied", offset("allocated", "100.00")) == []


def test_interest_notifies_only_above_the_threshold() -> None:
    accrual = InterestAccrued(
        receivable_id=uuid4(),
        payer_id="01312",
        reference="FCN1",
        policy="medicare",
        period_number=1,
        period_start=date(2026, 9, 3),
        period_end=date(2026, 10, 2),
        principal_basis=D("300.00"),
        annual_rate=D("0.1150"),
        amount=D("2.88"),
    )
    assert [m.kind for m in domain.for_interest(accrual, D("0.00"))] == ["interest_accrued"]
    assert domain.for_interest(accrual, D("5.00")) == []
    reversal = accrual.model_copy(update={"amount": D("-2.88")})
    assert domain.for_interest(reversal, D("0.00")) == []


@pytest.mark.parametrize("kind", domain.ALERT_KINDS)
def test_every_alert_kind_becomes_an_action(kind: str) -> None:
    alert = AlertRaised(
        alert_id=uuid4(),
        kind=kind,
        payer_id="01312",
        reference="FCN1",
        amount=D("12.00"),
        observed_on=date(2026, 9, 14),
        detail="recouped while an appeal pauses recovery",
    )
    [message] = domain.for_alert(alert)
    assert (message.kind, message.severity) == (kind, "action")
    assert message.facts["amount"] == "12.00"


def test_deadline_reminder_window() -> None:
    deadline = domain.Deadline("r", "FCN1", "01312", "rebuttal_deadline", date(2026, 8, 18), D("300.00"))
    assert not domain.deadline_due(deadline, date(2026, 8, 12), 5)
    assert domain.deadline_due(deadline, date(2026, 8, 13), 5)
    assert domain.deadline_due(deadline, date(2026, 8, 18), 5)
    assert not domain.deadline_due(deadline, date(2026, 8, 19), 5)
    message = domain.deadline_approaching(deadline, date(2026, 8, 15))
    assert message.summary == "FCN1: rebuttal deadline in 3 days (2026-08-18), 300.00 open"


# --- digests --------------------------------------------------------------------------------------------------


def test_digest_counts_kinds_and_lists_every_item_in_a_stable_order() -> None:
    items = [
        domain.DigestItem("b", "interest_accrued", "warning", "Interest 2.88 accrued on FCN1"),
        domain.DigestItem("a", "interest_accrued", "warning", "Interest 0.72 accrued on FCN2"),
        domain.DigestItem("c", "offset_applied", "info", "Payer withheld 10.00"),
    ]
    digest = domain.compose_digest(date(2026, 8, 15), items)
    assert digest == domain.compose_digest(date(2026, 8, 15), list(reversed(items)))
    assert digest.kind == "daily_digest"
    assert digest.severity == "warning"
    assert digest.summary == "Daily summary 2026-08-15: 2 interest accrued, 1 offset applied"
    assert digest.facts["id.001"] == "a"
    assert digest.facts["count"] == "3"


# --- routing --------------------------------------------------------------------------------------------------

DOC = {
    "default": [{"channel": "webhook"}],
    "tenants": {
        "clinic-a": {
            "receivable_opened": [
                {"channel": "webhook", "target": "https://pm.example/hook"},
                {"channel": "email", "target": "ar@clinic-a.example"},
            ],
            "interest_accrued": [{"channel": "email", "target": "ar@clinic-a.example", "mode": "digest"}],
            "offset_applied": [],
        },
        "*": {"recoupment_during_pause": [{"channel": "email", "target": "compliance@billing.example"}]},
    },
}


def routes() -> Routes:
    return Routes.parse(DOC, ["webhook", "email"], "http://127.0.0.1:9/hook")


def test_routes_first_match_wins() -> None:
    r = routes()
    assert [d.channel for d in r.resolve("clinic-a", "receivable_opened")] == ["webhook", "email"]
    assert r.resolve("clinic-a", "offset_applied") == ()  # silenced
    assert r.resolve("clinic-b", "recoupment_during_pause") == (
        Destination("email", "compliance@billing.example"),
    )
    assert r.resolve("clinic-b", "offset_applied") == (Destination("webhook", "http://127.0.0.1:9/hook"),)


def test_digest_destinations_get_the_digest_immediately() -> None:
    r = routes()
    assert r.resolve("clinic-a", "daily_digest") == (Destination("email", "ar@clinic-a.example"),)
    assert r.resolve("clinic-b", "daily_digest") == ()


def test_without_a_routing_file_everything_goes_to_the_webhook_url() -> None:
    r = Routes.webhook_only("http://x/hook")
    assert r.resolve("any", "offset_applied") == (Destination("webhook", "http://x/hook"),)
    assert Routes.webhook_only(None).resolve("any", "offset_applied") == ()


@pytest.mark.parametrize(
    ("doc", "error"),
    [
        ({"tenants": {"a": {"offset_applied": [{"channel": "fax", "target": "1"}]}}}, "not installed"),
        ({"tenants": {"a": {"offset_aplied": []}}}, "unknown kind"),
        ({"tenants": {"a": {"*": [{"channel": "email", "target": "x@y", "mode": "weekly"}]}}}, "mode"),
        ({"tenants": {"a": {"*": [{"channel": "email"}]}}}, "needs a target"),
        ({"routes": {}}, "must be an object"),
    ],
)
def test_a_bad_routing_file_is_refused_at_start_up(doc: object, error: str) -> None:
    with pytest.raises(RoutingError, match=error):
        Routes.parse(doc, ["webhook", "email"], None)


def test_yaml_routing_file() -> None:
    doc = load_routes_document("default:\n  - channel: email\n    target: a@b.example\n", ".yaml")
    assert Routes.parse(doc, ["email"], None).default == (Destination("email", "a@b.example"),)


# --- delivery helpers -----------------------------------------------------------------------------------------


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    rng = random.Random(7)
    delays = [domain.backoff_delay(n, 0.2, 5.0, rng) for n in range(1, 9)]
    for n, d in enumerate(delays, start=1):
        full = min(5.0, 0.2 * 2 ** (n - 1))
        assert full / 2 <= d <= full
    assert delays[-1] <= 5.0


def test_email_text_has_the_summary_facts_and_id() -> None:
    text = domain.render_text("offset_applied", "info", "Payer withheld 1.00", {"reference": "FCN1"}, "nid-1")
    assert text.splitlines()[0] == "Payer withheld 1.00"
    assert "reference: FCN1" in text
    assert "notification id: nid-1" in text
    assert domain.subject_line("offset_applied", "info", {"reference": "FCN1"}) == (
        "[offsetstream info] offset applied FCN1"
    )
