"""Payer policies: timelines, recoupment rules of the Medicare/NY/CA/TX packs, configuration, layouts."""

import json
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from contracts.money import ZERO
from contracts.references import LAYOUTS, ReferenceLayout
from policies.config import PolicyConfig, PolicyConfigError, PolicyResolver
from policies.facts import History, Movement, Pause, add_months
from policies.payers import (
    CaliforniaPolicy,
    CommercialPolicy,
    MedicarePolicy,
    NewYorkPolicy,
    PayerPolicy,
    PolicyOptionError,
    ReceivableFacts,
    TexasPolicy,
    add_working_days,
    timeline,
)
from shared import plugins
from shared.settings import Settings

D = Decimal
DET = date(2026, 3, 2)  # a Monday


def recouped(on: date, amount: str = "100.00", key: str = "r1") -> Movement:
    return Movement(key, on, "ReceivableReduced", D(amount), ZERO)


def facts(*moves: Movement, pauses: tuple[Pause, ...] = (), **kw: object) -> ReceivableFacts:
    return ReceivableFacts(DET, History(D("500.00"), moves, pauses), **kw)  # type: ignore[arg-type]


def rules(policy: PayerPolicy, f: ReceivableFacts, move: Movement) -> list[str]:
    return [v.rule for v in policy.check_recoupment(f, move)]


def test_every_builtin_is_registered_as_a_plugin_and_implements_the_interface() -> None:
    found = plugins.load_plugins(plugins.PAYER_POLICIES)
    assert set(found) >= {"medicare", "commercial", "ny", "ca", "tx"}
    for name, policy in found.items():
        assert isinstance(policy, PayerPolicy)
        assert policy.name == name
        assert policy.reference_layout in LAYOUTS


def test_medicare_timeline() -> None:
    # Day 15 rebuttal, day 30 last day without interest, day 31 interest, day 41 recoupment, and the
    # redetermination deadline: 120 days from receipt, receipt presumed 5 days after the notice (day 125).
    det = date(2026, 8, 3)
    assert timeline(MedicarePolicy(), ReceivableFacts(det)) == [
        ("determination", det),
        ("rebuttal_deadline", date(2026, 8, 18)),
        ("pay_without_interest_by", date(2026, 9, 2)),
        ("interest_start", date(2026, 9, 3)),
        ("recoupment_start", date(2026, 9, 13)),
        ("appeal_deadline", date(2026, 12, 6)),
    ]


def test_an_overpayment_the_provider_identified_is_due_back_60_days_after_identification() -> None:
    """42 CFR 401.305: report and return within 60 days of identification (Medicare's pack; a commercial
    contract sets its own, if any)."""
    found = ReceivableFacts(date(2026, 9, 1), identified_on=date(2026, 9, 1))
    assert ("report_and_return_deadline", date(2026, 10, 31)) in MedicarePolicy().timeline(found)
    assert not [m for m in MedicarePolicy().timeline(ReceivableFacts(date(2026, 9, 1))) if "return" in m[0]]
    assert not [m for m in CommercialPolicy().timeline(found) if "return" in m[0]]
    contract = CommercialPolicy().configured({"return_within_days_of_identification": 90})
    assert ("report_and_return_deadline", date(2026, 11, 30)) in contract.timeline(found)


def test_medicare_recoupment_rules() -> None:
    policy = MedicarePolicy()
    assert rules(policy, facts(), recouped(DET + timedelta(days=40))) == ["too_early"]
    assert rules(policy, facts(), recouped(DET + timedelta(days=41))) == []
    paused = facts(pauses=(Pause(DET + timedelta(days=35), None),))
    [violation] = policy.check_recoupment(paused, recouped(DET + timedelta(days=60)))
    assert (violation.kind, violation.rule) == ("recoupment_during_pause", "appeal_pause")


