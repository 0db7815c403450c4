-- matching.allocations had only its primary key (tenant_id, allocation_id), so every question asked per
-- receivable or per PLB pair (what was applied to this receivable, which recoveries give way, which scored
-- guesses name it) read all of the tenant's allocations: a cost that grows with the ledger, paid per message.
-- At 20 000 claim payments in one tenant, withdrawing scored guesses took 30 ms a call and 62 % of all
-- statement time (BENCH_PGSTAT=1, devtools/bench/README.md, session 9).
CREATE INDEX IF NOT EXISTS allocations_by_receivable ON matching.allocations (tenant_id, receivable_id);
CREATE INDEX IF NOT EXISTS allocations_by_adjustment ON matching.allocations (tenant_id, adjustment_id);
-- Scored guesses are few: a partial index finds an account's without reading its other adjustments.
CREATE INDEX IF NOT EXISTS adjustments_scored_guesses ON matching.adjustments (tenant_id, account_key)
    WHERE reason_code = 'WO' AND match_method LIKE 'scored:%';
