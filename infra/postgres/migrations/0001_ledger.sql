-- offsetstream ledger, version 1. One schema per service: each service writes only its own schema.
-- Amounts are numeric(14,2); every table carries tenant_id.

CREATE SCHEMA IF NOT EXISTS ops;
CREATE SCHEMA IF NOT EXISTS intake;
CREATE SCHEMA IF NOT EXISTS detection;
CREATE SCHEMA IF NOT EXISTS matching;
CREATE SCHEMA IF NOT EXISTS interest;
CREATE SCHEMA IF NOT EXISTS notification;

-- Idempotence: an input event applied by a service, with the messages it produced (re-published on redelivery).
CREATE TABLE ops.processed_events (
    service      text        NOT NULL,
    event_id     text        NOT NULL,
    outputs      jsonb       NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (service, event_id)
);

-- intake ------------------------------------------------------------------------------------------------------
CREATE TABLE intake.files (
    tenant_id    text        NOT NULL,
    sha256       text        NOT NULL,
    file_name    text        NOT NULL,
    size_bytes   integer     NOT NULL,
    source       text        NOT NULL,
    feed         text,
    transactions integer     NOT NULL,
    rejected     integer     NOT NULL,
    duplicates   integer     NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, sha256)
);

CREATE TABLE intake.remittances (
    tenant_id           text          NOT NULL,
    remittance_id       uuid          NOT NULL,
    account_key         text          NOT NULL,
    file_sha256         text          NOT NULL,
    file_name           text          NOT NULL,
    payer_id            text          NOT NULL,
    payee_id            text          NOT NULL,
    trace_number        text          NOT NULL,
    isa13               text,
    gs06                text,
    st02                text          NOT NULL,
    payment_date        date          NOT NULL,
    total_paid          numeric(14,2) NOT NULL,
    total_claim_paid    numeric(14,2) NOT NULL,
    total_adjustments   numeric(14,2) NOT NULL,
    claim_count         integer       NOT NULL,
    adjustment_count    integer       NOT NULL,
    received_at         timestamptz   NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, remittance_id)
);

CREATE TABLE intake.rejections (
    tenant_id         text    NOT NULL,
    file_sha256       text    NOT NULL,
    transaction_index integer NOT NULL,
    reason            text    NOT NULL,
    message           text    NOT NULL,
    location          jsonb   NOT NULL,
    PRIMARY KEY (tenant_id, file_sha256, transaction_index)
);

-- detection ---------------------------------------------------------------------------------------------------
CREATE TABLE detection.claims (
    tenant_id                  text          NOT NULL,
    event_id                   uuid          NOT NULL,
    account_key                text          NOT NULL,
    remittance_id              uuid          NOT NULL,
    claim_ordinal              integer       NOT NULL,
    payer_id                   text          NOT NULL,
    patient_control_number     text          NOT NULL,
    status_code                text          NOT NULL,
    paid                       numeric(14,2) NOT NULL,
    payer_claim_control_number text,
    original_reference         text,
    payment_date               date          NOT NULL,
    payload                    jsonb         NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
);
CREATE INDEX claims_by_pcn ON detection.claims (tenant_id, account_key, patient_control_number);
CREATE INDEX claims_by_icn ON detection.claims (tenant_id, account_key, payer_claim_control_number);

CREATE TABLE detection.receivables (
    tenant_id          text          NOT NULL,
    receivable_id      uuid          NOT NULL,
    account_key        text          NOT NULL,
    payer_id           text          NOT NULL,
    reference          text          NOT NULL,
    policy             text          NOT NULL,
    principal          numeric(14,2) NOT NULL,
    determination_date date          NOT NULL,
    PRIMARY KEY (tenant_id, receivable_id)
);

CREATE TABLE detection.evidence (
    tenant_id          text          NOT NULL,
    evidence_id        uuid          NOT NULL,
    receivable_id      uuid          NOT NULL,
    rule               text          NOT NULL,
    channel            text          NOT NULL,
    amount             numeric(14,2) NOT NULL CHECK (amount > 0),
    evidence_date      date          NOT NULL,
    source             text          NOT NULL,
    PRIMARY KEY (tenant_id, evidence_id)
);

-- matching ----------------------------------------------------------------------------------------------------
CREATE TABLE matching.receivables (
    tenant_id           text          NOT NULL,
    receivable_id       uuid          NOT NULL,
    account_key         text          NOT NULL,
    payer_id            text          NOT NULL,
    reference           text          NOT NULL,
    policy              text          NOT NULL,
    determination_date  date          NOT NULL,
    principal           numeric(14,2) NOT NULL,
    principal_recovered numeric(14,2) NOT NULL DEFAULT 0,
    interest_accrued    numeric(14,2) NOT NULL DEFAULT 0,
    interest_recovered  numeric(14,2) NOT NULL DEFAULT 0,
    status              text          NOT NULL,
    PRIMARY KEY (tenant_id, receivable_id),
    CHECK (principal + interest_accrued - principal_recovered - interest_recovered >= 0)
);

