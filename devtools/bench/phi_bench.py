"""``python -m devtools.bench.phi_bench``: notification's PHI work in process, without Kafka or PostgreSQL.

Two figures, each the client CPU (``time.process_time``, best of five rounds) of the code the stage runs:

- **the claim-payment path**, per claim payment of one generated transaction (62 claims): what intake spends
  building and encoding the transaction's patient tokens event (``services.intake.domain.token_events``) and
  notification reading it (``services.notification.learn.tokens_of``). Faust's per-message cost (the consumer,
  the stream, the idempotency claim of every message in ``ops.processed_events``), which the event saves 61
  times in 62, is not in this figure: it is what ``make bench`` shows.
- **one notification's scans**: the window digests (``shared.phi.candidates``) of a ``receivable_opened``
  notification for the token lengths of the generated feed's claims (one: ``ACCT`` and 7 digits) and for 7
  lengths (5–11: an account whose overpayments also taught it the patient parts of padded references, as in
  ``make bench``), once per scan the stage makes (the
  references when quoting, the summary and facts when emitted, again when queued for delivery).
"""

import hashlib
import io
import secrets
import sys
import time
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from uuid import UUID

from contracts import topics
from contracts.events import ReceivableChanged
from contracts.examples import example_envelope
from devtools.bench.serde_bench import per_call
from devtools.generate import iter_transactions, write_interchange
from services.intake import domain as intake_domain
from services.intake.feeds import ParsedRemittance
from services.intake.x12 import X12Parser
from services.notification import domain, learn
from services.notification.outbound import texts_of
from shared import phi
from shared.messages import Incoming


def claim_path(claims: int = 60) -> dict[str, float]:
    """µs of CPU per claim payment of one generated transaction: intake building its patient tokens event(s)
    and notification reading them (``learn.tokens_of``). Before ``remit.patient-tokens.v1``, notification read
    each claim payment instead: 11 µs per claim here, plus the per-message work this leaves out."""
    parsed = _parsed(claims)
    n = len(parsed.claims)
    events = intake_domain.token_events("bench", parsed)
    records = [Incoming(t.name, 0, i, None, env.to_bytes()) for i, (t, env) in enumerate(events)]
    return {
        "claims": float(n),
        "patient tokens events": float(len(records)),
        "bytes of them per claim": sum(len(r.value) for r in records) / n,
        "intake: build the patient tokens event(s), µs/claim": per_call(
            lambda: intake_domain.token_events("bench", parsed), n
        ),
        "intake: encode them, µs/claim": per_call(lambda: [env.to_bytes() for _, env in events], n),
        "notification: read them (tokens_of), µs/claim": per_call(
            lambda: [learn.tokens_of(r) for r in records], n
        ),
    }


def _parsed(claims: int) -> ParsedRemittance:
    """One generated transaction of ``claims`` claims (plus reversals), parsed as intake parses it."""
    text = io.StringIO()
    segs = [s for s, _ in iter_transactions(1, claims, seed=7)]
    write_interchange(text, "01312", "000000777", date(2026, 7, 6), [segs])
    content = text.getvalue().encode()
    sha = hashlib.sha256(content).hexdigest()
    [parsed] = [
        r
        for r in X12Parser().parse(content, file_name="b.835", file_sha256=sha, tenant_id="bench")
        if isinstance(r, ParsedRemittance)
    ]
    return parsed


def feed_lengths(claims: int = 60) -> list[tuple[str, int]]:
    """The (kind, length) pairs an account of the generated feed has learnt from its claims."""
    parsed = _parsed(claims)
    numbers = [c.patient_control_number for c in parsed.claims]
    return sorted({(kind, n) for kind, n, _, _ in phi.shaped_token_rows("id", numbers)})


def scans(lengths: list[tuple[str, int]], shaped: bool) -> dict[str, float]:
    """µs of CPU per scan of one ``receivable_opened`` notification, per scan the stage makes (delivery's is
    the emission's again unless it is skipped). ``shaped``: every token of those lengths is alphanumeric, as the
    generated feed's are (``ACCT`` and digits), so they are looked for only inside runs; else everywhere, as
    before migration 0024."""
    change: ReceivableChanged = example_envelope(topics.RECEIVABLES).payload
    change = change.model_copy(
        update={
            "reference": "FCN2608030001700042",
            "receivable_id": UUID(int=7),
            "principal": Decimal("1234.56"),
            "balance": Decimal("1234.56"),
        }
    )
    timeline = [
        ("determination", date(2026, 8, 3)),
        ("report_and_return_deadline", date(2026, 10, 2)),
        ("rebuttal_deadline", date(2026, 8, 18)),
        ("interest_start", date(2026, 9, 2)),
        ("recoupment_start", date(2026, 9, 12)),
    ]
    [message] = domain.for_receivable("ReceivableOpened", change, timeline)
    quoted = phi.quoted_texts(change)
    texts = texts_of(message)
    plain = {n for kind, n in lengths if kind == "id"} if shaped else set()

    def scan(t: list[str]) -> Callable[[], object]:
        return lambda: phi.candidates(t, lengths, plain)

    return {
        "token lengths": float(len(lengths)),
        "summary + facts characters": float(sum(map(len, texts))),
        "windows digested per emit scan": float(len(phi.candidates(texts, lengths, plain))),
        "quote scan (references), µs": per_call(scan(quoted), 1),
        "emit scan (summary, facts), µs": per_call(scan(texts), 1),
    }


def main() -> int:
    """Print both figures."""
    phi.configure_key(secrets.token_hex(32))  # as intake and notification run: digests are keyed
    t0 = time.process_time()
    for name, value in claim_path().items():
        print(f"{name:75} {value:10.1f}")
    for lengths in (feed_lengths(), [("id", n) for n in range(5, 12)]):
        for shaped in (False, True):
            print(
                f"-- {len(lengths)} id length(s), {'alphanumeric: inside runs' if shaped else 'everywhere'}"
            )
            for name, value in scans(lengths, shaped).items():
                print(f"{name:75} {value:10.1f}")
    print(f"(bench CPU {time.process_time() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
