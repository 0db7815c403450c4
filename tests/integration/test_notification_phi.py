"""No PHI leaves by notification: the example 835s run through every stage's real handler on the real ledger,
and every notification produced — its JSON (webhook body, Kafka outbound) and its e-mail text — is scanned for
the patient names and member ids in those files' NM1 segments."""

import json
import re

import asyncpg
import pytest
from harness import InProcessPipeline

from contracts.envelope import parse_envelope
from contracts.events import NotificationEmitted
from services.notification import domain
from shared.settings import REPO_ROOT

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

    bodies = [m.value for m in pipeline.published if m.topic == "remit.notifications.v1"]
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
