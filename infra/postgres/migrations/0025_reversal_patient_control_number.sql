-- A pending reversal carries its claim's CLP01, so pairing a correction with it (services/detection/store.py,
-- pair_reversals) reads detection.reversals alone. Before, the pairing joined detection.claims for the CLP01;
-- asyncpg prepares that statement once per connection, PostgreSQL caches a generic plan after five runs, and a
-- plan made while the tables were nearly empty reached the claim through an index on the tenant alone: at
-- 20 000 claims one pairing read 870 claims per pending reversal (devtools/bench/README.md, *PostgreSQL per
-- statement*). The column holds the same PHI detection.claims already holds, under the same grants and
-- row-level security (ops.enforce_tenancy).
ALTER TABLE detection.reversals ADD COLUMN IF NOT EXISTS patient_control_number text;
UPDATE detection.reversals r
   SET patient_control_number = c.patient_control_number
  FROM detection.claims c
 WHERE c.tenant_id = r.tenant_id AND c.event_id = r.claim_event_id AND r.patient_control_number IS NULL;
