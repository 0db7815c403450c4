"""Payer policy by payer: the resolution order, the reason each step gives, and the Medicare contractor table.

Order (``policies.config``): tenant payer entry, ``"*"`` payer entry, ``OFFSETSTREAM_PAYER_POLICIES``
(reason ``configured``), the Medicare contractor table (``table``), tenant default, ``"*"`` default, the
commercial default (``default``). A payer nothing names is never Medicare.
"""

import json
import re
from pathlib import Path
from typing import Any

import pytest

from cli import interest_views
from devtools.generate.model import PAYERS, payer_at
from policies.config import (
    MEDICARE_CONTRACTORS,
    MedicareContractor,
    PolicyChoice,
    PolicyConfig,
    PolicyConfigError,
    PolicyResolver,
    Resolution,
    medicare_contractors,
    read_medicare_contractors,
)
from policies.payers import CommercialPolicy, MedicarePolicy
from shared import plugins
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
TABLE = {
    "01312": MedicareContractor("01312", "JE", "part_b", "Nevada", "Noridian"),
    "16013": MedicareContractor("16013", "DME A", "dme", "north-east", "Noridian", "dme"),
}
# One payer id named at every level, so removing levels one by one walks the whole order.
EVERYTHING = {
    "tenants": {
        "*": {"payers": {"01312": "tx"}, "default": "ca"},
        "clinic-a": {
            "payers": {"01312": "ny"},
            "default": {"policy": "commercial", "options": {"annual_rate": "0.12"}},
        },
    }
}


def resolution(doc: dict[str, Any], tenant: str, payer: str, **settings: Any) -> Resolution:
    return PolicyConfig.from_json(json.dumps(doc)).resolution(tenant, payer, Settings(**settings), TABLE)


def test_resolution_order_and_reasons() -> None:
    doc = json.loads(json.dumps(EVERYTHING))
    env = {"payer_policies": {"01312": "commercial"}}
    steps = []
    step = resolution(doc, "clinic-a", "01312", **env)
    steps.append((step.policy, step.reason, step.source))
    del doc["tenants"]["clinic-a"]["payers"]
    step = resolution(doc, "clinic-a", "01312", **env)
    steps.append((step.policy, step.reason, step.source))
    del doc["tenants"]["*"]["payers"]
    step = resolution(doc, "clinic-a", "01312", **env)
    steps.append((step.policy, step.reason, step.source))
    step = resolution(doc, "clinic-a", "01312")  # no OFFSETSTREAM_PAYER_POLICIES
    steps.append((step.policy, step.reason, step.source))
    step = resolution(doc, "clinic-a", "99999")  # not in the table
    steps.append((step.policy, step.reason, step.source))
    del doc["tenants"]["clinic-a"]["default"]
    step = resolution(doc, "clinic-a", "99999")
    steps.append((step.policy, step.reason, step.source))
    del doc["tenants"]["*"]["default"]
    step = resolution(doc, "clinic-a", "99999")
    steps.append((step.policy, step.reason, step.source))
    assert steps == [
        ("ny", "configured", 'OFFSETSTREAM_POLICY_CONFIG tenant "clinic-a" payer 01312'),
        ("tx", "configured", 'OFFSETSTREAM_POLICY_CONFIG tenant "*" payer 01312'),
        ("commercial", "configured", "OFFSETSTREAM_PAYER_POLICIES 01312"),
        ("medicare", "table", "Medicare contractor table: 01312 Noridian JE Part B (Nevada)"),
        ("commercial", "default", 'OFFSETSTREAM_POLICY_CONFIG tenant "clinic-a" default'),
        ("ca", "default", 'OFFSETSTREAM_POLICY_CONFIG tenant "*" default'),
        (
            "commercial",
            "default",
            "payer 99999 is in no configuration and not in the Medicare contractor table",
        ),
    ]


def test_the_medicare_table_beats_a_tenant_default_but_not_a_payer_entry() -> None:
    doc = {"tenants": {"clinic-a": {"default": "ny"}, "clinic-b": {"payers": {"01312": "commercial"}}}}
    assert resolution(doc, "clinic-a", "01312").choice == PolicyChoice("medicare")
    assert resolution(doc, "clinic-b", "01312").choice == PolicyChoice("commercial")
    # A DME contractor reads its references with the DME layout.
    dme = resolution({}, "clinic-a", "16013")
    assert (dme.choice, dme.reason) == (PolicyChoice("medicare", {"reference_layout": "dme"}), "table")