CREATE TABLE matching.adjustments (
    tenant_id        text          NOT NULL,
    adjustment_id    uuid          NOT NULL,
    account_key      text          NOT NULL,
    remittance_id    uuid          NOT NULL,
    payer_id         text          NOT NULL,
    trace_number     text          NOT NULL,
    payment_date     date          NOT NULL,
    segment_ordinal  integer       NOT NULL,
    pair_index       integer       NOT NULL,
    reason_code      text          NOT NULL,
    reference        text,
    match_reference  text,
    amount           numeric(14,2) NOT NULL,
    bucket           text          NOT NULL,
    unmatched_amount numeric(14,2) NOT NULL DEFAULT 0,
    reason           text          NOT NULL,
    PRIMARY KEY (tenant_id, adjustment_id)
);
CREATE INDEX unmatched_by_reference ON matching.adjustments (tenant_id, account_key, match_reference)
    WHERE unmatched_amount > 0;

CREATE TABLE matching.allocations (
    tenant_id     text          NOT NULL,
    allocation_id uuid          NOT NULL,
    adjustment_id uuid          NOT NULL,
    receivable_id uuid          NOT NULL,
    to_interest   numeric(14,2) NOT NULL,
    to_principal  numeric(14,2) NOT NULL,
    effective_date date         NOT NULL,
    PRIMARY KEY (tenant_id, allocation_id)
);

CREATE TABLE matching.forwarding_balances (
    tenant_id      text          NOT NULL,
    account_key    text          NOT NULL,
    reference      text          NOT NULL,
    opened_amount  numeric(14,2) NOT NULL DEFAULT 0,
    applied_amount numeric(14,2) NOT NULL DEFAULT 0,
    opened_on      date,
    PRIMARY KEY (tenant_id, account_key, reference)
);

CREATE TABLE matching.interest_charges (
    tenant_id     text          NOT NULL,
    event_id      uuid          NOT NULL,
    receivable_id uuid          NOT NULL,
    amount        numeric(14,2) NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
);

-- interest ----------------------------------------------------------------------------------------------------
CREATE TABLE interest.receivables (
    tenant_id          text          NOT NULL,
    receivable_id      uuid          NOT NULL,
    account_key        text          NOT NULL,
    payer_id           text          NOT NULL,
    reference          text          NOT NULL,
    policy             text          NOT NULL,
    determination_date date          NOT NULL,
    principal          numeric(14,2) NOT NULL,
    principal_recovered numeric(14,2) NOT NULL,
    status             text          NOT NULL,
    PRIMARY KEY (tenant_id, receivable_id)
);

CREATE TABLE interest.principal_history (
    seq            bigserial     NOT NULL,
    tenant_id      text          NOT NULL,
    receivable_id  uuid          NOT NULL,
    event_id       uuid          NOT NULL,
    effective_date date          NOT NULL,
    outstanding    numeric(14,2) NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
);

CREATE TABLE interest.accruals (
    tenant_id       text          NOT NULL,
    receivable_id   uuid          NOT NULL,
    period_number   integer       NOT NULL,
    event_id        uuid          NOT NULL,
    period_start    date          NOT NULL,
    period_end      date          NOT NULL,
    principal_basis numeric(14,2) NOT NULL,
    annual_rate     numeric(8,5)  NOT NULL,
    amount          numeric(14,2) NOT NULL,
    published       boolean       NOT NULL DEFAULT false,
    PRIMARY KEY (tenant_id, receivable_id, period_number)
);

-- notification ------------------------------------------------------------------------------------------------
CREATE TABLE notification.notifications (
    tenant_id        text        NOT NULL,
    notification_id  uuid        NOT NULL,
    kind             text        NOT NULL,
    severity         text        NOT NULL,
    summary          text        NOT NULL,
    facts            jsonb       NOT NULL,
    related_event_id uuid        NOT NULL,
    status           text        NOT NULL DEFAULT 'pending',
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, notification_id)
);

CREATE TABLE notification.deliveries (
    delivery_attempt_id bigserial   PRIMARY KEY,
    tenant_id           text        NOT NULL,
    notification_id     uuid        NOT NULL,
    channel             text        NOT NULL,
    attempt             integer     NOT NULL,
    status              text        NOT NULL,
    http_status         integer,
    latency_ms          numeric(10,1) NOT NULL,
    error               text,
    attempted_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deliveries_by_notification ON notification.deliveries (tenant_id, notification_id);
