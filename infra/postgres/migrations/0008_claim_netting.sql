-- A reversal + lower correction recovers the difference inside the claim amounts of the remittance (claim
-- netting) unless the payer defers it with a negative WO in that same remittance. Netting is an allocation
-- with no PLB pair; it remembers its remittance so a deferral there can cancel it.
ALTER TABLE matching.allocations DROP CONSTRAINT IF EXISTS allocations_kind_check;
ALTER TABLE matching.allocations ADD CONSTRAINT allocations_kind_check CHECK (kind IN ('offset', 'refund', 'netting'));
ALTER TABLE matching.allocations ADD COLUMN remittance_id uuid;
