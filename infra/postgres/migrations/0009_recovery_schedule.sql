-- The interest stage keeps matching's latest dated recovery schedule of each receivable (what was recovered on
-- which business date, split interest/principal), instead of inferring it from differences between snapshots.
ALTER TABLE interest.receivables ADD COLUMN recovery_schedule jsonb;
