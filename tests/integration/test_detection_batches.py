"""Detection applies a batch of claims set-based: a constant number of statements whatever the batch's size, and
the same ledger as one claim at a time (each claim sees the batch's claims before it, not those after; the first
correction in order pairs a reversal; a poison claim costs only itself). The evidence a batch finds is recorded
set-based too: receivables joined, opened and merged (merges chaining within the batch) exactly as one input at a
time would, in a constant number of statements."""

import json
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from harness import counted_batch, intake_files, other_claim, remit_claims
from x12_builder import Adj, Claim, Service

from cli import letters
from contracts.topics import CLAIM_PAYMENTS, INTAKE, LETTERS
from services.detection.store import DetectionStore
from services.intake import publish
from services.intake.engine import file_message_id
from shared import db
from shared.batches import apply_batch
from shared.messages import Incoming, Result

pytestmark = pytest.mark.integration
D = Decimal


def linked_letters(tenant: str, count: int) -> list[Incoming]:
    """``count`` letters, six per provider account: FCN-A and FCN-B open two receivables, FCN-C names both
    their claims (merging them), FCN-D joins the survivor by one claim, FCN-E opens a third that FCN-F then
    merges into the survivor too (a merge of a receivable that absorbed another in the same batch)."""
    shapes = [("A", "100.00", 0, ("1",)), ("B", "150.00", -5, ("2",)), ("C", "200.00", 3, ("1", "2")),
              ("D", "120.00", 4, ("2",)), ("E", "80.00", -9, ("5",)), ("F", "90.00", 6, ("1", "5"))]  # fmt: skip
    messages: list[Incoming] = []
    case = 0
    while len(messages) < count:
        for name, amount, days, claims in shapes:
            entry = letters.LetterEntry(
                payer_id="01312",
                payee_id=f"NPI{case:06d}",
                fcn=f"FCN{case:05d}{name}",
                amount=D(amount),
                letter_date=date(2026, 3, 1) + timedelta(days=days),
                claims=tuple(f"ICN{case:05d}{c}" for c in claims),
            )
            key, value = letters.to_event(entry, tenant, "batch test")
            messages.append(Incoming(LETTERS.name, 0, len(messages), key.encode(), value))
        case += 1
    return messages[:count]


async def as_service(ledger: asyncpg.Connection, service: str, work: Any) -> Any:
    await ledger.execute(f'SET ROLE "{db.service_role(service)}"')
    try:
        return await work
    finally:
        await ledger.execute("RESET ROLE")


async def claims_of(ledger: asyncpg.Connection, tenant: str, *files: bytes) -> list[Incoming]:
    """The claim-payment messages intake publishes for ``files``, in order."""
    intake = intake_files()
    messages: list[Incoming] = []
    for n, content in enumerate(files):
        key, value = publish.raw_file_message(content, f"f{n}.835", tenant, "cli")
        [result] = await as_service(
            ledger,
            "intake",
            apply_batch(
                ledger,
                "intake",
                intake.handle_file,
                [Incoming(INTAKE.name, 0, n, key, value)],
                file_message_id,
                replay=intake.replay_file,
            ),
        )
        messages += [
            Incoming(o.topic, 0, len(messages), o.key.encode(), o.value)
            for o in result.outputs
            if o.topic == CLAIM_PAYMENTS.name
        ]
    return messages


async def detect(
    ledger: asyncpg.Connection, batch: Sequence[Incoming], statements: list[str] | None = None
) -> list[Result]:
    """One detection batch, the statements it sends collected into ``statements``."""
    return await counted_batch(ledger, "detection", list(batch), statements)


