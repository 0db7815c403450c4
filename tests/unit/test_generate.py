"""The load generator: same seed, same bytes; every file parses and balances; the plan keeps its promises.

The plan's promises are what make ``expected.json`` a fair oracle: nothing recovered beyond what is owed,
statuses that follow from the amounts, forwarding balances never applied beyond what was opened, and PLB
counts that add up to what the files really hold.
"""

import hashlib
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest
from x12_builder import parse_all, remittances

from cli import letters
from devtools.generate import (
    Spec,
    differences,
    feed_order,
    generate,
    iter_transactions,
    npi,
    write_interchange,
)
from services.intake.feeds import FeedError, ParsedRemittance
from services.intake.x12 import X12Parser

SPEC = Spec(tenants=2, payers=2, providers=3, days=45, seed=11, claims_per_remit=6)


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("feed")
    generate(SPEC, out)
    return out


def test_same_seed_same_bytes_other_seed_other_bytes(feed: Path, tmp_path: Path) -> None:
    generate(SPEC, tmp_path / "again")
    generate(Spec(**{**SPEC.__dict__, "seed": 12}), tmp_path / "other")
    assert tree_digest(tmp_path / "again") == tree_digest(feed)
    assert tree_digest(tmp_path / "other") != tree_digest(feed)


def test_every_file_parses_balances_and_matches_the_plan(feed: Path) -> None:
    expected = json.loads((feed / "expected.json").read_text())["tenants"]
    seen: dict[str, dict[str, int]] = {t: {"claims": 0, "pairs": 0, "remits": 0} for t in expected}
    parser = X12Parser()
    for item in feed_order(feed):
        if item.kind != "835" or ".resent." in item.path:
            continue
        content = (feed / item.path).read_bytes()
        sha = hashlib.sha256(content).hexdigest()
        results = list(parser.parse(content, file_name=item.path, file_sha256=sha, tenant_id=item.tenant))
        assert not [str(r) for r in results if isinstance(r, FeedError)], item.path
        for result in results:
            assert isinstance(result, ParsedRemittance)
            assert not result.warnings, (item.path, result.warnings)
            paid = sum((c.paid for c in result.claims), Decimal(0))
            withheld = sum((a.amount for a in result.adjustments), Decimal(0))
            assert paid - withheld == result.remittance.total_paid >= 0
            seen[item.tenant]["claims"] += len(result.claims)
            seen[item.tenant]["pairs"] += len(result.adjustments)
            seen[item.tenant]["remits"] += 1
    for tenant, figures in expected.items():
        assert seen[tenant] == {
            "claims": figures["claim_payments"],
            "pairs": sum(figures["plb_pairs_by_bucket"].values()),
            "remits": figures["remittances"],
        }


def test_the_plan_keeps_its_promises(feed: Path) -> None:
    raw = json.loads((feed / "expected.json").read_text())
    order = feed_order(feed)
    assert [f.kind for f in order[: SPEC.tenants]] == ["letters"] * SPEC.tenants  # letters come first
    listed = {f.path for f in order}
    assert {str(p.relative_to(feed)) for p in feed.rglob("*.835")} == listed - {
        f.path for f in order if f.kind == "letters"
    }
    assert any(".resent." in p for p in listed)  # duplicate deliveries are part of the feed
    statuses: set[str] = set()
    for tenant, figures in raw["tenants"].items():
        recs = figures["receivables"]
        for ref, rec in recs.items():
            principal, recovered = Decimal(rec["principal"]), Decimal(rec["principal_recovered"])
            assert Decimal(0) < principal and Decimal(0) <= recovered <= principal, ref
            assert Decimal(rec["refunded"]) in (Decimal(0), principal)
            assert rec["interest_accrued"] == "0.00"
            status = (
                ("refunded" if Decimal(rec["refunded"]) else "settled")
                if recovered == principal
                else ("partially_recovered" if recovered else "open")
            )
            assert rec["status"] == status, ref
            statuses.add(status)
        for ref, fb in figures["forwarding_balances"].items():
            assert Decimal(0) <= Decimal(fb["applied"]) <= Decimal(fb["opened"]), ref
        entered = letters.read_import(feed / tenant / "letters.json")
        assert {e.fcn for e in entered} <= set(recs)
        assert all(Decimal(recs[e.fcn]["principal"]) == e.amount for e in entered)
        assert Decimal(figures["unmatched_total"]) > 0
    assert statuses == {"open", "partially_recovered", "settled", "refunded"}


def test_checker_reports_each_difference() -> None:
    want = {"receivables": {"A": {"status": "open"}, "B": {"status": "settled"}}, "unmatched_total": "1.00"}
    got = {"receivables": {"A": {"status": "settled"}, "C": {"status": "open"}}, "unmatched_total": "1.00"}
    assert differences(want, got, "t") == [
        "t.receivables.A.status: expected 'open', found 'settled'",
        't.receivables.B: expected {"status": "settled"}, missing in the ledger',
        't.receivables.C: not expected, found {"status": "open"}',
    ]


def test_bench_transactions_are_balanced_and_npis_valid() -> None:
    buffer = io.StringIO()
    txns = list(iter_transactions(3, 20))
    write_interchange(buffer, "01312", "000000001", SPEC.start, [[t for t, _ in txns]])
    parsed = remittances(parse_all(buffer.getvalue()))
    assert [len(r.claims) for r in parsed] == [n for _, n in txns]
    assert len(npi(1)) == 10
    assert npi(1) != npi(2)
