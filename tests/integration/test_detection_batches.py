"""Detection applies a batch of claims set-based: a constant number of statements whatever the batch's size, and
the same ledger as one claim at a time (each claim sees the batch's claims before it, not those after; the first
correction in order pairs a reversal; a poison claim costs only itself, in a part too). The evidence a batch finds is recorded
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
from contracts.events import ClaimPaymentReceived
from contracts.topics import CLAIM_PAYMENTS, CLAIM_PAYMENTS_V1, INTAKE, LETTERS, PROVIDER_ADJUSTMENTS
from services.detection import rules
from services.detection.store import DetectionStore
from services.intake import publish
from services.intake.engine import file_message_id
from shared import claims as shared_claims
from shared import db
from shared.batches import apply_batch
from shared.messages import Incoming, Outgoing, Result

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


async def claims_of(
    ledger: asyncpg.Connection, tenant: str, *files: bytes, v1: bool = True, pairs: bool = False
) -> list[Incoming]:
    """The claim-payment messages intake publishes for ``files``, in order: its ``remit.claim-payments.v2``
    parts, or (``v1``, what most tests here batch) each of their claims as the ``remit.claim-payments.v1``
    message it was before parts, which detection still consumes; with ``pairs``, the parts and the PLB pairs
    as intake publishes them (a transaction's claims, then its pairs)."""
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
        wanted = (CLAIM_PAYMENTS.name, PROVIDER_ADJUSTMENTS.name) if pairs else (CLAIM_PAYMENTS.name,)
        parts = [o for o in result.outputs if o.topic in wanted]
        if v1 and not pairs:
            parts = [
                Outgoing.event(CLAIM_PAYMENTS_V1, claim)
                for part in parts
                for claim in shared_claims.claims_of(CLAIM_PAYMENTS.parse(part.value))
            ]
        messages += [
            Incoming(o.topic, 0, len(messages) + n, o.key.encode(), o.value) for n, o in enumerate(parts)
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
    envelopes = [CLAIM_PAYMENTS_V1.parse(m.value) for m in messages]
    store = DetectionStore()
    saved = await store.save_claims(ledger, envelopes)
    related = await store.related_claims(ledger, envelopes, saved)
    found = [
        ([c.payer_claim_control_number for c in prior], [c.payer_claim_control_number for c in later])
        for prior, later in related
    ]
    assert found == [([], []), ([], []), (["5550000000001"], []), (["5550000000001"], [])]


# --- remit.claim-payments.v2: a transaction's claims per message -------------------------------------------


def published(out: Outgoing) -> tuple[Any, ...]:
    """A published event as a consumer sees it, but for the wall-clock ``occurred_at``."""
    envelope = json.loads(out.value)
    envelope.pop("occurred_at", None)
    return out.topic, out.key, json.dumps(envelope, sort_keys=True)


async def stored(ledger: asyncpg.Connection, tenant: str) -> list[list[tuple[str, ...]]]:
    """Detection's rows of a tenant with their ids (claims by event id, evidence by evidence id)."""
    queries = [
        "SELECT event_id, remittance_id, claim_ordinal, payload FROM detection.claims WHERE tenant_id = $1",
        """SELECT evidence_id, receivable_id, rule, channel, amount, evidence_date, source FROM detection.evidence
           WHERE tenant_id = $1""",
        """SELECT receivable_id, reference, policy, principal, determination_date FROM detection.receivables
           WHERE tenant_id = $1""",
        "SELECT claim_event_id, corrected_by FROM detection.reversals WHERE tenant_id = $1",
    ]
    return [sorted(tuple(map(str, r.values())) for r in await ledger.fetch(q, tenant)) for q in queries]


STORY = (
    ("EFTV0001", "20260803", [Claim("PCN2001", [Service(D("180.00"), [Adj("CO", "45", D("20.00"))])],
                                    icn="3330000000001"),
                              other_claim("X1"),
                              Claim("PCN1001", [Service(D("-250.00"))], status="22", icn="2226183201000")]),
    ("EFTV0002", "20260805", [Claim("PCN2001", [Service(D("180.00"), [Adj("CO", "45", D("20.00"))])],
                                    icn="3330000000002"),
                              Claim("PCN1001", [Service(D("150.00"))], icn="2226183201001",
                                    original_reference="2226183201000"),
                              Claim("PCN3001", [Service(D("100.00"), [Adj("CO", "45", D("-25.00"))])],
                                    icn="4440000000001")]),
    ("EFTV0003", "20260801", [Claim("PCN2001", [Service(D("180.00"), [Adj("CO", "45", D("20.00"))])],
                                    icn="3330000000003")]),
)  # fmt: skip
"""Three remittances whose claims find a duplicate payment, a reversal and its correction, and a claim paid
above its charge (one of them dated before the others, arriving after them)."""


async def test_parts_give_exactly_what_their_claims_gave_one_message_each(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    """The same files' claims as v2 parts and as v1 messages, in the same tenant (the v1 run rolled back): the
    same claims stored under the same event ids, the same evidence and receivables, the same events published
    with the same ids and causations, byte for byte but for ``occurred_at``."""
    files = [remit_claims(trace, day, claims) for trace, day, claims in STORY]
    seen: dict[str, Any] = {}
    for version in ("v1", "v2"):
        rolled_back = ledger.transaction()
        await rolled_back.start()
        try:
            messages = await claims_of(ledger, tenant, *files, v1=version == "v1")
            results = await detect(ledger, messages)
            assert [r.outcome for r in results] == ["applied"] * len(messages)
            seen[version] = (
                sorted(published(o) for r in results for o in r.outputs),
                await stored(ledger, tenant),
            )
        finally:
            await rolled_back.rollback()
    assert len(messages) == len(files)  # one v2 part per transaction
    assert seen["v2"] == seen["v1"]
    events, rows = seen["v2"]
    assert len(rows[0]) == sum(len(claims) for *_, claims in STORY) and len(events) >= 3


async def test_a_batch_of_parts_costs_the_statements_of_a_batch_of_claims(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    """250 claims of one transaction travel as three parts (100, 100, 50), applied in the statements that 250
    v1 claims would cost (9), plus the savepoint a batch of parts runs its claims in so that a poison claim can
    be taken out alone (``shared.bundles``: SAVEPOINT and RELEASE), and nothing per part."""
    claims = [other_claim(f"PCNV{n:05d}") for n in range(250)]
    claims[3] = Claim("PCNV00001", [Service(D("-400.00"))], status="22", icn=claims[1].icn)  # a reversal
    await detect(
        ledger, await claims_of(ledger, f"{tenant}-warm", remit_claims("EFTW0000", "20260803", claims[:5]))
    )
    parts = await claims_of(ledger, tenant, remit_claims("EFTW0001", "20260803", claims), v1=False)
    assert [CLAIM_PAYMENTS.parse(p.value).payload.claim_count for p in parts] == [100, 100, 50]
    statements: list[str] = []
    results = await detect(ledger, parts, statements)
    assert [r.outcome for r in results] == ["applied"] * 3
    assert len(statements) == 9 + 2, statements
    count = await ledger.fetchval("SELECT count(*) FROM detection.claims WHERE tenant_id = $1", tenant)
    assert count == 250


def remittances(count: int) -> list[bytes]:
    """``count`` remittances of three claims and two PLB pairs each, one pair a deferral (a negative WO naming
    a claim, which is evidence of an overpayment)."""
    return [
        remit_claims(
            f"EFTM{n:04d}",
            f"202608{1 + n % 28:02d}",
            [other_claim(f"PCNM{n:04d}{k}") for k in range(3)],
            ("WO", f"FCN{n:011d}", "-75.00"),
            ("L6", f"FCN{n:011d}", "2.50"),
        )
        for n in range(count)
    ]


async def test_claims_and_pairs_that_alternate_cost_constant_statements_and_give_what_one_by_one_does(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    """Intake publishes a transaction's claims part and then its PLB pairs, so detection's batches alternate
    between the two topics; one handler takes them all (it was one call, with its claim and evidence
    statements, per stretch of one topic: per transaction). A batch gives what each message alone gives."""
    counted: dict[int, list[str]] = {}
    for count in (2, 4, 12):  # the first batch warms the connection's type cache up
        messages = await claims_of(ledger, f"{tenant}-{count}", *remittances(count), pairs=True)
        topics = [m.topic for m in messages]
        assert topics[:3] == [CLAIM_PAYMENTS.name, PROVIDER_ADJUSTMENTS.name, PROVIDER_ADJUSTMENTS.name]
        counted[count] = statements = list[str]()
        results = await detect(ledger, messages, statements)
        assert [r.outcome for r in results] == ["applied"] * len(messages)
        print(f"{count} transactions: {len(statements)} statements: {statements}")
    assert len(counted[4]) == len(counted[12]), counted[12]
    seen: dict[str, Any] = {}
    for how in ("batch", "one by one"):
        rolled_back = ledger.transaction()
        await rolled_back.start()
        try:
            messages = await claims_of(ledger, tenant, *remittances(6), pairs=True)
            if how == "batch":
                results = await detect(ledger, messages)
            else:
                results = [r for m in messages for r in await detect(ledger, [m])]
            seen[how] = (
                sorted(published(o) for r in results for o in r.outputs),
                await stored(ledger, tenant),
            )
        finally:
            await rolled_back.rollback()
    events, rows = seen["batch"]
    assert seen["batch"] == seen["one by one"]
    assert len(rows[1]) == 6 and len(events) == 6  # one deferral's evidence per transaction, announced once


async def test_a_poison_claim_is_dead_lettered_alone_and_the_rest_of_its_part_applies(
    ledger: asyncpg.Connection, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rule that raises on one claim: that claim alone goes to the DLT, as the v1 event it would have been
    (so ``dlt replay`` re-drives it alone, on v1), with a reason naming it by ordinal and CLP segment (never its
    patient control number); every other claim, its own part's included, is applied. A redelivery of the
    whole batch changes nothing, and replaying the dead letter once the rule is fixed applies the claim."""
    original = rules.PaidAboveChargeRule.on_claim

    def poisoned(
        self: rules.PaidAboveChargeRule, claim: ClaimPaymentReceived, prior: list[ClaimPaymentReceived]
    ) -> list[Any]:
        if claim.patient_control_number == "POISON-0042":
            raise ZeroDivisionError("a rule's bug")
        return original(self, claim, prior)

    monkeypatch.setattr(rules.PaidAboveChargeRule, "on_claim", poisoned)
    files = [remit_claims(trace, day, claims) for trace, day, claims in STORY]
    files.insert(1, remit_claims("EFTP0001", "20260804", [other_claim("X7"), other_claim("POISON-0042")]))
    parts = await claims_of(ledger, tenant, *files, v1=False)
    results = await detect(ledger, parts)
    assert [r.outcome for r in results] == ["applied"] * 4
    [record] = [o for o in results[1].outputs if o.topic == CLAIM_PAYMENTS_V1.dlt]
    headers = {k: v.decode() for k, v in record.headers}
    alone = CLAIM_PAYMENTS_V1.parse(record.value)
    part = CLAIM_PAYMENTS.parse(parts[1].value)
    assert alone.payload == part.payload.claims[1] and alone.tenant_id == tenant
    assert alone.event_id == shared_claims.claim_event_id(part.payload.remittance_id, 2)
    assert headers["source_topic"] == CLAIM_PAYMENTS_V1.name and headers["reason"] == "plugin_error"
    assert headers["error"].startswith("claim #2 (CLP segment "), headers["error"]
    assert headers["location.claim_ordinal"] == "2" and headers["location.claims_part"] == "1"
    assert headers["location.claims_event"] == str(part.event_id)
    assert "POISON" not in " ".join(headers.values())
    rows = await stored(ledger, tenant)
    stored_pcns = {json.loads(r[3])["patient_control_number"] for r in rows[0]}
    assert "X7" in stored_pcns and "POISON-0042" not in stored_pcns  # its neighbour is not held back
    assert len(rows[0]) == sum(len(claims) for *_, claims in STORY) + 1

    again = await detect(ledger, parts)
    assert [r.outcome for r in again] == ["duplicate"] * 4
    assert [[published(o) for o in r.outputs] for r in again] == [
        [published(o) for o in r.outputs] for r in results
    ]
    assert await stored(ledger, tenant) == rows

    monkeypatch.setattr(rules.PaidAboveChargeRule, "on_claim", original)  # the rule fixed: replay the claim
    [replayed] = await detect(ledger, [Incoming(CLAIM_PAYMENTS_V1.name, 0, 0, None, record.value)])
    assert replayed.outcome == "applied"
    after = await stored(ledger, tenant)
    assert len(after[0]) == len(rows[0]) + 1
    assert "POISON-0042" in {json.loads(r[3])["patient_control_number"] for r in after[0]}


async def test_v1_claims_then_their_parts_change_nothing(ledger: asyncpg.Connection, tenant: str) -> None:
    """Claims already applied from v1 (published before the upgrade) and then met again in v2 parts (intake
    rebuilding, after the upgrade, a file it had posted before it) are the same claims, under the same ids:
    nothing is stored twice and nothing new is announced (what they found was owed, and is still owed on a
    redelivery, by the v1 messages that found it)."""
    files = [remit_claims(trace, day, claims) for trace, day, claims in STORY]
    first = await detect(ledger, await claims_of(ledger, tenant, *files))
    assert sum(len(r.outputs) for r in first) >= 3
    rows = await stored(ledger, tenant)
    again = await detect(ledger, await claims_of(ledger, tenant, *files, v1=False))
    assert [r.outcome for r in again] == ["applied"] * len(files)
    assert [o for r in again for o in r.outputs] == []
    assert await stored(ledger, tenant) == rows
