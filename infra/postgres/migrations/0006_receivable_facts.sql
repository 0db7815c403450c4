-- Facts the state rule packs need about a receivable (interest service's recoupment rules): when the overpaid
-- payment was made (look-back limits) and whether it was a duplicate payment (NY waives notice).
ALTER TABLE matching.receivables
    ADD COLUMN original_payment_date date,
    ADD COLUMN duplicate boolean NOT NULL DEFAULT false;