async def test_a_batch_of_claims_costs_the_same_statements_whatever_its_size(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    counted: dict[int, list[str]] = {}
    for count in (5, 10, 200):  # the first batch warms the connection's type cache up
        claims = [other_claim(f"PCN{count}-{n:05d}") for n in range(count)]
        claims[3] = Claim(f"PCN{count}-00001", [Service(D("-400.00"))], status="22", icn=claims[1].icn)
        batch = await claims_of(ledger, tenant, remit_claims(f"EFTS{count:04d}", "20260803", claims))
        counted[count] = statements = list[str]()
        results = await detect(ledger, batch, statements)
        assert [r.outcome for r in results] == ["applied"] * count
        print(f"{count} claims: {len(statements)} statements: {statements}")

    # BEGIN, claim the ids, SAVEPOINT, claims in, reversals noted, reversals paired, related claims out,
    # RELEASE, COMMIT: nothing per claim (this batch finds no overpayment, so no evidence is written)
    assert len(counted[10]) == len(counted[200]) == 9, counted[200]
    assert sum("detection.claims" in s and "INSERT" in s for s in counted[200]) == 1


async def test_a_batch_leaves_the_ledger_one_claim_at_a_time_would(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    """The same claims as one batch and one by one (each in a tenant of its own) find the same evidence,
    receivables and reversal pairings, and publish the same events."""
    paid = Claim("PCN2001", [Service(D("180.00"), [Adj("CO", "45", D("20.00"))])], icn="3330000000001")
    again = Claim("PCN2001", [Service(D("180.00"), [Adj("CO", "45", D("20.00"))])], icn="3330000000002")
    reversal = Claim("PCN1001", [Service(D("-250.00"))], status="22", icn="2226183201000")
    correction = Claim(
        "PCN1001", [Service(D("150.00"))], icn="2226183201001", original_reference="2226183201000"
    )
    second = Claim("PCN1001", [Service(D("140.00"))], icn="2226183201002", original_reference="2226183201000")
    generous = Claim("PCN3001", [Service(D("100.00"), [Adj("CO", "45", D("-25.00"))])], icn="4440000000001")
    early = Claim("PCN2001", [Service(D("180.00"), [Adj("CO", "45", D("20.00"))])], icn="3330000000003")
    files = [
        remit_claims("EFTB0001", "20260803", [paid, other_claim("X1"), reversal]),
        remit_claims("EFTB0002", "20260805", [again, correction, generous, second]),
        remit_claims("EFTB0003", "20260801", [early]),  # dated before the others, arriving after them
    ]
    outcomes: dict[str, list[Any]] = {}
    for mode in ("batch", "one by one"):
        who = f"{tenant}-{mode.replace(' ', '')}"
        claims = await claims_of(ledger, who, *files)
        if mode == "batch":
            results = await detect(ledger, claims)
        else:
            results = [r for claim in claims for r in await detect(ledger, [claim])]
        assert [r.outcome for r in results] == ["applied"] * len(claims)
        outcomes[mode] = [[announced(o.value) for o in r.outputs] for r in results] + [
            await ledger_rows(ledger, who)
        ]
    assert outcomes["batch"] == outcomes["one by one"]
    [evidence, *_] = outcomes["batch"][-1]
    assert {rule for rule, *_ in evidence} >= {
        "duplicate_payment",
        "reversal_correction",
        "paid_above_charge",
    }


def announced(value: bytes) -> tuple[Any, ...]:
    """What an OverpaymentDetected says, without the ids derived from the tenant."""
    payload = json.loads(value)["payload"]
    fields = ("rule", "reference", "evidence_amount", "principal", "determination_date", "evidence_channel")
    return (*(payload[f] for f in fields), len(payload["merged_receivables"]))


async def ledger_rows(ledger: asyncpg.Connection, tenant: str) -> list[list[tuple[Any, ...]]]:
    queries = [
        """SELECT e.rule, e.reference, e.amount, r.reference FROM detection.evidence e
           JOIN detection.receivables r USING (tenant_id, receivable_id) WHERE tenant_id = $1""",
        """SELECT reference, principal, determination_date, merged_into IS NULL FROM detection.receivables
           WHERE tenant_id = $1""",
        """SELECT r.icn, r.amount, c.payer_claim_control_number FROM detection.reversals r
           LEFT JOIN detection.claims c ON c.tenant_id = r.tenant_id AND c.event_id = r.corrected_by
           WHERE r.tenant_id = $1""",
        "SELECT count(*) FROM detection.claims WHERE tenant_id = $1",
    ]
    return [sorted(tuple(map(str, r.values())) for r in await ledger.fetch(q, tenant)) for q in queries]


async def test_a_batch_of_evidence_costs_the_same_statements_whatever_its_size(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    counted: dict[int, list[str]] = {}
    for count in (6, 12, 198):  # the first batch warms the connection's type cache up
        counted[count] = statements = list[str]()
        results = await detect(ledger, linked_letters(f"{tenant}-{count}", count), statements)
        assert [r.outcome for r in results] == ["applied"] * count
        print(f"{count} letters: {len(statements)} statements: {statements}")

    # BEGIN, claim the ids, SAVEPOINT, accounts locked, four reads (evidence recorded, aliases named,
    # receivables and their evidence), five writes (evidence and aliases of merged receivables moved, new
    # aliases, new evidence, receivables), RELEASE, outputs stored, COMMIT (before: 1 656 for these 198)
    assert len(counted[12]) == len(counted[198]) == 16, counted[198]


async def test_a_batch_of_evidence_merges_as_one_input_at_a_time_would(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    outcomes: dict[str, list[Any]] = {}
    for mode in ("batch", "one by one"):
        who = f"{tenant}-{mode.replace(' ', '')}"
        batch = linked_letters(who, 18)
        if mode == "batch":
            results = await detect(ledger, batch)
        else:
            results = [r for one in batch for r in await detect(ledger, [one])]
        assert [r.outcome for r in results] == ["applied"] * len(batch)
        rows = await ledger_rows(ledger, who)
        aliases = await ledger.fetch(
            """SELECT a.key, r.reference FROM detection.receivable_aliases a
               JOIN detection.receivables r USING (tenant_id, receivable_id) WHERE a.tenant_id = $1""",
            who,
        )
        outcomes[mode] = [[announced(o.value) for o in r.outputs] for r in results] + [
            rows,
            sorted(tuple(a.values()) for a in aliases),
        ]
    assert outcomes["batch"] == outcomes["one by one"]
    receivables = outcomes["batch"][-2][1]
    assert sum(live == "True" for *_, live in receivables) == 3  # one debt per account
    assert [len(out) for out in outcomes["batch"][:6]] == [1] * 6
    assert [announced[-1] for [announced] in outcomes["batch"][:6]] == [0, 0, 1, 0, 0, 1]  # merged


async def test_related_claims_are_found_by_either_number_once_each(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    """A claim relates to an earlier one by its CLP01 or by its CLP07/REF*F8 (two index look-ups, the second
    leaving out what the first found): one sharing both numbers comes back once, one sharing only the ICN
    comes back too, and a claim of the batch sees only those before it."""
    first = Claim("PCN5001", [Service(D("100.00"))], icn="5550000000001")
    both = Claim("PCN5001", [Service(D("100.00"))], icn="5550000000002", original_reference="5550000000001")
    icn_only = Claim(
        "PCN5999", [Service(D("90.00"))], icn="5550000000003", original_reference="5550000000001"
    )
    messages = await claims_of(
        ledger,
        tenant,
        remit_claims("EFTR0001", "20260803", [first, other_claim("X5")]),
        remit_claims("EFTR0002", "20260804", [both, icn_only]),
    )
    envelopes = [CLAIM_PAYMENTS.parse(m.value) for m in messages]
    store = DetectionStore()
    saved = await store.save_claims(ledger, envelopes)
    related = await store.related_claims(ledger, envelopes, saved)
    found = [
        ([c.payer_claim_control_number for c in prior], [c.payer_claim_control_number for c in later])
        for prior, later in related
    ]
    assert found == [([], []), ([], []), (["5550000000001"], []), (["5550000000001"], [])]
