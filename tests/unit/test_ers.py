"""Extended repayment schedules: the staff contract, `offsetstream action ers-granted`, and the domain rules
(installments, standing, default, re-rating, and recoupment suspended while the schedule is current)."""

import json
from datetime import date, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from cli import letters, staff
from cli import main as cli
from contracts.envelope import parse_envelope
from contracts.events import RepaymentSchedule, StaffActionRecorded
from contracts.money import ZERO
from policies.facts import ErsPlan, History, Movement, ers_default_date, ers_installments
from policies.payers import MedicarePolicy, ReceivableFacts, timeline
from services.interest.domain import ers_plan, ers_review_day, ers_standing, schedule
from services.interest.ledger import next_look
from shared.ids import stable_id

D = Decimal
GRANT = ["action", "ers-granted", "FCN26080300017", "--payer", "01312", "--payee", "1234567893"]


def refund(on: date, amount: str) -> Movement:
    """An installment paid by the provider's check (matching reports it as a refund)."""
    return Movement(f"refund:{on}", on, "RefundReceived", D(amount), ZERO)


def recouped(on: date, amount: str = "50.00") -> Movement:
    return Movement(f"offset:{on}", on, "ReceivableReduced", D(amount), ZERO)


# --- the contract ----------------------------------------------------------------------------------------------


def terms(**kw: object) -> RepaymentSchedule:
    fields: dict[str, object] = {
        "installment_amount": "250.00",
        "installments": 36,
        "first_due_date": date(2026, 12, 1),
    }
    return RepaymentSchedule.model_validate({**fields, **kw})


def test_a_schedule_travels_only_with_its_kind_and_round_trips() -> None:
    action = StaffActionRecorded(
        action_id=stable_id("x"),
        kind="repayment_schedule_granted",
        payer_id="01312",
        payee_id="1234567893",
        reference="FCN1",
        effective_date=date(2026, 11, 15),
        schedule=terms(),
        entered_by="staff-7",
    )
    assert StaffActionRecorded.model_validate_json(action.model_dump_json()) == action
    assert json.loads(action.model_dump_json())["schedule"]["installment_amount"] == "250.00"
    with pytest.raises(ValidationError, match="only with, kind repayment_schedule_granted"):
        StaffActionRecorded.model_validate({**action.model_dump(), "kind": "appeal_filed"})
    with pytest.raises(ValidationError, match="only with, kind repayment_schedule_granted"):
        StaffActionRecorded.model_validate({**action.model_dump(), "schedule": None})


@pytest.mark.parametrize(
    "bad",
    [
        {"installment_amount": "0.00"},
        {"final_installment_amount": "-1.00"},
        {"installments": 0},
        {"installment_amount": 250.0},  # money is never a float
        {"frequency": "daily"},
        {"surprise": 1},
    ],
)
def test_malformed_schedules_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        terms(**bad)


# --- the command -----------------------------------------------------------------------------------------------


