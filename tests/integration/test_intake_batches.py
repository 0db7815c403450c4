"""Intake posts a file's remittances set-based (issue #18): a constant number of statements whatever the number
of transactions in the file, and the same outcome the transaction-by-transaction loop had, including a file that
holds a reissue or a conflict of its own earlier transaction (each transaction is classified against what the
file posted before it, as well as against the ledger), and a refused transaction that then counts as never
posted.

Story of each scenario: one payment (payer, payee, TRN02 trace number, payment date) sent several times under
new ST02 control numbers, with the same money (a reissue: not posted) or other money (a conflict: posted with a
warning for staff)."""

import hashlib
import zlib
from decimal import Decimal

import asyncpg
import pytest
from harness import counted_batch, intake_files
from x12_builder import Adj, Claim, Service, Transaction, build_835

from contracts.topics import INTAKE, REMITTANCES
from services.intake import domain, engine, metrics, publish
from services.intake.engine import file_message_id
from shared.batches import apply_batch
from shared.messages import BatchHandler, Incoming, Outgoing, Result

pytestmark = pytest.mark.integration
D = Decimal
FILES = intake_files()
CONFLICT = "was already posted for this payer and payee with other totals"


def claim(pcn: str, *charges: str) -> Claim:
    return Claim(pcn, [Service(D(c)) for c in charges], icn=f"7{zlib.crc32(pcn.encode()) % 10**9:09d}")


def payment(st02: str, trace: str, *claims: Claim) -> Transaction:
    return Transaction(claims=list(claims), trace=trace, payment_date="20260803", st02=st02)


def x12_file(isa13: str, *transactions: Transaction) -> bytes:
    return build_835(*transactions, isa13=isa13).encode()


async def feed(ledger: asyncpg.Connection, tenant: str, content: bytes, name: str, offset: int) -> Result:
    """One file as the intake stage applies it (its own transaction, its idempotency claim)."""
    key, value = publish.raw_file_message(content, name, tenant, "cli")
    [result] = await apply_batch(
        ledger,
        "intake",
        FILES.handle_file,
        [Incoming(INTAKE.name, 0, offset, key, value)],
        file_message_id,
        replay=FILES.replay_file,
    )
    assert result.outcome == "applied"
    return result


async def posted(ledger: asyncpg.Connection, tenant: str, content: bytes) -> list[tuple[str, bool]]:
    """(ST02, whether it carries the conflict warning) of each remittance the file posted, in ST02 order."""
    rows = await ledger.fetch(
        "SELECT st02, warnings FROM intake.remittances WHERE tenant_id = $1 AND file_sha256 = $2 ORDER BY st02",
        tenant,
        hashlib.sha256(content).hexdigest(),
    )
    return [(r["st02"], any(CONFLICT in w for w in r["warnings"])) for r in rows]


async def duplicates_of(ledger: asyncpg.Connection, tenant: str, content: bytes) -> int:
    found: int = await ledger.fetchval(
        "SELECT duplicates FROM intake.files WHERE tenant_id = $1 AND sha256 = $2",
        tenant,
        hashlib.sha256(content).hexdigest(),
    )
    return found


def remittances_out(result: Result) -> list[str]:
    """ST02 of each RemittanceReceived the file published, in output order."""
    return [
        REMITTANCES.parse(o.value).payload.transaction_control_number
        for o in result.outputs
        if o.topic == REMITTANCES.name
    ]


def duplicates_counted() -> float:
    value: float = metrics.DUPLICATES.labels("x12_835")._value.get()
    return value