def test_an_unknown_payer_is_never_medicare() -> None:
    installed = plugins.load_plugins(plugins.PAYER_POLICIES)
    resolver = PolicyResolver(installed, Settings(), PolicyConfig())
    policy = resolver.resolve("any-tenant", "87726")
    assert isinstance(policy, CommercialPolicy) and policy.name == "commercial"
    assert policy.annual_rate is None  # no interest unless a contract says so
    assert policy.reference_layout == "plain"
    assert resolver.resolution("any-tenant", "87726").reason == "default"
    assert resolver.policy_name("any-tenant", "87726") == "commercial"  # what detection records
    # A Medicare contractor from the shipped table.
    assert isinstance(resolver.resolve("any-tenant", "04412"), MedicarePolicy)
    assert resolver.resolution("any-tenant", "04412").reason == "table"
    assert resolver.reference_layout("any-tenant", "17013").name == "dme"
    assert resolver.reference_layout("any-tenant", "00882").name == "medicare"


def test_the_retired_default_policy_variable_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OFFSETSTREAM_DEFAULT_POLICY", "medicare")
    with pytest.raises(PolicyConfigError, match="no longer read"):
        PolicyConfig.from_settings(Settings())
    assert "default_policy" not in Settings.model_fields


def test_the_shipped_table_is_well_formed_and_lists_the_contractors() -> None:
    table = medicare_contractors()
    assert table == read_medicare_contractors(MEDICARE_CONTRACTORS)
    for payer_id in ("01312", "04412", "12502", "15202", "05102", "06102", "01111", "00882"):
        assert table[payer_id].reference_layout == "medicare", payer_id
    for payer_id in ("16013", "17013", "18003", "19003"):
        assert (table[payer_id].workload, table[payer_id].reference_layout) == ("dme", "dme")
    assert all(re.fullmatch(r"\d{5}", payer_id) for payer_id in table)
    assert {c.workload for c in table.values()} == {"part_a", "part_b", "dme", "rrb"}
    # Every A/B jurisdiction is there.
    jurisdictions = {c.jurisdiction for c in table.values() if c.workload.startswith("part_")}
    assert jurisdictions == {"JE", "JF", "JH", "J5", "J6", "J8", "JN", "JJ", "JM", "JL", "JK", "J15"}


def test_the_examples_and_the_generator_use_medicare_contractors() -> None:
    table = medicare_contractors()
    examples = sorted((ROOT / "examples" / "835").glob("*.835"))
    assert examples
    for path in examples:
        ids = re.findall(r"N1\*PR\*[^*~]*\*XV\*(\d+)", path.read_text())
        assert ids and all(i in table for i in ids), path.name
    assert all(payer_id in table for payer_id, _ in PAYERS)
    many = [payer_at(i)[0] for i in range(40)]
    assert len(set(many)) == 40 and all(payer_id in table for payer_id in many)


@pytest.mark.parametrize(
    ("row", "error"),
    [
        ("1312,JE,part_b,Nevada,Noridian,medicare", "5-digit"),
        (
            "01312,JE,part_b,Nevada,Noridian,medicare\n01312,JE,part_b,Nevada,Noridian,medicare",
            "listed twice",
        ),
        ("01312,JE,part_b,Nevada,Noridian,dmee", "unknown reference layout"),
        ("01312,JE,part_c,Nevada,Noridian,medicare", "workload"),
    ],
)
def test_a_broken_table_is_an_error(tmp_path: Path, row: str, error: str) -> None:
    path = tmp_path / "contractors.csv"
    path.write_text(
        "# comment\npayer_id,jurisdiction,workload,region,contractor,reference_layout\n" + row + "\n"
    )
    with pytest.raises(PolicyConfigError, match=error):
        read_medicare_contractors(path)


def test_the_receivable_view_says_why_a_policy_applied() -> None:
    recorded = {
        "tenant_id": "clinic-a",
        "payer_id": "60054",
        "policy_applied": "commercial",
        "policy_reason": "default",
        "policy_source": "payer 60054 is in no configuration and not in the Medicare contractor table",
    }
    entry = interest_views.applied_policy(Settings(), recorded)
    assert entry == {
        "policy": "commercial",
        "policy_reason": "default",
        "policy_source": recorded["policy_source"],
        "policy_recorded": True,
    }
    assert interest_views.policy_line(entry) == f"Policy commercial (default: {recorded['policy_source']})"
    # Before interest has applied a policy, the command resolves it itself and says so.
    fresh = interest_views.applied_policy(
        Settings(), {"tenant_id": "clinic-a", "payer_id": "01312", "policy": "x"}
    )
    assert (fresh["policy"], fresh["policy_reason"], fresh["policy_recorded"]) == ("medicare", "table", False)
    assert interest_views.policy_line(fresh).endswith(
        "; not recorded by interest yet, resolved by this command)"
    )