def test_new_york_pack() -> None:
    policy = NewYorkPolicy()
    paid = date(2024, 1, 15)
    f = facts(paid_on=paid)
    assert ("recoupment_start", date(2026, 4, 1)) in timeline(policy, f)  # 30 days after the notice
    assert ("recovery_lookback_limit", date(2026, 1, 15)) in timeline(policy, f)  # 24 months after payment
    early = recouped(DET + timedelta(days=29))
    assert rules(policy, facts(early, paid_on=date(2025, 1, 15)), early) == ["too_early"]
    # Duplicates need no notice.
    assert rules(policy, facts(early, paid_on=date(2025, 1, 15), duplicate=True), early) == []
    # Recovery begun more than 24 months after payment: flagged on the first recoupment only.
    first, second = recouped(DET + timedelta(days=30), key="a"), recouped(DET + timedelta(days=60), key="b")
    late = facts(first, second, paid_on=paid)
    assert rules(policy, late, first) == ["too_late"]
    assert rules(policy, late, second) == []


def test_california_pack_counts_working_days_and_needs_the_contract() -> None:
    # 30 working days after Monday 2026-03-02 is Monday 2026-04-13; with César Chávez Day (03-31) off, 04-14.
    assert add_working_days(DET, 30) == date(2026, 4, 13)
    policy = CaliforniaPolicy()
    assert ("contest_deadline", date(2026, 4, 13)) in timeline(policy, facts())
    with_holiday = policy.configured({"holidays": ["2026-03-31"]})
    assert ("contest_deadline", date(2026, 4, 14)) in timeline(with_holiday, facts())
    # Offset is a violation unless the payer's contract allows it (per-payer configuration).
    on_time = recouped(date(2026, 4, 14))
    assert rules(policy, facts(on_time), on_time) == ["offset_not_allowed"]
    allowed = policy.configured({"offset_allowed": True})
    assert rules(allowed, facts(on_time), on_time) == []
    assert rules(allowed, facts(), recouped(date(2026, 4, 13))) == ["too_early"]
    # Written request more than 365 days after payment.
    assert rules(allowed, facts(paid_on=date(2025, 3, 1)), on_time) == ["late_notice"]


def test_texas_pack_waits_for_the_later_of_day_45_and_the_end_of_the_appeal() -> None:
    policy = TexasPolicy()
    assert ("appeal_deadline", date(2026, 4, 16)) in timeline(policy, facts())
    assert ("recoupment_start", date(2026, 4, 16)) in timeline(policy, facts())
    appeal = (Pause(date(2026, 4, 1), date(2026, 5, 10)),)
    assert ("recoupment_start", date(2026, 5, 10)) in timeline(policy, facts(pauses=appeal))
    assert rules(policy, facts(), recouped(date(2026, 4, 15))) == ["too_early"]
    during = recouped(date(2026, 5, 1))
    assert rules(policy, facts(pauses=appeal), during) == ["appeal_pause"]
    assert rules(policy, facts(pauses=appeal), recouped(date(2026, 5, 10))) == []
    assert rules(policy, facts(paid_on=date(2025, 9, 1)), recouped(date(2026, 4, 20))) == ["late_notice"]


def test_commercial_default_charges_no_interest_unless_configured() -> None:
    plain = ReceivableFacts(DET, History(D("1000.00"), (), ()))
    assert CommercialPolicy().interest_terms(plain) is None
    assert [label for label, _ in timeline(CommercialPolicy(), plain)] == ["determination"]
    contract = CommercialPolicy().configured({"annual_rate": "0.12", "partial_period_as_full": True})
    terms = contract.interest_terms(plain)
    assert terms is not None and (terms.annual_rate, terms.partial_period_as_full) == (D("0.12"), True)


def test_options_are_checked() -> None:
    with pytest.raises(PolicyOptionError, match="no option 'anual_rate'"):
        CommercialPolicy().configured({"anual_rate": "0.12"})
    with pytest.raises(PolicyOptionError, match="cannot be float"):
        CommercialPolicy().configured({"annual_rate": 0.12})
    with pytest.raises(PolicyOptionError, match="cannot be str"):
        CommercialPolicy().configured({"offset_allowed": "yes"})


