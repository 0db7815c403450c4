-- An interest posting names its period (InterestAccrued.period_number). A period's interest is never negative:
-- its postings sum below zero only while a correction has overtaken the charge it corrects (the interest stage
-- publishes its timer's postings through its outbox and its handler's straight after the commit, so one can
-- pass the other). Matching then holds the period's postings (they do not count) until they sum to zero or
-- more; counted alone, the correction would push recoveries back to the work queue and the charge's arrival
-- would re-match them as new allocations (services/matching/domain.py period_count).
-- Rows from before this migration have no period and always count.
ALTER TABLE matching.interest_charges ADD COLUMN IF NOT EXISTS period_number integer;
ALTER TABLE matching.interest_charges ADD COLUMN IF NOT EXISTS held boolean NOT NULL DEFAULT false;
CREATE INDEX IF NOT EXISTS interest_charges_period
    ON matching.interest_charges (tenant_id, receivable_id, period_number);
