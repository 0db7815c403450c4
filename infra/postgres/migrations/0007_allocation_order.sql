-- Interest-first must be judged in business-date order, not arrival order: keep each interest charge's due date
-- so matching can re-split every recovery of a receivable by what was due on the recovery's own date.
ALTER TABLE matching.interest_charges ADD COLUMN due_date date;
UPDATE matching.interest_charges SET due_date = '1900-01-01' WHERE due_date IS NULL;
ALTER TABLE matching.interest_charges ALTER COLUMN due_date SET NOT NULL;
