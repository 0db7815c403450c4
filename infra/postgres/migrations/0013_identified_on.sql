-- An overpayment the provider identified itself carries its identification date (the earliest such evidence
-- wins) from detection through matching to interest, whose policy puts the report-and-return deadline
-- (Medicare and Medicaid: 60 days, 42 CFR 401.305) on the receivable's timeline.
ALTER TABLE matching.receivables ADD COLUMN IF NOT EXISTS identified_on date;
ALTER TABLE interest.receivables ADD COLUMN IF NOT EXISTS identified_on date;
