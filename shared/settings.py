"""One typed settings object for every service and command, read from ``OFFSETSTREAM_*`` env vars."""

from datetime import date
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[1]

SERVICES = ("intake", "detection", "matching", "interest", "notification")

DEFAULT_WEB_PORTS = {
    "intake": 6101,
    "detection": 6102,
    "matching": 6103,
    "interest": 6104,
    "notification": 6105,
}


class Settings(BaseSettings):
    """Settings shared by all five services; docker-compose.yml sets the same names (a test checks it)."""

    model_config = SettingsConfigDict(env_prefix="OFFSETSTREAM_", frozen=True, extra="ignore")

    kafka_bootstrap: str = Field(default="127.0.0.1:9092", description="host:port of the Kafka broker.")
    # Kafka login of this process (issue 16; shared/kafka_security.py, docs/security.md "Kafka")
    kafka_security_protocol: Literal["SASL_PLAINTEXT", "SASL_SSL", "PLAINTEXT"] = Field(
        default="SASL_PLAINTEXT",
        description="How clients talk to the broker: SASL (SCRAM) over plain TCP or TLS. PLAINTEXT (no "
        "authentication at all) only when set explicitly, for a developer's own broker.",
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = Field(
        default="SCRAM-SHA-512", description="SASL mechanism of the Kafka login."
    )
    kafka_username: str | None = Field(
        default=None,
        description="Kafka principal of this process: the service's own (intake, detection, matching, interest, "
        "notification), operator for the command line, admin for topic and ACL administration. No default.",
    )
    kafka_password: SecretStr | None = Field(
        default=None, description="Password of that principal; no default (a SASL client refuses to start)."
    )
    kafka_ssl_cafile: Path | None = Field(
        default=None,
        description="CA bundle that verifies the broker's certificate with SASL_SSL (default: system's).",
    )
    database_url: str = Field(
        default="postgresql://offsetstream@127.0.0.1:5432/offsetstream",
        description="asyncpg DSN of the ledger.",
    )
    web_host: str = Field(default="127.0.0.1", description="Bind address of each service's /metrics server.")
    web_ports: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_WEB_PORTS))
    web_port_override: int | None = Field(
        default=None,
        alias="OFFSETSTREAM_WEB_PORT",
        description="Exact /metrics port of this one process (local stacks pick free ports so runs never collide).",
    )
    worker_id: int = Field(
        default=0, description="Index of this worker among the workers of one stage (web port + 10 × id)."
    )
    topic_partitions: int = Field(default=3, description="Partitions of every per-account topic.")
    kafka_replication_factor: int = Field(
        default=1,
        ge=1,
        description="Replicas of every topic offsetstream creates (topics create, faust's internal topics): 1 "
        "on a single broker, 3 on a cluster (the local cluster sets it; infra/kafka/README.md).",
    )
    kafka_min_insync_replicas: int | None = Field(
        default=None,
        ge=1,
        description="min.insync.replicas of every topic offsetstream creates (2 with replication factor 3: an "
        "acks=all send then survives one broker down and is never acknowledged on one disk only); unset = the "
        "broker's default.",
    )
    x12_max_transaction_segments: int = Field(
        default=1_000_000,
        ge=100,
        description="Segments of the longest 835 transaction (ST to SE) intake reads; a longer one is refused "
        "whole as too_large (one transaction is read in memory, about 0.25 KiB a segment).",
    )
    batch_max_messages: int = Field(
        default=200,
        ge=1,
        description="Most input messages one stage applies in one PostgreSQL transaction and one broker-ack wait.",
    )
    commit_interval_seconds: float = Field(
        default=0.2,
        gt=0,
        description="How often a stage commits its consumer offsets (bounds the re-delivery after a crash; "
        "re-delivered messages are recognised as duplicates and only re-published).",
    )
    batch_max_wait_seconds: float = Field(
        default=0.02,
        gt=0,
        description="Longest a stage waits to fill a batch before applying what it has (added latency when idle).",
    )
    default_tenant: str = Field(default="default", description="Tenant used when a command names none.")
    # The staff console (services/console, issue 19)
    console_host: str = Field(default="127.0.0.1", description="Bind address of the staff console.")
    console_port: int = Field(default=6110, description="HTTP port of the staff console.")
    console_secret: SecretStr | None = Field(
        default=None,
        description="Key that signs the console's session cookies and CSRF tokens (32+ random characters); no "
        "default: the console refuses to start without it.",
    )
    console_secure_cookies: bool = Field(
        default=True,
        description="Mark the console's cookies Secure (sent over HTTPS only). Only a console reached over "
        "plain HTTP on the loopback (make run-keep, the tests) turns it off.",
    )
    console_session_minutes: int = Field(
        default=480, ge=5, le=1440, description="How long a console login lasts (one working day by default)."
    )
    payer_policies: dict[str, str] = Field(
        default_factory=dict,
        description='Payer id → payer policy plugin name (e.g. {"87726": "ny"}), for every tenant; the policy '
        "configuration's payer entries win over it, it wins over the Medicare contractor table.",
    )
    policy_config: Path | None = Field(
        default=None,
        description="JSON file choosing payer policies (and their options) per tenant and payer; see "
        "policies.config. Without it payer_policies, then the Medicare contractor table "
        "(policies/data/medicare_contractors.csv) decide, and a payer neither names gets the commercial default.",
    )
    payee_directory: Path | None = Field(
        default=None,
        description="JSON file mapping payee identifiers (NPI from N1*PE, or tax id) to the tenant (clinic) "
        "they belong to. With it, `ingest` and the drop folder route each X12 transaction to its payee's "
        "tenant (a clearinghouse batch holding several clinics' ERAs is cut per clinic); payees not listed "
        "stay with the tenant the file was received for.",
    )
    fee_schedule_path: Path | None = Field(
        default=None,
        description="CSV fee schedule (payer_id,procedure_code,modifier,allowed_amount,effective_from,"
        "effective_to) for the paid-above-expected rule; the rule is idle without one.",
    )
    fee_schedule_tolerance: Decimal = Field(
        default=Decimal("0.50"),
        description="Dollars a line may be paid above its scheduled amount before it is flagged.",
    )
    reversal_correction_days: int = Field(
        default=30, description="Days after a reversal without a correction before staff are alerted."
    )
    match_confidence_threshold: float = Field(
        default=0.8, description="Score (0–1) a recovery needs to be applied to a receivable found by search."
    )
    forwarding_balance_days: int = Field(
        default=60, description="Days a forwarding balance may stay open before staff are alerted."
    )
    today: date | None = Field(
        default=None, description="Business date override (the injectable clock of the interest service)."
    )
    interest_tick_seconds: float = Field(
        default=3600.0, description="How often interest re-checks due periods."
    )
    phi_key: SecretStr | None = Field(
        default=None,
        description="Secret that keys the digests of patient control numbers intake publishes and notification "
        "stores and compares (shared.phi.configure_key; docs/security.md). Intake and notification need the same "
        "one and refuse to start without it, or with an empty, placeholder or short (< 32 characters) one; `make "
        "run` generates a random one for its own stack. Changing it: run `offsetstream phi relearn`.",
    )
    webhook_url: str | None = Field(default=None, description="Webhook endpoint for notifications, if any.")
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="Master key of webhook signatures (docs/webhooks.md): each tenant signs with its own key, "
        "derived from this one unless webhook_secrets lists the tenant (`python -m shared.webhook key TENANT` "
        "prints it for that tenant's receiver). No default: notification refuses to start when webhooks are "
        "routed without a key, or with an empty, placeholder or short (< 32 characters) one; `make run` "
        "generates a random one for its own stack.",
    )
    webhook_secrets: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Tenant → that tenant's own webhook signing key (JSON object), instead of the derived one; "
        "same rules as webhook_secret.",
    )
    webhook_max_attempts: int = Field(
        default=5, description="Attempts before a notification is dead-lettered."
    )
    data_dir: Path = Field(
        default=REPO_ROOT / ".local", description="Where local Kafka/PostgreSQL keep data."
    )
    log_level: str = Field(default="INFO", description="Python logging level.")
    # notification: routing file, rule thresholds, timer, delivery back-off and the SMTP relay (appended block)
    notification_routes: Path | None = Field(
        default=None,
        description="JSON/YAML routing file: tenant → event kind → [{channel, target, mode}]; without it every "
        "notification goes immediately to webhook_url (when set).",
    )
    notification_lead_days: int = Field(
        default=5, description="Days before a receivable's deadline that staff are told it is approaching."
    )
    notification_interest_threshold: Decimal = Field(
        default=Decimal("0.00"),
        description="Interest accrued for one period above which staff are notified (dollars).",
    )
    notification_tick_seconds: float = Field(
        default=3600.0, description="How often notification scans deadlines and composes daily digests."
    )
    notification_backoff_seconds: float = Field(
        default=0.2, description="First retry delay of a delivery; doubles per attempt, with jitter."
    )
    notification_backoff_max_seconds: float = Field(
        default=5.0, description="Longest delay between two delivery attempts."
    )
    notification_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Read timeout of one delivery attempt: longest wait for a receiver's answer (HTTP) or for "
        "each step of an SMTP session.",
    )
    notification_connect_timeout_seconds: float = Field(
        default=5.0, gt=0, description="Connect timeout of one delivery attempt (TCP and TLS handshake)."
    )
    notification_delivery_concurrency: int = Field(
        default=64,
        ge=1,
        description="Destinations a notification worker delivers to at the same time; each destination's "
        "queue is sent one notification at a time, in order, so a slow receiver delays only its own queue.",
    )
    notification_dispatch_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How often the delivery dispatcher looks for queued deliveries nobody is sending (another "
        "worker's expired lease, its own after a restart, a destination that waited for a free task). Newly "
        "queued deliveries do not wait for it: the consumer wakes the dispatcher when it commits them.",
    )
    notification_delivery_batch: int = Field(
        default=20,
        ge=1,
        description="Queued deliveries of one destination the dispatcher takes per round: one statement leases "
        "them, one checks the log and records them 'sending', one records every outcome, one the statuses. A "
        "round's outcomes commit together, so it also bounds what a crash can make a receiver see twice.",
    )
    notification_smtp_host: str = Field(
        default="127.0.0.1", description="SMTP relay for e-mail notifications."
    )
    notification_smtp_port: int = Field(default=25, description="Port of the SMTP relay.")
    notification_smtp_starttls: bool = Field(
        default=True,
        description="Upgrade every SMTP session with STARTTLS (certificate verified) before anything is sent; "
        "a relay that does not offer it fails the attempt. Turn off only for a local test relay: a login is "
        "then refused at start-up, since credentials are only ever sent over TLS.",
    )
    notification_smtp_ca_file: Path | None = Field(
        default=None,
        description="CA bundle that verifies the SMTP relay's certificate (default: the system's).",
    )
    notification_smtp_username: str | None = Field(
        default=None, description="SMTP login, if the relay needs one (sent only after STARTTLS)."
    )
    notification_smtp_password: SecretStr | None = Field(
        default=None, description="SMTP password for that login."
    )
    notification_email_from: str = Field(
        default="offsetstream@localhost", description="From address of notification e-mails."
    )
    # dead-letter topics: how long they keep a record (issue 16, appended block)
    dlt_retention_days: float = Field(
        default=30.0,
        description="Days a dead-letter topic keeps a record (Kafka retention.ms, set by `offsetstream topics "
        "create` on every *.dlt topic, existing ones included); -1 keeps them forever. Intake's records name the "
        "payer file kept in intake.raw_files, so the retention bounds the records, not the stored files.",
    )

    def web_port(self, service: str) -> int:
        """The /metrics port of this process: ``web_port`` when set, else the service's port + 10 × worker id."""
        if self.web_port_override is not None:
            return self.web_port_override
        return self.web_ports[service] + 10 * self.worker_id


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings of this process, read once."""
    return Settings()