async def test_a_file_costs_the_same_statements_whatever_its_number_of_transactions(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    counted: dict[int, list[str]] = {}
    for count in (3, 4, 40):  # the first file warms the connection's type cache up
        transactions = [
            payment(f"{n:04d}", f"EFTN{count:03d}{n:04d}", claim(f"PCN{count}-{n}", "100.00"))
            for n in range(1, count + 1)
        ]
        # one of them a reissue of the first, one a conflict: classified, not costing a statement each
        transactions[1] = payment("0002", transactions[0].trace, claim(f"PCN{count}-1", "100.00"))
        transactions[2] = payment("0003", transactions[0].trace, claim(f"PCN{count}-x", "90.00"))
        key, value = publish.raw_file_message(
            x12_file(f"{count:09d}", *transactions), f"n{count}.835", tenant, "cli"
        )
        counted[count] = statements = list[str]()
        [result] = await counted_batch(
            ledger,
            "intake",
            [Incoming(INTAKE.name, 0, count, key, value)],
            statements,
            BatchHandler.each(FILES.handle_file),
        )
        assert result.outcome == "applied"
        assert len(remittances_out(result)) == count - 1  # the reissue is not posted
        print(f"{count} transactions: {len(statements)} statements: {statements}")

    # BEGIN, claim the id, SAVEPOINT, the receipt, posted before?, remittances in, the file, RELEASE, the outputs,
    # COMMIT: nothing per transaction
    assert len(counted[4]) == len(counted[40]) == 10, counted[40]
    assert sum(s.startswith("INSERT INTO intake.remittances") for s in counted[40]) == 1


async def test_a_file_holding_a_reissue_and_a_conflict_of_its_own_transaction_posts_what_one_by_one_did(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    first = claim("PCN-S1", "300.00")
    content = x12_file(
        "000000511",
        payment("0001", "EFTSELF01", first),
        payment("0002", "EFTSELF01", first),  # a reissue of 0001: not posted
        payment("0003", "EFTSELF01", first, claim("PCN-S2", "50.00")),  # other money: posted, warned
        payment("0004", "EFTSELF01", first, claim("PCN-S2", "50.00")),  # a reissue of 0003: not posted
        payment("0005", "EFTSELF02", claim("PCN-S3", "75.00")),  # another payment
    )
    counted_before = duplicates_counted()

    result = await feed(ledger, tenant, content, "self.835", 0)

    assert remittances_out(result) == ["0001", "0003", "0005"]
    assert await posted(ledger, tenant, content) == [("0001", False), ("0003", True), ("0005", False)]
    assert await duplicates_of(ledger, tenant, content) == 2
    assert duplicates_counted() - counted_before == 2


async def test_a_file_holding_a_reissue_and_a_conflict_of_an_earlier_file_posts_what_one_by_one_did(
    ledger: asyncpg.Connection, tenant: str
) -> None:
    first = claim("PCN-E1", "300.00")
    earlier = x12_file("000000521", payment("0001", "EFTPRIOR1", first))
    await feed(ledger, tenant, earlier, "earlier.835", 0)

    later = [
        payment("0001", "EFTPRIOR1", first),  # new ISA13: a reissue of the earlier file's
        payment("0002", "EFTPRIOR1", first, claim("PCN-E2", "50.00")),  # a conflict with it
        payment("0003", "EFTPRIOR1", first, claim("PCN-E2", "50.00")),  # a reissue of 0002 (this file's)
        payment("0004", "EFTPRIOR1", first, claim("PCN-E3", "20.00")),  # a conflict with both
    ]
    content = x12_file("000000522", *later)
    counted_before = duplicates_counted()
    result = await feed(ledger, tenant, content, "later.835", 1)

    assert remittances_out(result) == ["0002", "0004"]
    assert await posted(ledger, tenant, content) == [("0002", True), ("0004", True)]
    assert await duplicates_of(ledger, tenant, content) == 2
    assert duplicates_counted() - counted_before == 2

    # The same transactions again beside a new one (other bytes, so not a copy of the file): the posted ones
    # are the same remittances, the others reissues, and only the new one posts.
    again = x12_file("000000522", *later, payment("0005", "EFTPRIOR2", claim("PCN-E4", "10.00")))
    result = await feed(ledger, tenant, again, "again.835", 2)
    assert remittances_out(result) == ["0005"]
    assert await posted(ledger, tenant, again) == [("0005", False)]
    assert await duplicates_of(ledger, tenant, again) == 4


async def test_a_refused_transaction_is_not_posted_before_the_file_s_later_ones(
    ledger: asyncpg.Connection, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transaction too large for the broker is refused before it is recorded: a later transaction of the
    same payment with other money is then no conflict of it, and one with that later one's money a reissue."""
    heavy = Claim(
        "PCN-H1",
        [
            Service(D("10.00"), [Adj("CO", "45", D("1.00"))], procedure=("HC", f"9{n:04d}"))
            for n in range(120)
        ],
        icn="7000000001",
    )
    light = claim("PCN-H2", "40.00")
    transactions = [
        payment("0001", "EFTHEAVY1", heavy),  # refused: too large
        payment("0002", "EFTHEAVY1", light),  # other money than 0001, which was never posted: no warning
        payment("0003", "EFTHEAVY1", light),  # a reissue of 0002
    ]
    content = x12_file("000000531", *transactions)
    events = {
        parsed.remittance.transaction_control_number: max(
            Outgoing.event(topic, env).size() for topic, env in domain.remittance_events(tenant, parsed)
        )
        for parsed in FILES.parsers["x12_835"].parse(
            content, file_name="heavy.835", file_sha256=hashlib.sha256(content).hexdigest(), tenant_id=tenant
        )
        if not isinstance(parsed, Exception)
    }
    cap = events["0002"] + 500
    assert events["0001"] > cap
    monkeypatch.setattr(engine, "MAX_MESSAGE_BYTES", cap)

    result = await feed(ledger, tenant, content, "heavy.835", 0)

    assert remittances_out(result) == ["0002"]
    assert await posted(ledger, tenant, content) == [("0002", False)]
    dead = [dict(o.headers) for o in result.outputs if o.topic == INTAKE.dlt]
    assert [(h["reason"], h["location.st02"]) for h in dead] == [(b"too_large", b"0001")]
    assert await duplicates_of(ledger, tenant, content) == 1
