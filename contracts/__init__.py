"""Shared message contracts of offsetstream: the only thing services share besides ``shared/``.

Every Kafka message is an :class:`Envelope` around one payload model. Producers validate strictly
(``extra="forbid"``); consumers parse tolerantly (``extra="ignore"``) through :func:`parse_envelope`
so that a new optional field from a newer producer never breaks an older consumer.
"""

from contracts.envelope import Envelope, parse_envelope
from contracts.events import (
    AlertRaised,
    ClaimAdjustment,
    ClaimPaymentReceived,
    ClaimPaymentsReceived,
    FileReplayRequested,
    InterestAccrued,
    LetterReceived,
    NotificationEmitted,
    OffsetRecorded,
    OverpaymentDetected,
    ProviderAdjustmentReceived,
    RawFileReceived,
    ReceivableChanged,
    RemittanceReceived,
    ServicePayment,
    StaffActionRecorded,
    WorkItemActionRecorded,
)
from contracts.money import Money, to_money
from contracts.topics import TOPICS, Topic, topic

__all__ = [
    "TOPICS",
    "AlertRaised",
    "ClaimAdjustment",
    "ClaimPaymentReceived",
    "ClaimPaymentsReceived",
    "Envelope",
    "FileReplayRequested",
    "InterestAccrued",
    "LetterReceived",
    "Money",
    "NotificationEmitted",
    "OffsetRecorded",
    "OverpaymentDetected",
    "ProviderAdjustmentReceived",
    "RawFileReceived",
    "ReceivableChanged",
    "RemittanceReceived",
    "ServicePayment",
    "StaffActionRecorded",
    "Topic",
    "WorkItemActionRecorded",
    "parse_envelope",
    "to_money",
    "topic",
]
