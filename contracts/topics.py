"""Every Kafka topic of offsetstream: name, key, payload and event types (the AsyncAPI source of truth).

This module is the only place a topic name is spelled. Code names a topic by its typed handle
(``CLAIM_PAYMENTS``: a ``Topic[ClaimPaymentsReceived]``), so a consumer registered for it receives that
payload type and a producer can only put an envelope of that type on it (``shared.stream``).
"""

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from contracts import events as ev
from contracts.envelope import Envelope, parse_envelope

P = TypeVar("P", bound=BaseModel)


@dataclass(frozen=True)
class Topic(Generic[P]):
    """A topic and what travels on it. ``partitions`` is created explicitly: Faust does not create sources.

    Key rule: every message is keyed by its envelope's ``account_key`` (:meth:`key_of`); ``key`` says what
    that key is on this topic, for the AsyncAPI document."""

    name: str
    payload: type[P]
    event_types: tuple[str, ...]
    key: str
    description: str
    producers: tuple[str, ...]
    consumers: tuple[str, ...] = field(default=())
    partitions: int = 3

    @property
    def dlt(self) -> str:
        """Dead-letter topic of this topic: original bytes plus reason headers."""
        return dlt_name(self.name)

    def parse(self, raw: bytes | str) -> Envelope[P]:
        """A message of this topic, parsed tolerantly (``contracts.envelope.parse_envelope``)."""
        return parse_envelope(raw, self.payload)

    def key_of(self, envelope: Envelope[P]) -> str:
        """The partition key of a message of this topic: its account, so one account stays ordered."""
        return envelope.account_key


def dlt_name(topic_name: str) -> str:
    """``remit.<noun>.v1`` → ``remit.<noun>.dlt``: one dead-letter topic per noun, across major versions,
    so staff have a single place per stage to look (DESIGN.md names ``remit.intake.dlt``)."""
    stem, _, version = topic_name.rpartition(".")
    return f"{stem}.dlt" if version.startswith("v") and version[1:].isdigit() else f"{topic_name}.dlt"


ACCOUNT_KEY = "account_key: hex SHA-256 of (tenant, payer id, payee id) — orders one provider–payer account"

INTAKE: Topic[ev.RawFileReceived] = Topic(
    name="remit.intake.v1",
    payload=ev.RawFileReceived,
    event_types=("RawFileReceived",),
    key="tenant id + file SHA-256 (a file's retries land on one partition)",
    description="Raw payer files published by `offsetstream ingest` and the drop folder.",
    producers=("cli",),
    consumers=("intake",),
)

FILE_REPLAYS: Topic[ev.FileReplayRequested] = Topic(
    name="remit.file-replays.v1",
    payload=ev.FileReplayRequested,
    event_types=("FileReplayRequested",),
    key='account_key: hex of (tenant, "file", file SHA-256) — one file\'s requests stay in order',
    description="Staff asking intake to process a payer file it keeps (one with rejected transactions) again, "
    "as a replay of its dead letters would; names the file by SHA-256, never carries its bytes.",
    producers=("cli", "console"),
    consumers=("intake",),
)

REMITTANCES: Topic[ev.RemittanceReceived] = Topic(
    name="remit.remittances.v1",
    payload=ev.RemittanceReceived,
    event_types=("RemittanceReceived",),
    key=ACCOUNT_KEY,
    description="One event per 835 transaction: payment, payer, payee, totals (for downstream posting/GL).",
    producers=("intake",),
)

CLAIM_PAYMENTS_V1: Topic[ev.ClaimPaymentReceived] = Topic(
    name="remit.claim-payments.v1",
    payload=ev.ClaimPaymentReceived,
    event_types=("ClaimPaymentReceived",),
    key=ACCOUNT_KEY,
    description="One event per claim (CLP loop) with its CAS adjustments. Superseded by "
    "`remit.claim-payments.v2` (intake no longer produces here); detection still consumes it, for records "
    "published before the upgrade and replays of their dead letters.",
    producers=(),
    consumers=("detection",),
)

CLAIM_PAYMENTS: Topic[ev.ClaimPaymentsReceived] = Topic(
    name="remit.claim-payments.v2",
    payload=ev.ClaimPaymentsReceived,
    event_types=("ClaimPaymentsReceived",),
    key=ACCOUNT_KEY,
    description="The claims (CLP loops with their CAS adjustments and service lines) of each 835 transaction: "
    "one event per transaction, per 100 claims of a larger one (fewer when they carry many lines), each claim "
    "as v1 carried it.",
    producers=("intake",),
    consumers=("detection",),
)

PATIENT_TOKENS: Topic[ev.PatientTokensSeen] = Topic(
    name="remit.patient-tokens.v1",
    payload=ev.PatientTokensSeen,
    event_types=("PatientTokensSeen",),
    key=ACCOUNT_KEY,
    description="The patient control numbers of each 835 transaction's claims as keyed digests (never the "
    "numbers): one event per transaction (per 1 000 claims of a larger one), which notification learns so "
    "outbound text can be scrubbed of them, instead of consuming every claim payment.",
    producers=("intake",),
    consumers=("notification",),
)

PROVIDER_ADJUSTMENTS: Topic[ev.ProviderAdjustmentReceived] = Topic(
    name="remit.provider-adjustments.v1",
    payload=ev.ProviderAdjustmentReceived,
    event_types=("ProviderAdjustmentReceived",),
    key=ACCOUNT_KEY,
    description="One event per PLB reason/amount pair (positive = withheld).",
    producers=("intake",),
    consumers=("detection", "matching"),
)