def test_configuration_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = {
        "tenants": {
            "*": {"payers": {"87726": "ny"}},
            "clinic-a": {
                "default": {"policy": "commercial", "options": {"annual_rate": "0.12"}},
                "payers": {"00431": {"policy": "ca", "options": {"offset_allowed": True}}, "87726": "tx"},
            },
        }
    }
    path = tmp_path / "policies.json"
    path.write_text(json.dumps(doc))
    monkeypatch.setenv("OFFSETSTREAM_POLICY_CONFIG", str(path))
    settings = Settings(payer_policies={"60054": "ny"})
    resolver = PolicyResolver(plugins.load_plugins(plugins.PAYER_POLICIES), settings, PolicyConfig.from_env())
    ca = resolver.resolve("clinic-a", "00431")
    assert ca.name == "ca" and isinstance(ca, CaliforniaPolicy) and ca.offset_allowed
    assert resolver.resolve("clinic-a", "87726").name == "tx"  # tenant entry beats "*"
    assert resolver.resolve("clinic-b", "87726").name == "ny"
    assert resolver.resolve("clinic-b", "60054").name == "ny"  # Settings.payer_policies
    assert resolver.resolve("clinic-a", "01312").name == "medicare"  # the Medicare table beats the default
    default = resolver.resolve("clinic-a", "99999")
    assert isinstance(default, CommercialPolicy) and default.annual_rate == D("0.12")
    fallback = resolver.resolve("clinic-b", "99999")  # named nowhere: the commercial default, never Medicare
    assert isinstance(fallback, CommercialPolicy) and fallback.annual_rate is None


def test_configuration_errors_stop_start_up() -> None:
    installed = plugins.load_plugins(plugins.PAYER_POLICIES)
    bad = PolicyConfig.from_json('{"tenants": {"t": {"payers": {"1": "nj"}}}}')
    with pytest.raises(PolicyConfigError, match="'nj' is not installed"):
        PolicyResolver(installed, Settings(), bad)
    with pytest.raises(PolicyConfigError, match="not a valid policy configuration"):
        PolicyConfig.from_json('{"tenants": {"t": {"payers": {"1": {"options": {}}}}}}')
    resolver = PolicyResolver(installed, Settings(payer_policies={"1": "no-such-policy"}), PolicyConfig())
    with pytest.raises(PolicyConfigError):
        resolver.resolve("t", "1")


def test_reference_layouts() -> None:
    # One table of layouts in contracts.references serves detection, matching and the policies.
    medicare, dme, plain = LAYOUTS["medicare"], LAYOUTS["dme"], LAYOUTS["plain"]

    def split(layout: ReferenceLayout, raw: str | None) -> tuple[str | None, str | None]:
        parsed = layout.parse(raw)
        return parsed.receivable, parsed.secondary

    assert split(medicare, "FCN26080300017".ljust(19) + "PCN-0042") == ("FCN26080300017", "PCN-0042")
    assert split(medicare, "FCN26080300017") == ("FCN26080300017", None)
    # Not padded: the FCN field is 19 positions, so the rest is the patient control number (never a key).
    assert split(medicare, "A" * 19 + "PCN0042") == ("A" * 19, "PCN0042")
    assert split(medicare, "FCN26080300017 PCN-0042") == ("FCN26080300017", "PCN-0042")
    assert split(medicare, "A" * 19) == ("A" * 19, None)
    # DME contractors fill positions 1–14, so a DME reference is split by position, padded or not.
    assert split(dme, "12345678901234ADJ0000000000001") == ("12345678901234", "ADJ000000000000")
    assert split(dme, "1234567890".ljust(14) + "ADJ99") == ("1234567890", "ADJ99")
    assert split(plain, "FCN26080300017".ljust(19) + "PCN-0042") == ("FCN26080300017     PCN-0042", None)
    assert split(plain, None) == (None, None)


def test_add_months_clamps_to_month_end() -> None:
    assert add_months(date(2024, 2, 29), 24) == date(2026, 2, 28)
    assert add_months(date(2025, 11, 30), 3) == date(2026, 2, 28)


def test_the_example_configuration_is_valid() -> None:
    example = Path(__file__).resolve().parents[2] / "policies" / "data" / "policy_config.example.json"
    config = PolicyConfig.from_json(example.read_text())
    resolver = PolicyResolver(plugins.load_plugins(plugins.PAYER_POLICIES), Settings(), config)
    assert resolver.resolve("clinic-a", "16013").reference_layout == "dme"
