-- Notification's own list of what must never leave in a notification: per account, keyed digests
-- (shared.phi.digest, BLAKE2b) of the patient control numbers it learns from remit.claim-payments.v1 and
-- remit.overpayments.v1. Digests, not the values, so this table is not one more readable copy of PHI. Before a
-- notification is stored, published or sent, the outbound scrubber (shared/phi.py) hashes each window of its
-- text for the lengths the account has and masks what this table knows.
CREATE TABLE notification.sensitive_tokens (
    tenant_id    text     NOT NULL,
    account_key  text     NOT NULL,
    digest       text     NOT NULL,
    kind         text     NOT NULL CHECK (kind IN ('id', 'name')),
    length       smallint NOT NULL,
    PRIMARY KEY (tenant_id, account_key, digest, kind)
);
CREATE INDEX sensitive_tokens_by_tenant ON notification.sensitive_tokens (tenant_id, digest);
-- The lengths an account's tokens have (a handful): which windows of a text to hash.
CREATE TABLE notification.sensitive_token_lengths (
    tenant_id    text     NOT NULL,
    account_key  text     NOT NULL,
    kind         text     NOT NULL CHECK (kind IN ('id', 'name')),
    length       smallint NOT NULL,
    PRIMARY KEY (tenant_id, account_key, kind, length)
);
