"""``offsetstream phi relearn [--tenant T]``: rebuild what notification knows of patient control numbers under
the current ``OFFSETSTREAM_PHI_KEY``.

Notification masks an account's patient control numbers in everything it sends by comparing keyed digests
(``shared.phi``). Digests made under another key (a rotated key, or a ledger that learnt before digests were
keyed) match nothing, so until they are rebuilt those numbers would go out unmasked wherever a payer's free text
carries one. The numbers themselves are kept in one place, detection's claim history (``detection.claims``:
every claim's CLP01, which is also where an overpayment's numbers come from), so this command reads them there
and writes their digests, under the key it is given, through notification's own store (the same statement the
learning agent uses, which also moves each account's token generation so queued deliveries are scanned again).

Run it with the owner login (``OFFSETSTREAM_DATABASE_URL``), with intake and notification stopped and the new key
set for all three: a notification still running could learn a digest under the old key after the rebuild, and an
intake still running would publish them. One transaction per tenant: its old digests go and the new ones come
together, so a tenant is never left with neither.
"""

import argparse
import asyncio
import sys
from dataclasses import dataclass
from typing import Any

import asyncpg

from cli import options
from services.notification.rows import LearntToken
from services.notification.store import NotificationStore
from shared import db, phi
from shared.settings import get_settings

PAGE = 5_000
"""Claims read per round trip: bounds memory whatever the history's size."""


@dataclass(frozen=True)
class Relearnt:
    """What one tenant's rebuild did."""

    tenant_id: str
    dropped: int
    learnt: int


async def relearn(conn: asyncpg.Connection, tenant_id: str) -> Relearnt:
    """Replace the tenant's stored digests with those of its claims' patient control numbers under the
    configured key (``shared.phi.configure_key`` must have run)."""
    store = NotificationStore()
    async with conn.transaction():
        dropped = await conn.fetchval(
            """WITH gone AS (DELETE FROM notification.sensitive_tokens WHERE tenant_id = $1 RETURNING 1)
               SELECT count(*) FROM gone""",
            tenant_id,
        )
        learnt = 0
        cursor = conn.cursor(
            """SELECT DISTINCT account_key, patient_control_number FROM detection.claims
               WHERE tenant_id = $1 AND patient_control_number <> ''
               ORDER BY account_key, patient_control_number""",
            tenant_id,
        )
        page: list[tuple[str, str]] = []
        async for row in cursor:
            page.append((row["account_key"], row["patient_control_number"]))
            if len(page) >= PAGE:
                learnt += await _learn(conn, store, tenant_id, page)
                page = []
        learnt += await _learn(conn, store, tenant_id, page)
    return Relearnt(tenant_id, int(dropped), learnt)


async def _learn(
    conn: asyncpg.Connection, store: NotificationStore, tenant_id: str, page: list[tuple[str, str]]
) -> int:
    by_account: dict[str, list[str]] = {}
    for account, number in page:
        by_account.setdefault(account, []).append(number)
    tokens = [
        LearntToken(tenant_id, account, kind, n, d, a)
        for account, numbers in by_account.items()
        for kind, n, d, a in phi.shaped_token_rows("id", numbers)
    ]
    await store.add_tokens(conn, tokens)
    return len(tokens)


async def _run(args: argparse.Namespace) -> int:
    settings = get_settings()
    try:
        phi.configure_key(settings.phi_key)
    except phi.PhiKeyError as exc:
        print(f"offsetstream phi relearn: {exc}", file=sys.stderr)
        return 2
    conn = await db.connect(settings)
    try:
        tenants = (
            [args.tenant]
            if args.tenant
            else [r["tenant_id"] for r in await conn.fetch("SELECT DISTINCT tenant_id FROM detection.claims")]
        )
        learnt = await conn.fetchval("SELECT count(*) FROM notification.sensitive_tokens")
        if not tenants and learnt:
            # A login that sees no claims (row-level security) would otherwise "relearn" nothing, quietly.
            print(
                "offsetstream phi relearn: no claims visible but notification holds digests; run it with the "
                "owner login (OFFSETSTREAM_DATABASE_URL)",
                file=sys.stderr,
            )
            return 1
        for tenant in sorted(tenants):
            done = await relearn(conn, tenant)
            print(
                f"{done.tenant_id}: {done.dropped} digests dropped, {done.learnt} learnt under the current key"
            )
    finally:
        await conn.close()
    return 0


def add_parser(sub: Any) -> None:
    """``phi relearn``."""
    phi_parser = sub.add_parser(
        "phi", help="PHI digests: rebuild them under the current OFFSETSTREAM_PHI_KEY"
    )
    phi_parser.add_argument("phi_action", choices=["relearn"])
    phi_parser.add_argument(
        "--tenant",
        type=options.tenant_id,
        default=None,
        help="one tenant (default: every tenant with claims)",
    )


def run(args: argparse.Namespace) -> int:
    """Dispatch ``phi`` (one action today)."""
    return asyncio.run(_run(args))
