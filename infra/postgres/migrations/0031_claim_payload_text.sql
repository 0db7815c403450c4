-- detection.claims.payload is the claim as detection wrote it (ClaimPaymentReceived's own JSON serialization),
-- read back whole, only by detection, which parses it with the contract (services/detection/store.py); no
-- statement looks inside it. Two costs every inserted claim paid for nothing go (perf of the INSERT's backend
-- on the bench's claims; devtools/bench/README.md, branch detect-cpu):
--
-- 1. As json, PostgreSQL parsed each payload on the way in only to check that it is JSON (json_recv: 15 % of
--    the INSERT's CPU). As text it is kept as sent; the contract's parse on the way out still refuses anything
--    that is not a claim.
-- 2. A row above ~2 KB (15 % of the bench's claims: those with several service lines) was compressed with
--    pglz on insert (10 % of the INSERT's CPU) and decompressed by every related-claims read that returned it.
--    With toast_tuple_target at its maximum, a row is compressed or moved out of line only above 8 160 bytes.
--
-- What it costs: those rows take their full size (about 1.9 KB instead of 0.7 KB compressed); on the bench's
-- claims the table and its indexes are 13 % larger (37.7 → 42.5 MB for 24 000 claims). The type change
-- rewrites the table under an ACCESS EXCLUSIVE lock (json to text is an I/O conversion): on a large ledger run
-- it while detection is stopped, as 0029 (its consumers lag and catch up; the input stays in Kafka). The
-- storage parameter rewrites nothing and applies to rows written from then on.
ALTER TABLE detection.claims ALTER COLUMN payload TYPE text;
ALTER TABLE detection.claims SET (toast_tuple_target = 8160);
