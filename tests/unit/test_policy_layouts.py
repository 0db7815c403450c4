"""Payers map to policies per tenant for every part of a policy: detection and matching read a payer's PLB
references with the layout of the policy configured for *that tenant's* payer, through the same
configuration (``OFFSETSTREAM_POLICY_CONFIG``) the interest stage uses, with ``OFFSETSTREAM_PAYER_POLICIES``
as the fallback."""

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from contracts.events import ProviderAdjustmentReceived
from policies import config as policy_config
from policies.config import PolicyConfigError, PolicyResolver
from services.detection.engine import Detector
from services.detection.store import DetectionStore
from services.matching.domain import read_reference
from services.matching.ledger import build_stage
from services.matching.memory import InMemoryMatchingRepository
from shared import plugins
from shared.settings import Settings

PAYER = "16013"
# A DME contractor fills FCN positions 1–14 and puts the adjustment claim number right after it.
DME_REFERENCE = "12345678901234ADJ0000000000001"
CONFIG = {
    "tenants": {
        "clinic-a": {"payers": {PAYER: {"policy": "medicare", "options": {"reference_layout": "dme"}}}},
        "clinic-b": {"payers": {PAYER: "medicare"}},
    }
}


@pytest.fixture
def policies(tmp_path: Path) -> PolicyResolver[Any]:
    """What a stage builds at start-up from OFFSETSTREAM_POLICY_CONFIG and OFFSETSTREAM_PAYER_POLICIES."""
    path = tmp_path / "policies.json"
    path.write_text(json.dumps(CONFIG))
    settings = Settings(policy_config=path, payer_policies={PAYER: "commercial"})
    return policy_config.resolver(settings)


def deferral(reference: str) -> ProviderAdjustmentReceived:
    """A negative WO: the payer defers recovering an overpayment; detection opens the receivable."""
    return ProviderAdjustmentReceived(
        remittance_id=uuid4(),
        payer_id=PAYER,
        trace_number="EFT1",
        payment_date=date(2026, 8, 3),
        segment_ordinal=40,
        pair_index=1,
        provider_identifier="1234567893",
        fiscal_period_date=date(2026, 12, 31),
        reason_code="WO",
        reference=reference,
        amount=Decimal("-300.00"),
    )


def test_same_payer_different_tenants_different_layouts_in_detection(policies: PolicyResolver[Any]) -> None:
    rules = plugins.load_plugins(plugins.DETECTION_RULES)
    detection = Detector(Settings(), policies, DetectionStore(), rules)
    # Step: clinic-a's contract reads the payer as DME (FCN 1–14), clinic-b's as Medicare (FCN 1–19).
    [dme] = detection.adjustment_evidence("clinic-a", deferral(DME_REFERENCE))
    [medicare] = detection.adjustment_evidence("clinic-b", deferral(DME_REFERENCE))
    assert (dme.reference, medicare.reference) == ("12345678901234", DME_REFERENCE[:19])
    # Step: the policy named on the receivable follows the same choice; clinic-c has no entry, so
    # OFFSETSTREAM_PAYER_POLICIES decides.
    assert [detection.policies.policy_name(t, PAYER) for t in ("clinic-a", "clinic-b", "clinic-c")] == [
        "medicare",
        "medicare",
        "commercial",
    ]


def test_same_payer_different_tenants_different_layouts_in_matching(policies: PolicyResolver[Any]) -> None:
    matching = build_stage(Settings(), policies, InMemoryMatchingRepository())
    a = read_reference(matching.policies, "clinic-a", PAYER, DME_REFERENCE)
    b = read_reference(matching.policies, "clinic-b", PAYER, DME_REFERENCE)
    assert (a.receivable, a.secondary) == ("12345678901234", "ADJ000000000000")
    assert (b.receivable, b.secondary) == (DME_REFERENCE[:19], DME_REFERENCE[19:])
    # The recoupment is looked up first by the key detection opened the receivable under.
    assert a.candidates(DME_REFERENCE)[0] == ("reference", "12345678901234")
    # Fallback: a tenant without an entry uses OFFSETSTREAM_PAYER_POLICIES (commercial: plain layout).
    padded = "FCN26080300017".ljust(19) + "PCN1001"
    assert read_reference(matching.policies, "clinic-c", PAYER, padded).receivable == padded
    assert read_reference(matching.policies, "clinic-b", PAYER, padded).receivable == "FCN26080300017"


def test_a_layout_no_one_defines_stops_start_up(tmp_path: Path) -> None:
    path = tmp_path / "policies.json"
    path.write_text(
        json.dumps(
            {
                "tenants": {
                    "t": {"payers": {PAYER: {"policy": "medicare", "options": {"reference_layout": "dmee"}}}}
                }
            }
        )
    )
    with pytest.raises(PolicyConfigError, match="unknown reference layout 'dmee'"):
        policy_config.resolver(Settings(policy_config=path))


def test_stages_resolve_through_the_configuration_named_in_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "policies.json"
    path.write_text(json.dumps(CONFIG))
    monkeypatch.setenv("OFFSETSTREAM_POLICY_CONFIG", str(path))
    assert Settings().policy_config == path
    assert policy_config.PolicyConfig.from_env() == policy_config.PolicyConfig.from_json(json.dumps(CONFIG))
