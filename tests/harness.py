"""An in-process pipeline for scenario and property tests: the real handlers of every stage, the real
PostgreSQL ledger and the same idempotence records, with Kafka's routing simulated (per-topic FIFO, like one
partition; optionally interleaving topics at random, as separate topics are in a real broker).

It does not replace the integration tests that run the five services as processes on a real broker; it lets
hundreds of hand-written and generated 835 sequences run in seconds.
"""

import asyncio
import functools
import random
import zlib
from collections import deque
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg
from x12_builder import Claim, Plb, PlbPair, Service, Transaction, build_835

from contracts.envelope import Envelope
from contracts.events import ReceivableChanged
from contracts.topics import INTAKE, NOTIFICATIONS
from policies import config as policy_config
from services.intake import publish
from services.intake.engine import FileIntake
from services.intake.store import IntakeStore
from services.interest.engine import Engine
from services.interest.store import InterestStore
from shared import db, envelopes, plugins
from shared.batches import apply_batch
from shared.ids import account_key, receivable_id, stable_id
from shared.messages import BatchHandler, Incoming, Outgoing, Result, envelope_event_id
from shared.settings import get_settings
from shared.stream import Stage

Handler = BatchHandler


@functools.cache
def stages() -> tuple[Stage, ...]:
    """Every stage, built once per test process as its worker builds it."""
    from services.detection import app as detection
    from services.intake import app as intake
    from services.interest import app as interest
    from services.matching import app as matching
    from services.notification import app as notification

    return (
        intake.from_environment(),
        detection.from_environment(),
        matching.from_environment(),
        interest.from_environment(),
        notification.from_environment(),
    )


@functools.cache
def matching_one_at_a_time() -> BatchHandler:
    """Matching's handler over the plain repository (``store.PgMatchingRepository``: a statement per call,
    nothing read ahead or held back): the ledger and outputs a batch of the stage's own must match."""
    from services.matching import app as matching
    from services.matching.store import PgMatchingRepository

    settings = get_settings()
    stage = matching.build(settings, policy_config.resolver(settings), PgMatchingRepository)
    [(_, handler)] = stage.subscriptions
    return handler


def stage_handler(service: str) -> BatchHandler:
    """The handler the agent of a one-agent stage feeds its batches to, as its worker builds it."""
    [stage] = [s for s in stages() if s.service == service]
    [(_, handler)] = stage.subscriptions
    return handler


async def counted_batch(
    ledger: asyncpg.Connection,
    service: str,
    batch: list[Incoming],
    statements: list[str] | None = None,
    handler: BatchHandler | None = None,
) -> list[Result]:
    """One batch of ``service`` applied as its worker applies it (under its role; by ``handler`` instead of the
    stage's own when given), the statements it sends collected into ``statements``: how the set-based stages
    prove a constant cost per batch."""

    def log(record: Any) -> None:
        if statements is not None and "ROLE" not in record.query.split()[:2]:  # ours, not the batch's
            statements.append(" ".join(record.query.split())[:60])

    await ledger.execute(f'SET ROLE "{db.service_role(service)}"')
    ledger.add_query_logger(log)
    try:
        results: list[Result] = await apply_batch(
            ledger, service, handler or stage_handler(service), batch, envelope_event_id
        )
        await asyncio.sleep(0)  # query loggers are called soon after, not during
    finally:
        ledger.remove_query_logger(log)
        await ledger.execute("RESET ROLE")
    return results


def routes() -> dict[str, list[tuple[str, Handler]]]:
    """topic → [(service, handler)], exactly as each service's ``stage.consume`` subscribes."""
    table: dict[str, list[tuple[str, Handler]]] = {}
    for stage in stages():
        for topics, handler in stage.subscriptions:
            for topic in topics:
                if topic != NOTIFICATIONS.name:  # delivery needs a webhook; covered by integration tests
                    table.setdefault(topic, []).append((stage.service, handler))
    return table


@dataclass
class InProcessPipeline:
    """Feed raw files (or events) and run every consumer until all topics are drained."""

    conn: asyncpg.Connection
    tenant: str
    seed: int | None = None
    skip: frozenset[str] = frozenset()
    queues: dict[str, deque[tuple[int, Outgoing]]] = field(default_factory=dict)
    dead_letters: list[Outgoing] = field(default_factory=list)
    published: list[Outgoing] = field(default_factory=list)
    _routes: dict[str, list[tuple[str, Handler]]] = field(default_factory=routes)
    _sent: int = 0

    def feed(self, content: bytes, file_name: str = "remit.835") -> None:
        """Queue a payer file on the intake topic, as ``offsetstream ingest`` does."""
        key, value = publish.raw_file_message(content, file_name, self.tenant, "cli")
        self.send(Outgoing(INTAKE.name, key.decode(), value))

    def send(self, message: Outgoing) -> None:
        """Queue any message on its topic."""
        self._sent += 1
        self.queues.setdefault(message.topic, deque()).append((self._sent, message))

    async def run(self, max_messages: int = 100_000) -> int:
        """Deliver until every queue is empty; return how many deliveries were made."""
        rng = random.Random(self.seed)
        delivered = 0
        while any(self.queues.values()):
            ready = sorted(t for t, q in self.queues.items() if q)
            # No seed: one global FIFO (the order things were sent in). A seed: topics interleave at random,
            # each topic staying FIFO, like a partition of a real broker.
            topic = min(ready, key=lambda t: self.queues[t][0][0]) if self.seed is None else rng.choice(ready)
            _, message = self.queues[topic].popleft()
            for service, handler in self._routes.get(topic, []):
                if service in self.skip:
                    continue
                delivered += 1
                await self._deliver(service, handler, message)
            if delivered > max_messages:
                raise RuntimeError("pipeline did not drain (a loop between stages?)")
        return delivered

    async def _deliver(self, service: str, handler: Handler, message: Outgoing) -> None:
        incoming = Incoming(message.topic, 0, 0, message.key.encode(), message.value, dict(message.headers))
        # Each stage's handler runs as that stage's database role, as in its own process (shared.db.create_pool).
        await self.conn.execute(f'SET ROLE "{db.service_role(service)}"')
        try:
            (result,) = await apply_batch(self.conn, service, handler, [incoming], envelope_event_id)
        finally:
            await self.conn.execute("RESET ROLE")
        outputs = result.outputs
        for out in outputs:
            self.published.append(out)
            if out.topic.endswith(".dlt"):
                self.dead_letters.append(out)
            else:
                self.send(out)


