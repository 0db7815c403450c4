-- An interest posting names its period and version (InterestAccrued.period_number, .version): a correction
-- (version > 1) can reach matching before the posting it corrects (the interest stage publishes its timer's
-- postings through its outbox and its handler's straight after the commit, so one can overtake the other).
-- Such a correction is kept but does not count (held) until every earlier version of its period is here;
-- otherwise a reversal seen alone would leave the receivable's interest negative for a while, push
-- recoveries back to the work queue and make the charge it reverses fail the balance check when it arrives.
-- Rows from before this migration have no period and always count.
ALTER TABLE matching.interest_charges ADD COLUMN IF NOT EXISTS period_number integer;
ALTER TABLE matching.interest_charges ADD COLUMN IF NOT EXISTS version integer;
ALTER TABLE matching.interest_charges ADD COLUMN IF NOT EXISTS held boolean NOT NULL DEFAULT false;
CREATE INDEX IF NOT EXISTS interest_charges_period
    ON matching.interest_charges (tenant_id, receivable_id, period_number);