OVERPAYMENTS: Topic[ev.OverpaymentDetected] = Topic(
    name="remit.overpayments.v1",
    payload=ev.OverpaymentDetected,
    event_types=("OverpaymentDetected",),
    key=ACCOUNT_KEY,
    description="Evidence of an overpayment, merged per (tenant, payer, reference) into one receivable.",
    producers=("detection",),
    consumers=("matching", "notification"),
)

LETTERS: Topic[ev.LetterReceived] = Topic(
    name="remit.letters.v1",
    payload=ev.LetterReceived,
    event_types=("DemandLetterReceived", "ProviderIdentifiedOverpayment"),
    key=ACCOUNT_KEY,
    description="Demand letters and provider-identified overpayments entered by staff.",
    producers=("cli", "console"),
    consumers=("detection",),
)

STAFF_ACTIONS: Topic[ev.StaffActionRecorded] = Topic(
    name="remit.staff-actions.v1",
    payload=ev.StaffActionRecorded,
    event_types=(
        "AppealFiled",
        "AppealDecided",
        "WriteOffRecorded",
        "RefundSent",
        "RepaymentScheduleGranted",
    ),
    key=ACCOUNT_KEY,
    description="Appeals, decisions, write-offs, refund checks and extended repayment schedules entered by "
    "staff for a receivable.",
    producers=("cli", "console"),
    consumers=("matching", "interest"),
)

WORK_ITEMS: Topic[ev.WorkItemActionRecorded] = Topic(
    name="remit.work-items.v1",
    payload=ev.WorkItemActionRecorded,
    event_types=("WorkItemLinked", "WorkItemNotOurs", "WorkItemAssigned", "WorkItemNoted"),
    key=ACCOUNT_KEY,
    description="Staff steps on a work-queue item (withheld money no receivable explains yet): link it to a "
    "receivable, not ours, assign, note. Matching owns the work queue and applies them.",
    producers=("cli", "console"),
    consumers=("matching",),
)

ALERTS: Topic[ev.AlertRaised] = Topic(
    name="remit.alerts.v1",
    payload=ev.AlertRaised,
    event_types=("AlertRaised",),
    key=ACCOUNT_KEY,
    description="Flags for staff: reversal without correction, forwarding balance not closed, violations.",
    producers=("detection", "matching", "interest"),
    consumers=("notification",),
)

OFFSETS: Topic[ev.OffsetRecorded] = Topic(
    name="remit.offsets.v1",
    payload=ev.OffsetRecorded,
    event_types=(
        "OffsetApplied",
        "OffsetUnmatched",
        "RecoveryDeferred",
        "ForwardingBalanceOpened",
        "ForwardingBalanceApplied",
        "RefundAcknowledged",
        "NonOffsetRecorded",
        "OffsetDismissed",
    ),
    key=ACCOUNT_KEY,
    description="How each PLB pair was explained: allocated, unmatched, forwarding balance, non-offset; and "
    "a work-queue item staff dismissed as not ours.",
    producers=("matching",),
    consumers=("notification",),
)

RECEIVABLES: Topic[ev.ReceivableChanged] = Topic(
    name="remit.receivables.v1",
    payload=ev.ReceivableChanged,
    event_types=(
        "ReceivableOpened",
        "ReceivableIncreased",
        "ReceivableUpdated",
        "ReceivableReduced",
        "ReceivableSettled",
        "ReceivableRefunded",
        "ReceivableWrittenOff",
        "ReceivablePaused",
        "ReceivableResumed",
        "ReceivableMerged",
        "InterestAdded",
    ),
    key=ACCOUNT_KEY,
    description="State of a receivable after each change.",
    producers=("matching",),
    consumers=("interest", "notification"),
)

INTEREST: Topic[ev.InterestAccrued] = Topic(
    name="remit.interest.v1",
    payload=ev.InterestAccrued,
    event_types=("InterestAccrued",),
    key=ACCOUNT_KEY,
    description="One event per accrued interest period of a receivable.",
    producers=("interest",),
    consumers=("matching", "notification"),
)

NOTIFICATIONS: Topic[ev.NotificationEmitted] = Topic(
    name="remit.notifications.v1",
    payload=ev.NotificationEmitted,
    event_types=("NotificationEmitted",),
    key=ACCOUNT_KEY,
    description="Outbound notifications for downstream systems (practice management, GL).",
    producers=("notification",),
)

TOPICS: tuple[Topic[Any], ...] = (
    INTAKE,
    FILE_REPLAYS,
    REMITTANCES,
    CLAIM_PAYMENTS_V1,
    CLAIM_PAYMENTS,
    PATIENT_TOKENS,
    PROVIDER_ADJUSTMENTS,
    OVERPAYMENTS,
    LETTERS,
    STAFF_ACTIONS,
    WORK_ITEMS,
    ALERTS,
    OFFSETS,
    RECEIVABLES,
    INTEREST,
    NOTIFICATIONS,
)

_BY_NAME: dict[str, Topic[Any]] = {t.name: t for t in TOPICS}


def topic(name: str) -> Topic[Any]:
    """Look a topic up by name; a typo fails loudly at start-up rather than producing to a stray topic."""
    return _BY_NAME[name]


def all_topic_names() -> list[str]:
    """Every topic to create at start-up: the topics and a dead-letter topic for each consumed one, once each
    (the major versions of one noun share their dead-letter topic, see :func:`dlt_name`)."""
    names = [t.name for t in TOPICS]
    names += [t.dlt for t in TOPICS if t.consumers]
    names.append(NOTIFICATIONS.dlt)
    return list(dict.fromkeys(names))
