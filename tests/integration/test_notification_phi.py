"""No PHI leaves by notification: the example 835s run through every stage's real handler on the real ledger,
and every notification produced — its JSON (webhook body, Kafka outbound) and its e-mail text — is scanned for
the patient names and member ids in those files' NM1 segments and, with references carrying patient control
numbers padded or not (issue 16), for the patient control numbers; then the scrubber's second line: a
reference no layout can split, masked because notification learnt the account's patient control numbers."""

import asyncio
import json
import re
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import uuid4

import asyncpg
import pytest
from harness import InProcessPipeline

from cli.local_infra import Stack
from contracts.envelope import parse_envelope
from contracts.events import NotificationEmitted, OffsetRecorded, PatientToken, PatientTokensSeen
from contracts.references import LAYOUTS
from contracts.topics import NOTIFICATIONS, OFFSETS, PATIENT_TOKENS, Topic
from services.notification import domain, learn
from services.notification.channels import Outbound, Outcome
from services.notification.delivery import drain
from services.notification.engine import Notifier
from services.notification.routes import Routes
from services.notification.store import NotificationStore
from shared import envelopes, phi
from shared.ids import account_key
from shared.messages import Incoming
from shared.settings import REPO_ROOT, Settings

pytestmark = pytest.mark.integration
EXAMPLES = REPO_ROOT / "examples" / "835"


def phi_strings() -> set[str]:
    """Last names, first names and member ids of every NM1 (patient, insured, corrected) in the examples."""
    found: set[str] = set()
    for path in sorted(EXAMPLES.glob("*.835")):
        text = path.read_text()
        element, terminator = text[3], text[105]
        for segment in text.split(terminator):
            fields = segment.strip().split(element)
            if fields[0] == "NM1" and fields[1] in ("QC", "IL", "74"):
                found |= {f for i, f in enumerate(fields) if i in (3, 4, 5, 9) and len(f) > 1}
    return found


