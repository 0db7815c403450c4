-- Cheaper PHI scans in notification (issue #18, CPU per claim payment).
--
-- Delivery without a second scan: each account's token generation counts the learning transactions that
-- added a digest it did not know (services/notification/store.py, add_tokens); an account with no row is at
-- generation 0. A notification records the generation its scan at emission saw
-- (token_generation; NULL: not recorded — emitted before this migration, or a daily digest, whose scope is
-- every account of the tenant, or its scan masked something, so its stored text was never itself scanned).
-- When the account is still at that generation at delivery, the stored text was scanned against every
-- token the account has and nothing was found, so delivery sends it without digesting its windows again.
-- Numbered 0024, not 0023: another change may add a 0023 concurrently.
CREATE TABLE IF NOT EXISTS notification.token_generations (
    tenant_id    text   NOT NULL,
    account_key  text   NOT NULL,
    generation   bigint NOT NULL,
    PRIMARY KEY (tenant_id, account_key)
);

ALTER TABLE notification.notifications ADD COLUMN IF NOT EXISTS token_generation bigint;

-- Whether every token of an account's length is ASCII letters and digits only (shared.phi.shaped_token_rows):
-- such tokens are looked for only inside runs of letters and digits of a text (shared.phi.candidates), a
-- fraction of its windows. One bit per account and length, never per token. Rows learnt before this migration
-- are not known to be: false, looked for everywhere, as before.
ALTER TABLE notification.sensitive_token_lengths
    ADD COLUMN IF NOT EXISTS alphanumeric boolean NOT NULL DEFAULT false;
