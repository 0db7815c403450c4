-- Why a receivable's payer policy applied: interest records, next to the policy it applied, the reason the
-- resolver gave (configured: a payer entry of OFFSETSTREAM_POLICY_CONFIG or OFFSETSTREAM_PAYER_POLICIES;
-- table: the Medicare contractor table; default: a tenant/"*" default or the commercial default) and the
-- entry itself, so `offsetstream receivable FCN` says why a payer got Medicare's timeline or did not.
ALTER TABLE interest.receivables ADD COLUMN IF NOT EXISTS policy_reason text;
ALTER TABLE interest.receivables ADD COLUMN IF NOT EXISTS policy_source text;
