"""Every Kafka topic of offsetstream: name, key, payload and event types (the AsyncAPI source of truth)."""

from dataclasses import dataclass, field

from pydantic import BaseModel

from contracts import events as ev


@dataclass(frozen=True)
class Topic:
    """A topic and what travels on it. ``partitions`` is created explicitly: Faust does not create sources."""

    name: str
    payload: type[BaseModel] | None
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


def dlt_name(topic_name: str) -> str:
    """``remit.<noun>.v1`` → ``remit.<noun>.dlt``: one dead-letter topic per noun, across major versions,
    so staff have a single place per stage to look (DESIGN.md names ``remit.intake.dlt``)."""
    stem, _, version = topic_name.rpartition(".")
    return f"{stem}.dlt" if version.startswith("v") and version[1:].isdigit() else f"{topic_name}.dlt"


ACCOUNT_KEY = "account_key: hex SHA-256 of (tenant, payer id, payee id) — orders one provider–payer account"

TOPICS: tuple[Topic, ...] = (
    Topic(
        name="remit.intake.v1",
        payload=ev.RawFileReceived,
        event_types=("RawFileReceived",),
        key="tenant id + file SHA-256 (a file's retries land on one partition)",
        description="Raw payer files published by `offsetstream ingest` and the drop folder.",
        producers=("cli",),
        consumers=("intake",),
    ),
    Topic(
        name="remit.remittances.v1",
        payload=ev.RemittanceReceived,
        event_types=("RemittanceReceived",),
        key=ACCOUNT_KEY,
        description="One event per 835 transaction: payment, payer, payee, totals (for downstream posting/GL).",
        producers=("intake",),
    ),
    Topic(
        name="remit.claim-payments.v1",
        payload=ev.ClaimPaymentReceived,
        event_types=("ClaimPaymentReceived",),
        key=ACCOUNT_KEY,
        description="One event per claim (CLP loop) with its CAS adjustments.",
        producers=("intake",),
        consumers=("detection", "notification"),
    ),
    Topic(
        name="remit.provider-adjustments.v1",
        payload=ev.ProviderAdjustmentReceived,
        event_types=("ProviderAdjustmentReceived",),
        key=ACCOUNT_KEY,
        description="One event per PLB reason/amount pair (positive = withheld).",
        producers=("intake",),
        consumers=("detection", "matching"),
    ),
    Topic(
        name="remit.overpayments.v1",
        payload=ev.OverpaymentDetected,
        event_types=("OverpaymentDetected",),
        key=ACCOUNT_KEY,
        description="Evidence of an overpayment, merged per (tenant, payer, reference) into one receivable.",
        producers=("detection",),
        consumers=("matching", "notification"),
    ),
    Topic(
        name="remit.letters.v1",
        payload=ev.LetterReceived,
        event_types=("DemandLetterReceived", "ProviderIdentifiedOverpayment"),
        key=ACCOUNT_KEY,
        description="Demand letters and provider-identified overpayments entered by staff.",
        producers=("cli",),
        consumers=("detection",),
    ),
    Topic(
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
        producers=("cli",),
        consumers=("matching", "interest"),
    ),
    Topic(
        name="remit.alerts.v1",
        payload=ev.AlertRaised,
        event_types=("AlertRaised",),
        key=ACCOUNT_KEY,
        description="Flags for staff: reversal without correction, forwarding balance not closed, violations.",
        producers=("detection", "matching", "interest"),
        consumers=("notification",),
    ),
    Topic(
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
        ),
        key=ACCOUNT_KEY,
        description="How each PLB pair was explained: allocated, unmatched, forwarding balance, non-offset.",
        producers=("matching",),
        consumers=("notification",),
    ),
    Topic(
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
    ),
    Topic(
        name="remit.interest.v1",
        payload=ev.InterestAccrued,
        event_types=("InterestAccrued",),
        key=ACCOUNT_KEY,
        description="One event per accrued interest period of a receivable.",
        producers=("interest",),
        consumers=("matching", "notification"),
    ),
    Topic(
        name="remit.notifications.v1",
        payload=ev.NotificationEmitted,
        event_types=("NotificationEmitted",),
        key=ACCOUNT_KEY,
        description="Outbound notifications for downstream systems (practice management, GL).",
        producers=("notification",),
    ),
)

_BY_NAME = {t.name: t for t in TOPICS}


def topic(name: str) -> Topic:
    """Look a topic up by name; a typo fails loudly at start-up rather than producing to a stray topic."""
    return _BY_NAME[name]


def all_topic_names() -> list[str]:
    """Every topic to create at start-up: the topics and a dead-letter topic for each consumed one."""
    names = [t.name for t in TOPICS]
    names += [t.dlt for t in TOPICS if t.consumers]
    names.append(dlt_name("remit.notifications.v1"))
    return names
