-- detection.claims.payload is written once per claim (every claim payment) and read back whole, only by
-- detection, to rebuild the claim as its contract (ClaimPaymentReceived.model_validate_json); no statement
-- looks inside it. jsonb made PostgreSQL parse and re-encode ~1.4 KB per claim on every insert: on the
-- bench's claims, backend CPU per inserted row 36-46 µs as jsonb against 24 µs as json (the text kept as
-- given), the largest single statement of the pipeline (devtools/bench/README.md, session 12). json keeps the
-- text detection wrote, which is the contract's own serialization, so reading it back is unchanged.
--
-- The ALTER rewrites the table under an ACCESS EXCLUSIVE lock: on a large ledger, run it while detection is
-- stopped (its consumers lag and catch up after; nothing is lost, the input stays in Kafka).
ALTER TABLE detection.claims ALTER COLUMN payload TYPE json USING payload::json;
