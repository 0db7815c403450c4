"""The checker: the ledger the services wrote, read back in ``expected.json``'s shape, and the differences."""

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg


async def actual(conn: asyncpg.Connection, tenant: str) -> dict[str, Any]:
    """The same shape as one tenant of ``expected.json``, read (read-only) from matching.* and intake.*."""
    rows = await conn.fetch(
        """SELECT reference, payer_id, principal, principal_recovered, refunded, interest_accrued, status
           FROM matching.receivables WHERE tenant_id = $1""",
        tenant,
    )
    fbs = await conn.fetch(
        "SELECT reference, opened_amount, applied_amount FROM matching.forwarding_balances WHERE tenant_id = $1",
        tenant,
    )
    buckets = await conn.fetch(
        """SELECT bucket, count(*) AS n, sum(unmatched_amount) AS unmatched FROM matching.adjustments
           WHERE tenant_id = $1 GROUP BY bucket""",
        tenant,
    )
    remits = await conn.fetchrow(
        "SELECT count(*) AS n, COALESCE(sum(claim_count), 0) AS claims FROM intake.remittances WHERE tenant_id = $1",
        tenant,
    )
    return {
        "receivables": {
            r["reference"]: {
                "payer_id": r["payer_id"],
                "principal": str(r["principal"]),
                "principal_recovered": str(r["principal_recovered"]),
                "refunded": str(r["refunded"]),
                "interest_accrued": str(r["interest_accrued"]),
                "status": r["status"],
            }
            for r in rows
        },
        "forwarding_balances": {
            r["reference"]: {"opened": str(r["opened_amount"]), "applied": str(r["applied_amount"])}
            for r in fbs
        },
        "plb_pairs_by_bucket": {r["bucket"]: r["n"] for r in buckets},
        "unmatched_total": str(sum((r["unmatched"] for r in buckets), Decimal("0.00"))),
        "claim_payments": int(remits["claims"]),
        "remittances": int(remits["n"]),
    }


def differences(expected: dict[str, Any], found: dict[str, Any], path: str = "") -> list[str]:
    """Every leaf where the two differ, as ``path: expected X, found Y`` lines."""
    if isinstance(expected, dict) and isinstance(found, dict):
        out: list[str] = []
        for key in sorted(set(expected) | set(found)):
            where = f"{path}.{key}" if path else str(key)
            if key not in found:
                out.append(f"{where}: expected {json.dumps(expected[key])}, missing in the ledger")
            elif key not in expected:
                out.append(f"{where}: not expected, found {json.dumps(found[key], default=str)}")
            else:
                out += differences(expected[key], found[key], where)
        return out
    return [] if expected == found else [f"{path}: expected {expected!r}, found {found!r}"]


async def compare(conn: asyncpg.Connection, out: Path, tenant: str | None = None) -> list[str]:
    """Differences between ``out/expected.json`` and the ledger, for one tenant or every generated one."""
    expected = json.loads((out / "expected.json").read_text())["tenants"]
    problems: list[str] = []
    for tid in [tenant] if tenant else sorted(expected):
        if tid not in expected:
            return [f"{tid}: not a tenant of this feed ({', '.join(sorted(expected))})"]
        problems += differences(expected[tid], await actual(conn, tid), tid)
    return problems