async def test_notifications_from_the_example_feed_carry_no_names_or_member_ids(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    phi = phi_strings()
    assert len(phi) >= 30  # 12 patients: last name, first name, member id
    pipeline = InProcessPipeline(ledger, tenant)
    for path in sorted(EXAMPLES.glob("*.835")):
        pipeline.feed(path.read_bytes(), path.name)
        await pipeline.run()

    bodies = [m.value for m in pipeline.published if m.topic == NOTIFICATIONS.name]
    kinds = {json.loads(b)["payload"]["kind"] for b in bodies}
    assert len(bodies) >= 8
    assert {"receivable_opened", "offset_applied", "forwarding_balance_opened"} <= kinds
    pattern = re.compile(r"\b(" + "|".join(re.escape(p) for p in sorted(phi)) + r")\b", re.IGNORECASE)
    for body in bodies:
        n = parse_envelope(body, NotificationEmitted).payload
        text = domain.render_text(n.kind, n.severity, n.summary, n.facts, str(n.notification_id))
        subject = domain.subject_line(n.kind, n.severity, n.facts)
        for produced in (body.decode(), text, subject):
            assert not pattern.search(produced), f"PHI in a {n.kind} notification"
    stored = await ledger.fetch(
        "SELECT summary, facts::text AS facts FROM notification.notifications WHERE tenant_id = $1", tenant
    )
    assert len(stored) == len(bodies)
    assert not any(pattern.search(r["summary"] + r["facts"]) for r in stored)


def patient_control_numbers() -> set[str]:
    """CLP01 of every claim in the examples."""
    found: set[str] = set()
    for path in sorted(EXAMPLES.glob("*.835")):
        text = path.read_text()
        element, terminator = text[3], text[105]
        for segment in text.split(terminator):
            fields = segment.strip().split(element)
            if fields[0] == "CLP":
                found.add(fields[1])
    return found


FCN19 = "FCN2608030001700042"
"""A 19-character FCN: the whole Medicare FCN field, so a patient control number can follow it directly."""
PROBE = {
    # the deferral opens the receivable under a full-width FCN ...
    "2026-08-03_medicare_deferred.835": [("WO:FCN26080300017*", f"WO:{FCN19}*")],
    # ... the recoupment cites it with the patient control number straight after it (the probe), and the
    # forwarding balance carries an FCN and a patient control number as its reference
    "2026-09-14_medicare_forwarding.835": [
        ("WO:FCN26080300017*", f"WO:{FCN19}ACCT10001*"),
        ("FB:EFT260914001*", f"FB:{FCN19}ACCT10002*"),
    ],
    # a deferral whose FCN field is padded before the patient control number
    "2026-10-05_medicare_fb_applied.835": [("WO:FCN26100500042*", "WO:FCN26100500042     ACCT20417*")],
}


async def test_references_carrying_patient_control_numbers_padded_or_not_never_reach_a_notification(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    """The probe of issue 16: a Medicare reference with the 19-character FCN followed directly by the patient
    control number. Every notification (backbone JSON, e-mail text and subject, the stored row) quotes the FCN
    and never the patient control number, padded or not."""
    pcns = patient_control_numbers()
    assert {"ACCT10001", "ACCT10002", "ACCT20417"} <= pcns
    secret = re.compile(r"(" + "|".join(re.escape(p) for p in sorted(pcns | phi_strings())) + r")", re.I)
    pipeline = InProcessPipeline(ledger, tenant)
    for path in sorted(EXAMPLES.glob("*.835")):
        text = path.read_text()
        for old, new in PROBE.get(path.name, []):
            assert old in text
            text = text.replace(old, new)
        pipeline.feed(text.encode(), path.name)
        await pipeline.run()

    bodies = [m.value for m in pipeline.published if m.topic == NOTIFICATIONS.name]
    kinds = {json.loads(b)["payload"]["kind"] for b in bodies}
    assert {"receivable_opened", "offset_applied", "forwarding_balance_opened"} <= kinds
    quoted = [b for b in bodies if FCN19.encode() in b]
    assert quoted, "the FCN itself is still quoted"
    for body in bodies:
        n = parse_envelope(body, NotificationEmitted).payload
        text = domain.render_text(n.kind, n.severity, n.summary, n.facts, str(n.notification_id))
        subject = domain.subject_line(n.kind, n.severity, n.facts)
        for produced in (body.decode(), text, subject):
            assert not secret.search(produced), f"PHI in a {n.kind} notification: {produced}"
    stored = await ledger.fetch(
        "SELECT summary, facts::text AS facts FROM notification.notifications WHERE tenant_id = $1", tenant
    )
    assert not any(secret.search(r["summary"] + r["facts"]) for r in stored)
    # notification learnt the account's patient control numbers, as digests only
    tokens = await ledger.fetch(
        "SELECT digest FROM notification.sensitive_tokens WHERE tenant_id = $1", tenant
    )
    assert {phi.digest(p) for p in pcns} <= {r["digest"] for r in tokens}
    assert not any(secret.search(r["digest"]) for r in tokens)


class Capture:
    """A channel plugin that keeps what it was given to send."""

    name = "webhook"

    def __init__(self) -> None:
        self.sent: list[Outbound] = []

    def configure(self, settings: Settings) -> None:
        """Nothing to configure."""

    async def send(self, outbound: Outbound) -> Outcome:
        self.sent.append(outbound)
        return Outcome("delivered", 200)

    async def close(self) -> None:
        """Nothing to release."""


def plain_notifier(pool: asyncpg.Pool, capture: Capture) -> Notifier:
    """The stage's handlers for a commercial payer (``plain`` layout), every notification to one webhook."""
    return Notifier(
        settings=Settings(),
        routes=Routes.webhook_only("http://receiver.invalid/hook"),
        channels={"webhook": capture},
        timeline_of=lambda policy, day, identified: [],
        pool_of=lambda: asyncio.sleep(0, pool),
        today=lambda: date(2026, 9, 14),
        store=NotificationStore(),
        layout_of=lambda tenant, payer: LAYOUTS["plain"],
    )


def claim(pcn: str) -> PatientTokensSeen:
    """Intake's patient tokens event of a one-claim transaction with this patient control number."""
    return PatientTokensSeen(
        remittance_id=uuid4(),
        part=1,
        first_claim_ordinal=1,
        claim_count=1,
        tokens=tuple(
            PatientToken(length=n, digest=d, alphanumeric=a)
            for _, n, d, a in phi.shaped_token_rows("id", [pcn])
        ),
    )


def unmatched(payer: str, reference: str) -> OffsetRecorded:
    """A recovery under this reference that matched no receivable."""
    return OffsetRecorded(
        offset_id=uuid4(),
        remittance_id=uuid4(),
        payer_id=payer,
        trace_number="EFT260914001",
        payment_date=date(2026, 9, 14),
        segment_ordinal=1,
        pair_index=1,
        reason_code="WO",
        reference=reference,
        amount=Decimal("80.00"),
        bucket="unmatched",
        unmatched_amount=Decimal("80.00"),
        reason=f"no receivable under {reference}",
    )


def envelope(topic: Topic[Any], payload: Any, event_type: str, tenant: str, key: str) -> Incoming:
    env = envelopes.build(
        payload,
        event_id=uuid4(),
        event_type=event_type,
        tenant_id=tenant,
        account_key=key,
        causation_id="phi test",
    )
    return Incoming(topic.name, 0, 0, key.encode(), env.to_bytes())


async def test_a_reference_no_layout_can_split_is_masked_by_the_learnt_patient_control_number(
    ledger: asyncpg.Connection, tenant: str, stack: Stack
) -> None:
    """A commercial payer (``plain`` layout: the whole reference is the key) writes the patient control number
    straight after a short FCN. No layout can split that, so the second line acts: notification learnt the
    account's patient control number from intake's patient tokens event (a digest), cuts the quote before it, and the
    webhook it sends carries neither the number nor any part of the reference after the FCN."""
    payer, key = "99999", account_key(tenant, "99999", "1234567893")
    capture = Capture()
    pool = await asyncpg.create_pool(stack.postgres.dsn, min_size=1, max_size=2)
    notifier = plain_notifier(pool, capture)
    recovery = unmatched(payer, "AR2026PT55120X")
    try:
        async with ledger.transaction():
            learnt = envelope(PATIENT_TOKENS, claim("PT55120X"), "PatientTokensSeen", tenant, key)
            assert await learn.learner(notifier.store).apply(ledger, [learnt]) == [[]]
            offset = envelope(OFFSETS, recovery, "OffsetUnmatched", tenant, key)
            [[out]] = await notifier.on_upstream(ledger, [OFFSETS.parse(offset.value)])
        n = parse_envelope(out.value, NotificationEmitted).payload
        assert n.kind == "unmatched_recovery" and n.facts["reference"] == "AR2026"
        async with ledger.transaction():
            await notifier.deliver(ledger, [Incoming(NOTIFICATIONS.name, 0, 0, None, out.value)])
        await drain(pool, {"webhook": capture}, frozenset({tenant}))  # deliver only queues (issue 16)
    finally:
        await pool.close()
    [sent] = capture.sent
    for produced in (out.value.decode(), sent.body.decode(), sent.subject, sent.text):
        assert "PT55120X" not in produced.upper() and "AR2026PT" not in produced.upper(), produced


async def test_delivery_scans_again_only_when_the_account_learnt_a_token_after_the_emission(
    ledger: asyncpg.Connection, tenant: str, stack: Stack
) -> None:
    """Delivery skips its scan of a notification whose emission scan masked nothing while the account has
    learnt nothing since (its token generation, migration 0024). A notification emitted before its patient
    control number was learnt is scanned again, and the webhook carries none of it; one emitted after that,
    with nothing to mask, is sent as stored, unscanned."""
    payer, key = "99999", account_key(tenant, "99999", "1234567890")
    capture = Capture()
    pool = await asyncpg.create_pool(stack.postgres.dsn, min_size=1, max_size=2)
    notifier = plain_notifier(pool, capture)
    store = notifier.store

    async def learn_claim(pcn: str) -> None:
        learnt = envelope(PATIENT_TOKENS, claim(pcn), "PatientTokensSeen", tenant, key)
        assert await learn.learner(store).apply(ledger, [learnt]) == [[]]

    async def notify(reference: str) -> tuple[bytes, Any]:
        offset = envelope(OFFSETS, unmatched(payer, reference), "OffsetUnmatched", tenant, key)
        [[out]] = await notifier.on_upstream(ledger, [OFFSETS.parse(offset.value)])
        return out.value, parse_envelope(out.value, NotificationEmitted).payload.notification_id

    try:
        async with ledger.transaction():
            await learn_claim("PT10001A")
            early, early_id = await notify("AR2026QZ77311")  # its patient control number is not known yet
        async with ledger.transaction():
            assert await store.clean_since_emitted(ledger, [(tenant, early_id, key)]) == {early_id}
            await learn_claim("QZ77311")  # now it is: the account moves to its next generation
            assert await store.clean_since_emitted(ledger, [(tenant, early_id, key)]) == set()
            await learn_claim("QZ77311")  # a digest it knows moves nothing
            late, late_id = await notify("AR2026MM40")
            assert await store.clean_since_emitted(ledger, [(tenant, late_id, key)]) == {late_id}
        async with ledger.transaction():
            await notifier.deliver(
                ledger, [Incoming(NOTIFICATIONS.name, 0, n, None, v) for n, v in enumerate((early, late))]
            )
        await drain(pool, {"webhook": capture}, frozenset({tenant}))
    finally:
        await pool.close()
    sent = {s.notification_id: s for s in capture.sent}
    assert "QZ77311" in early.decode()  # emitted before it was learnt ...
    for produced in (
        sent[str(early_id)].body.decode(),
        sent[str(early_id)].text,
        sent[str(early_id)].subject,
    ):
        assert "QZ77311" not in produced.upper(), produced  # ... masked on its way out all the same
    assert sent[str(late_id)].body == late  # sent as stored: nothing to mask, no second scan