def test_ers_granted_parses_into_the_schedule_it_describes() -> None:
    args = cli.build_parser().parse_args(
        [
            *GRANT,
            *("--date", "2026-11-15", "--installment", "250.00", "--installments", "36"),
            *("--first-due", "2026-12-01", "--final-installment", "120.55", "--tenant", "clinic-a"),
        ]
    )
    assert (args.kind, args.reference, args.date, args.tenant) == (
        "ers-granted",
        "FCN26080300017",
        date(2026, 11, 15),
        "clinic-a",
    )
    assert staff.repayment_schedule(args) == RepaymentSchedule(
        installment_amount=D("250.00"),
        installments=36,
        first_due_date=date(2026, 12, 1),
        frequency="monthly",
        final_installment_amount=D("120.55"),
    )
    # Other actions carry no schedule.
    other = cli.build_parser().parse_args([*GRANT[:1], "appeal-filed", *GRANT[2:], "--date", "2026-11-15"])
    assert staff.repayment_schedule(other) is None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--installment", "250.00"], "needs --installments, --first-due"),
        (
            ["--installment", "250", "--installments", "3", "--first-due", "2026-11-01"],
            "before the grant date",
        ),
        (["--installment", "-5", "--installments", "3", "--first-due", "2026-12-01"], "must be positive"),
    ],
)
def test_a_malformed_grant_is_refused_before_touching_kafka(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main([*GRANT, "--date", "2026-11-15", *extra]) == 2
    assert message in capsys.readouterr().err


def test_schedule_options_on_another_action_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["action", "write-off", *GRANT[2:], "--date", "2026-11-15", "--installments", "3"]
    assert cli.main(argv) == 2
    assert "--installments only apply to ers-granted" in capsys.readouterr().err


def test_the_grant_event_has_a_deterministic_id_that_covers_its_terms() -> None:
    def event(schedule: RepaymentSchedule) -> tuple[str, bytes]:
        return letters.action_event(
            "repayment_schedule_granted",
            tenant_id="clinic-a",
            payer_id="01312",
            payee_id="1234567893",
            reference=" FCN1 ",
            effective=date(2026, 11, 15),
            entered_by="staff-7",
            schedule=schedule,
        )

    key, raw = event(terms())
    env = parse_envelope(raw, StaffActionRecorded)
    again = parse_envelope(event(terms())[1], StaffActionRecorded)
    corrected = parse_envelope(event(terms(installment_amount="260.00"))[1], StaffActionRecorded)
    assert env.event_type == "RepaymentScheduleGranted"
    assert (env.payload.reference, env.payload.schedule) == ("FCN1", terms())
    assert env.event_id == again.event_id == env.payload.action_id  # entered twice: one fact
    assert corrected.event_id != env.event_id  # a corrected grant is a new fact
    assert key == env.account_key


# --- installments and standing ---------------------------------------------------------------------------------


def test_monthly_installments_keep_their_day_and_the_last_may_differ() -> None:
    plan = ers_plan(date(2026, 1, 10), date(2026, 1, 31), D("100.00"), 4, final_amount=D("40.00"))
    assert plan.installments == (
        (date(2026, 1, 31), D("100.00")),
        (date(2026, 2, 28), D("100.00")),  # clamped, and March is back on the 31st
        (date(2026, 3, 31), D("100.00")),
        (date(2026, 4, 30), D("40.00")),
    )
    biweekly = ers_plan(date(2026, 1, 10), date(2026, 2, 1), D("50.00"), 3, "biweekly")
    assert [due for due, _ in biweekly.installments] == [
        date(2026, 2, 1),
        date(2026, 2, 15),
        date(2026, 3, 1),
    ]
    with pytest.raises(ValueError, match="at least one installment"):
        ers_plan(date(2026, 1, 10), date(2026, 2, 1), D("50.00"), 0)


PLAN = ErsPlan(date(2026, 6, 20), tuple((date(2026, m, 1), D("100.00")) for m in range(7, 11)))


def test_installments_are_paid_missed_or_open_as_of_a_day() -> None:
    payments = [refund(date(2026, 6, 28), "150.00"), refund(date(2026, 8, 15), "20.00")]
    # July paid (50 carried), August short (only the 50 carried: the 20 of 15 August falls in September's
    # window), as of 1 September: September still open, 20 towards it.
    states = ers_installments(PLAN, payments, as_of=date(2026, 9, 1))
    assert [(s.due.month, s.paid, s.status) for s in states] == [
        (7, D("100.00"), "paid"),
        (8, D("50.00"), "missed"),
        (9, D("20.00"), "open"),
        (10, ZERO, "open"),
    ]
    # One missed installment is not a default; the second one is, the day after it was due.
    assert ers_standing(PLAN, payments, date(2026, 9, 1)) == ("current", None)
    assert ers_default_date(PLAN, payments, as_of=date(2026, 9, 1)) is None
    assert ers_default_date(PLAN, payments, as_of=date(2026, 9, 2)) == date(2026, 9, 2)
    assert ers_standing(PLAN, payments, date(2026, 10, 5)) == ("in_default", date(2026, 9, 2))
    paid_up = [refund(date(2026, m, 1), "100.00") for m in range(7, 11)]
    assert ers_standing(PLAN, paid_up, date(2026, 10, 1)) == ("completed", None)


def test_the_tick_reviews_a_schedule_the_day_after_each_installment() -> None:
    assert ers_review_day(PLAN, date(2026, 6, 20)) == date(2026, 7, 2)
    assert ers_review_day(PLAN, date(2026, 7, 2)) == date(2026, 8, 2)
    assert ers_review_day(PLAN, date(2026, 10, 2)) is None


# --- the Medicare policy ---------------------------------------------------------------------------------------


def test_default_rerates_only_periods_due_after_it_and_only_once_it_has_happened() -> None:
    # Determined 2023-05-15 at 10.00 %; ERS granted 06-01: 100.00 on the 1st of each month from July.
    # July paid on 06-28 (8.33 interest first, 91.67 principal), August and September missed → default on
    # 09-02, when the table says 11.50 %: periods due 09-13 and 10-13 are re-rated, the earlier ones are not.
    det = date(2023, 5, 15)
    plan = ers_plan(date(2023, 6, 1), date(2023, 7, 1), D("100.00"), 10)
    paid = Movement("r1", date(2023, 6, 28), "RefundReceived", D("91.67"), D("8.33"))
    history = History(D("1000.00"), (paid,), ())
    on_time = ReceivableFacts(det, history, ers=plan, as_of=date(2023, 9, 1))
    assert on_time.ers_default is None  # the second miss is not known yet on 1 September
    facts = ReceivableFacts(det, history, ers=plan, as_of=date(2023, 10, 20))
    assert facts.ers_default == date(2023, 9, 2)
    terms_ = MedicarePolicy().interest_terms(facts)
    assert terms_ is not None
    periods = schedule(det, history, terms_, date(2023, 10, 20))
    assert [(p.due, p.basis, p.rate, p.amount) for p in periods] == [
        (date(2023, 6, 15), D("1000.00"), D("0.10000"), D("8.33")),  # 1000 × 0.10 / 12 = 8.333
        (date(2023, 7, 15), D("908.33"), D("0.10000"), D("7.57")),  # 908.33 × 0.10 / 12 = 7.569
        (date(2023, 8, 14), D("908.33"), D("0.10000"), D("7.57")),
        (date(2023, 9, 13), D("908.33"), D("0.11500"), D("8.70")),  # 908.33 × 0.115 / 12 = 8.705
        (date(2023, 10, 13), D("908.33"), D("0.11500"), D("8.70")),
    ]


def test_recoupment_does_not_start_while_the_schedule_is_current() -> None:
    # DOMAIN.md §3: day 41 recoupment starts unless an ERS is granted; it may start once the ERS defaults.
    det = date(2026, 3, 2)
    policy = MedicarePolicy()
    plan = ErsPlan(
        det + timedelta(days=20), tuple((det + timedelta(days=30 * k), D("100.00")) for k in (2, 3, 4))
    )
    current = ReceivableFacts(det, History(D("500.00"), (), ()), ers=plan, as_of=det + timedelta(days=61))
    labels = dict(timeline(policy, current))
    assert "recoupment_start" not in labels and labels["ers_granted"] == det + timedelta(days=20)
    [violation] = policy.check_recoupment(current, recouped(det + timedelta(days=50)))
    assert (violation.kind, violation.rule) == ("recoupment_rule_violation", "ers_current")
    # Two installments missed (days 60 and 90): in default from day 91, recoupment may start then.
    defaulted = ReceivableFacts(det, History(D("500.00"), (), ()), ers=plan, as_of=det + timedelta(days=100))
    labels = dict(timeline(policy, defaulted))
    assert labels["ers_defaulted"] == labels["recoupment_start"] == det + timedelta(days=91)
    assert policy.check_recoupment(defaulted, recouped(det + timedelta(days=95))) == []
    assert [v.rule for v in policy.check_recoupment(defaulted, recouped(det + timedelta(days=50)))] == [
        "ers_current"
    ]
    # A recoupment before the grant is judged as without a schedule: before day 41 it is too early.
    assert [v.rule for v in policy.check_recoupment(current, recouped(det + timedelta(days=19)))] == [
        "too_early"
    ]


def test_the_tick_looks_again_on_the_day_an_installment_can_be_missed() -> None:
    # Period 2 of a 2023-05-15 debt is due 07-15; the July installment can turn out missed on 07-02, so the
    # tick looks then (a default shows the day it happens). Once in default, only periods matter again.
    det = date(2023, 5, 15)
    plan = ers_plan(date(2023, 6, 1), date(2023, 7, 1), D("100.00"), 10)
    owed = History(D("1000.00"), (), ())
    facts = ReceivableFacts(det, owed, ers=plan, as_of=date(2023, 6, 20))
    terms_ = MedicarePolicy().interest_terms(facts)
    assert next_look(facts, terms_, date(2023, 6, 20)) == date(2023, 7, 2)
    defaulted = ReceivableFacts(det, owed, ers=plan, as_of=date(2023, 9, 5))
    assert defaulted.ers_default == date(2023, 8, 2)
    assert next_look(defaulted, terms_, date(2023, 9, 5)) == date(2023, 9, 13)
    assert next_look(ReceivableFacts(det, owed), terms_, date(2023, 6, 20)) == date(2023, 7, 15)
