-- Look-ups that read a whole tenant's rows because no index led with the columns they ask by (found by
-- pg_stat_user_tables.seq_tup_read after a 20 000-claim bench, session 10). Each is paid per message or per
-- batch, so its cost grew with the ledger: an account's open WO pairs were found by reading every PLB pair of
-- every tenant (1.9 ms a call at 2 759 pairs, 46 ms per 1 000 claim payments), a receivable's keys by reading
-- every key of the tenant.

-- matching: the open WO pairs of an account a receivable's keys may explain (store/pairs.py), few at any time.
CREATE INDEX IF NOT EXISTS adjustments_open_wo ON matching.adjustments (tenant_id, account_key)
    WHERE reason_code = 'WO' AND (unmatched_amount > 0 OR awaiting_refund > 0);
-- matching: an account's pairs by reason (positive FBs re-placed in date order, a forwarding balance's payer).
CREATE INDEX IF NOT EXISTS adjustments_by_account ON matching.adjustments (tenant_id, account_key, reason_code);
-- matching: a receivable's keys (its quote, its open candidates, merges); a key across accounts (forwarding).
CREATE INDEX IF NOT EXISTS receivable_keys_by_receivable ON matching.receivable_keys (tenant_id, receivable_id);
CREATE INDEX IF NOT EXISTS receivable_keys_by_key ON matching.receivable_keys (tenant_id, key);
-- matching: an account's receivables that can still take money (open candidates of an unmatched recovery).
CREATE INDEX IF NOT EXISTS receivables_by_account ON matching.receivables (tenant_id, account_key)
    WHERE merged_into IS NULL;
-- detection: the evidence already joined to the receivables a batch reaches (identity snapshot).
CREATE INDEX IF NOT EXISTS evidence_by_receivable ON detection.evidence (tenant_id, receivable_id);