def remit(
    trace: str, paid_on: str, *pairs: tuple[str, str | None, str], claims: list[Claim] | None = None
) -> bytes:
    """One Medicare remittance: claims (default one 500.00 claim) and PLB pairs (code, reference, amount)."""
    txn = Transaction(
        claims=claims
        if claims is not None
        else [Claim(f"PCN-{trace}", [Service(Decimal("500.00"))], icn=f"9{trace[-6:]}")],
        plbs=[Plb([PlbPair(code, ref, Decimal(amount)) for code, ref, amount in pairs])] if pairs else [],
        trace=trace,
        payment_date=paid_on,
    )
    return build_835(txn, isa13=f"{zlib.crc32(trace.encode()) % 999_999_999:09d}", created=paid_on).encode()


def remit_claims(trace: str, paid_on: str, claims: list[Claim], *pairs: tuple[str, str, str]) -> bytes:
    """One Medicare remittance with the given claims (reversals, corrections…) and PLB pairs."""
    txn = Transaction(
        claims=claims,
        plbs=[Plb([PlbPair(c, r, Decimal(a)) for c, r, a in pairs])] if pairs else [],
        trace=trace,
        payment_date=paid_on,
    )
    return build_835(txn, isa13=f"{zlib.crc32(trace.encode()) % 999_999_999:09d}").encode()


def other_claim(pcn: str) -> Claim:
    """An ordinary 400.00 claim, so a remittance pays something besides the story under test."""
    return Claim(pcn, [Service(Decimal("400.00"))], icn=f"7{zlib.crc32(pcn.encode()) % 10**9:09d}")


async def run_files(
    ledger: asyncpg.Connection,
    tenant: str,
    *files: bytes,
    seed: int | None = None,
    skip: frozenset[str] = frozenset(),
) -> InProcessPipeline:
    """Feed files one after another, each drained before the next arrives (as payer files arrive days apart)."""
    pipeline = InProcessPipeline(ledger, tenant, seed=seed, skip=skip)
    for number, content in enumerate(files):
        pipeline.feed(content, f"file{number}.835")
        await pipeline.run()
    return pipeline


def intake_files() -> FileIntake:
    """Intake's handlers as its worker builds them: the installed feed parsers over its repository."""
    return FileIntake(plugins.load_plugins(plugins.FEED_PARSERS), IntakeStore())


def interest_engine() -> Engine:
    """Interest's engine as its worker builds it: the installed payer policies, the configured choice."""
    return Engine(policy_config.resolver(get_settings()), InterestStore())


def receivable_change(
    tenant: str,
    kind: str,
    *,
    reference: str,
    effective: date,
    determination: date,
    principal: str | Decimal = "1000.00",
    recovered: str | Decimal = "0.00",
    written_off: str | Decimal = "0.00",
    amount: str | Decimal | None = None,
    status: str = "open",
    payer: str = "01312",
    policy: str = "medicare",
    account: str | None = None,
    event_id: UUID | None = None,
    source: str = "test",
    **fields: Any,
) -> Envelope[ReceivableChanged]:
    """What matching announces about a receivable, for tests that play matching's part in front of interest or
    notification: one builder, so a change to the contract is made in one place and every such test keeps
    matching's arithmetic (the change is the amount recovered, else the principal; the balance never negative).

    ``fields`` sets the contract's other fields (``recovery_kind``, ``recovery_schedule``, ``paused``…)."""
    accrued = fields.pop("interest_accrued", Decimal("0.00"))
    interest_recovered = fields.pop("interest_recovered", Decimal("0.00"))
    payload = ReceivableChanged(
        receivable_id=receivable_id(tenant, payer, reference),
        payer_id=payer,
        reference=reference,
        status=status,
        policy=policy,
        determination_date=determination,
        effective_date=effective,
        change_amount=Decimal(amount) if amount is not None else Decimal(recovered) or Decimal(principal),
        principal=Decimal(principal),
        principal_recovered=Decimal(recovered),
        interest_accrued=accrued,
        interest_recovered=interest_recovered,
        written_off=Decimal(written_off),
        balance=max(
            Decimal(principal) - Decimal(recovered) - Decimal(written_off) + accrued - interest_recovered,
            Decimal("0.00"),
        ),
        source=source,
        **fields,
    )
    return envelopes.build(
        payload,
        event_id=event_id or stable_id(tenant, reference, kind, effective),
        event_type=kind,
        tenant_id=tenant,
        account_key=account if account is not None else account_key(tenant, payer, "1234567893"),
        causation_id=source,
    )
