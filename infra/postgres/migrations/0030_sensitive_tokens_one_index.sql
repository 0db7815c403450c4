-- notification.sensitive_tokens is the most-inserted notification table (a row per patient control number
-- learnt: about 950 per 1 000 claim payments) and carried two B-trees of random keys: the primary key
-- (tenant_id, account_key, digest, kind), which only ever served ON CONFLICT, and sensitive_tokens_by_tenant
-- (tenant_id, digest), which every look-up uses (store.scan joins on tenant and digest; tenant-wide digests
-- leave the account out). A primary key led by (tenant_id, digest) serves both: the same uniqueness, the
-- look-ups by its prefix, and one index entry written per learnt digest instead of two: inserting 2 000
-- digests at a time, 12.3 -> 8.7 µs per row and a table 22 % smaller (devtools/bench/README.md, session 13).
--
-- Rebuilding the key locks the table while it is built: on a large ledger, run it while notification is stopped
-- (its consumers lag and catch up after; nothing is lost, the input stays in Kafka).
ALTER TABLE notification.sensitive_tokens
    DROP CONSTRAINT sensitive_tokens_pkey,
    ADD PRIMARY KEY (tenant_id, digest, account_key, kind);
DROP INDEX notification.sensitive_tokens_by_tenant;
