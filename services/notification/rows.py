"""The values notification's repository takes and gives (``store.NotificationStore``): frozen rows, never
asyncpg records, so the engine and the tests depend on names, not on column positions (issue #17.2)."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from uuid import UUID

from services.notification.domain import Deadline, OffsetApplication
from shared.phi import TokenKind, Tokens


@dataclass(frozen=True)
class NewNotification:
    """A notification row as the consumer and the timer record it (already scrubbed)."""

    tenant_id: str
    notification_id: UUID
    kind: str
    severity: str
    summary: str
    facts: dict[str, str]
    related_event_id: UUID
    status: str
    token_generation: int | None = None
    """The account's token generation the emission's scan saw, when that scan found nothing to mask (else
    None): delivery skips its own scan while the account stays at it (``store.clean_since_emitted``)."""


@dataclass(frozen=True)
class ReceivableRow:
    """The latest state of a receivable, as notification keeps it for its deadline timer."""

    tenant_id: str
    receivable_id: UUID
    account_key: str
    payer_id: str
    reference: str
    policy: str
    status: str
    determination_date: date
    balance: Decimal
    paused: bool


@dataclass(frozen=True)
class AllocationHalf:
    """The allocation half of an "offset applied" join (from ``remit.offsets.v1``)."""

    tenant_id: str
    offset_id: UUID
    receivable_id: UUID
    account_key: str
    reference: str
    trace_number: str
    payment_date: date
    reason_code: str
    to_interest: Decimal
    to_principal: Decimal


@dataclass(frozen=True)
class BalanceHalf:
    """The balance half of the join: the receivable after a reduction the offset caused."""

    tenant_id: str
    offset_id: UUID
    receivable_id: UUID
    balance_after: Decimal
    status_after: str


JoinKey = tuple[str, UUID, UUID]
"""(tenant, offset id, receivable id): one row of ``notification.offset_applications``."""

Half = AllocationHalf | BalanceHalf


@dataclass(frozen=True)
class JoinRow:
    """A row of ``notification.offset_applications``: whichever halves of the join arrived, and whether the
    application was announced."""

    tenant_id: str
    offset_id: UUID
    receivable_id: UUID
    account_key: str | None = None
    reference: str | None = None
    trace_number: str | None = None
    payment_date: date | None = None
    reason_code: str | None = None
    applied: Decimal | None = None
    to_interest: Decimal | None = None
    to_principal: Decimal | None = None
    balance_after: Decimal | None = None
    status_after: str | None = None
    notified: bool = False

    @property
    def key(self) -> JoinKey:
        return (self.tenant_id, self.offset_id, self.receivable_id)

    def application(self) -> OffsetApplication | None:
        """The application to announce, once both halves are there."""
        if (
            self.applied is None
            or self.balance_after is None
            or self.to_interest is None
            or self.to_principal is None
            or self.status_after is None
        ):
            return None
        return OffsetApplication(
            offset_id=str(self.offset_id),
            receivable_id=str(self.receivable_id),
            reference=self.reference or "",
            trace_number=self.trace_number or "",
            payment_date=self.payment_date or date.min,
            reason_code=self.reason_code or "",
            applied=self.applied,
            to_interest=self.to_interest,
            to_principal=self.to_principal,
            balance_after=self.balance_after,
            status_after=self.status_after,
        )


def join_key(half: Half) -> JoinKey:
    return (half.tenant_id, half.offset_id, half.receivable_id)


def joined(
    stored: Mapping[JoinKey, JoinRow], halves: Sequence[Half]
) -> tuple[dict[JoinKey, JoinRow], list[tuple[int, OffsetApplication]]]:
    """The halves of a batch laid onto the stored rows in order, as one by one: the rows they leave, and each
    application completed, with the position of the half that completed it (the second half to arrive, once)
    and the row as it was then."""
    rows = dict(stored)
    completed: list[tuple[int, OffsetApplication]] = []
    for position, half in enumerate(halves):
        key = join_key(half)
        row = rows.get(key) or JoinRow(*key)
        if isinstance(half, AllocationHalf):
            row = replace(
                row,
                account_key=half.account_key,
                reference=half.reference,
                trace_number=half.trace_number,
                payment_date=half.payment_date,
                reason_code=half.reason_code,
                applied=half.to_interest + half.to_principal,
                to_interest=half.to_interest,
                to_principal=half.to_principal,
            )
        else:
            row = replace(row, balance_after=half.balance_after, status_after=half.status_after)
        if not row.notified and (app := row.application()) is not None:
            row = replace(row, notified=True)
            completed.append((position, app))
        rows[key] = row
    return rows, completed


@dataclass(frozen=True)
class DueDeadline:
    """A deadline the timer may remind of, with the tenant and account it belongs to."""

    tenant_id: str
    account_key: str
    deadline: Deadline


@dataclass(frozen=True)
class DigestDay:
    """A tenant's closed day that has digest items and no digest yet."""

    tenant_id: str
    day: date


@dataclass(frozen=True)
class AttemptStarted:
    """An attempt logged as 'sending': its log row and its number for the destination."""

    row_id: int
    attempt: int


@dataclass(frozen=True)
class AttemptOutcome:
    """How one logged attempt ended: its log row, ``delivered`` or ``failed``, the peer's code, latency, error."""

    row_id: int
    status: str
    code: int | None
    latency_ms: float
    error: str | None


@dataclass(frozen=True)
class RoundOutcome:
    """What one dispatcher round of one destination decided, written in one statement
    (``NotificationStore.finish_round``); the delivered notifications' status follows
    (``NotificationStore.mark_delivered``)."""

    attempts: tuple[AttemptOutcome, ...] = ()
    withdrawn: tuple[int, ...] = ()
    """'sending' rows of jobs the round did not reach: never attempted, so not kept in the log."""
    finished_jobs: tuple[int, ...] = ()
    """Queue rows done with: delivered, already delivered or given up."""
    gave_up: tuple[tuple[str, UUID], ...] = ()


@dataclass(frozen=True)
class AttemptRecord:
    """One logged delivery attempt (operators and tests)."""

    notification_id: UUID
    channel: str
    target: str
    attempt: int
    status: str
    http_status: int | None
    latency_ms: float | None
    error: str | None


@dataclass(frozen=True)
class TokenScope:
    """Whose tokens to look for in which texts: one account of a tenant, or (``account_key`` None, a digest)
    every account of the tenant."""

    tenant_id: str
    account_key: str | None
    texts: tuple[str, ...]


@dataclass(frozen=True)
class ScannedTokens:
    """What a scan of a scope's texts found: the known tokens that occur in them, and the account's token
    generation the scan was made at (None for a tenant-wide scope)."""

    tokens: Tokens
    generation: int | None


@dataclass(frozen=True)
class LearntToken:
    """One digest of a sensitive value of an account (``shared.phi.token_rows``)."""

    tenant_id: str
    account_key: str
    kind: TokenKind
    length: int
    digest: str
    alphanumeric: bool
    """The token is ASCII letters and digits only (``shared.phi.shaped_token_rows``)."""
