"""``offsetstream generate``: realistic synthetic payer feeds and the ledger they must produce.

Writes, for N tenants × M payers × K providers over D days, one 835 file per (tenant, payer, payment day)
holding one transaction per provider, plus each tenant's demand letters as a JSON import file, and
``expected.json``: the final ledger computed from the generator's **own plan** (what it decided to owe and to
recover), never by running our services. Comparing the two (:func:`compare`) is therefore a real check.

The plan draws every story DOMAIN.md §2 tells: reversal + lower correction with a deferred (negative) ``WO``
recovered later in full, in part or not at all; deferrals confirmed by a letter; letter-first receivables
recouped by an immediate positive ``WO`` (plain or Medicare-padded reference); duplicate payments; refunds
(``WO`` + ``72``); recoupments larger than the payment (``BPR02 = 0``, negative ``FB``, positive ``FB``
later); lump recoupments without a reference (oldest first); recoveries of unknown receivables and ``WU``
(unmatched); ``L6`` interest to the provider (non-offset); out-of-order and duplicate files.

The package: ``model`` (the vocabulary), ``plan`` (the stories and the expected ledger), ``x12`` (835 text),
``check`` (the ledger read back and compared).

Why the plan stays order-proof: the services may see one account's files in any order (a drop folder or a resent
batch does not keep it), so every story is one whose final ledger does not depend on arrival order.
Referenced recoveries never exceed their receivable; letters (the only receivables refunds, lumps and
oversized recoupments touch) are imported before any 835; lumps run only on accounts whose receivables are all
letters and never exceed what is open. Interest is kept out by construction: every recovery falls within 28
days of its receivable's determination date and ``OFFSETSTREAM_TODAY`` is pinned to the first day of the feed,
so no 30-day period ever comes due — ``expected.json`` asserts ``interest_accrued = 0.00`` for every
receivable.
"""

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

from devtools.generate.check import actual, compare, differences
from devtools.generate.model import FeedFile, Pair, Spec, npi
from devtools.generate.plan import Generator
from devtools.generate.x12 import transaction_segments, write_interchange

__all__ = [
    "FeedFile",
    "Generator",
    "Spec",
    "actual",
    "compare",
    "differences",
    "feed_order",
    "generate",
    "iter_transactions",
    "npi",
    "write_interchange",
]


def generate(spec: Spec, out: Path) -> list[FeedFile]:
    """Write a whole feed under ``out`` (manifest.json, expected.json, per-tenant 835 files and letters)."""
    out.mkdir(parents=True, exist_ok=True)
    return Generator(spec, out).plan_and_write()


def feed_order(out: Path) -> list[FeedFile]:
    """The delivery order written by :func:`generate` (letters of every tenant first)."""
    raw = json.loads((out / "manifest.json").read_text())
    return [FeedFile(**item) for item in raw["feed"]]


def iter_transactions(
    count: int, claims_per_txn: int, seed: int = 1, plb_pairs: int = 3
) -> Iterator[tuple[list[str], int]]:
    """Standalone balanced transactions for the parse benchmark: (segments, claims), one PLB segment each.

    One PLB segment with at most six pairs, because the peer reader we compare against reads no more.
    """
    gen = Generator(
        Spec(tenants=1, payers=1, providers=1, days=1, seed=seed, claims_per_remit=claims_per_txn), Path()
    )
    tenant, acct = gen.tenants[0], gen.accounts[0, 0][0]
    for n in range(count):
        when = gen.spec.start + timedelta(days=n % 28)
        claims = [gen._claim(tenant, when) for _ in range(claims_per_txn)]
        for i in range(0, claims_per_txn, 50):
            original = claims[i]
            claims.append(original.negated())
        pairs = [Pair("WO", gen._fcn(tenant, when), 1000 + n % 5000, "") for _ in range(plb_pairs - 1)]
        pairs.append(Pair("L6", None, -237, ""))
        total = sum(c.paid for c in claims) - sum(p.cents for p in pairs)
        trace = f"EFT{when:%y%m%d}{tenant.next():07d}"
        yield transaction_segments(acct, claims, pairs, trace, when, total, f"{n + 1:04d}"), len(claims)
