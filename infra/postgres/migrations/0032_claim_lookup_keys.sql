-- detection.claims' two look-up indexes without tenant_id in the key. Their one reader is related_claims
-- (services/detection/store.py), which names the tenant, the account and the CLP01 or CLP07/REF*F8; the
-- account key is a hash of (tenant, payer, payee) (shared.ids.account_key), so it already names one tenant's
-- account, and the tenant is still checked, on the row. A key of (account, number) instead of (tenant,
-- account, number) is one text column fewer to compare at every step of every descent: every claim inserted
-- descends both indexes, and every claim of a batch looks its history up in both. perf of the backend on the
-- bench's claims (devtools/bench/README.md, branch detect-cpu): related claims 6.5 → 5.3 µs of CPU a claim,
-- the claims INSERT about 1 µs a row less.
--
-- Other readers: `offsetstream phi relearn` (cli/phi_commands.py) reads a tenant's distinct (account, CLP01)
-- once per run; it now reads the table rather than the old index's tenant prefix, which for an operator's
-- rare command is the same order of work (it reads every claim of the tenant either way).
--
-- What it costs on a large ledger: both indexes are built again here, each under a lock that holds back
-- writes to detection.claims while it builds (the migration runs in one transaction, so not CONCURRENTLY).
-- Run it while detection is stopped, as 0029 and 0031 (its consumers lag and catch up; the input stays in
-- Kafka). The two indexes are smaller too: no copy of the tenant id in each of their entries.
DROP INDEX detection.claims_by_pcn;
DROP INDEX detection.claims_by_icn;
CREATE INDEX claims_by_pcn ON detection.claims (account_key, patient_control_number);
CREATE INDEX claims_by_icn ON detection.claims (account_key, payer_claim_control_number);
