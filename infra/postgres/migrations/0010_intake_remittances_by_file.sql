-- Intake rebuilds a redelivered file's messages from the remittances that file posted (shared.stream replay),
-- instead of storing every claim's message a second time in ops.processed_events.
CREATE INDEX IF NOT EXISTS remittances_by_file ON intake.remittances (tenant_id, file_sha256);
