-- Payer files that had something rejected, kept once per tenant and content (SHA-256), so that a dead-letter
-- record of intake names the file and the transaction's byte range instead of copying the whole file: one
-- file with 2 000 unbalanced transactions used to write 2 000 copies of itself to remit.intake.dlt.
-- Why PostgreSQL and not a folder under the data dir: the row is written in the same transaction as the
-- rejection and the file's claim, so a dead-letter record (published only after that commit) never names
-- bytes that are not there; every worker and the staff CLI (`offsetstream dlt show --raw`, `dlt replay`) reach
-- it wherever they run; and it is backed up and restored with the ledger it explains. A file is at most one
-- intake message (16 MiB of envelope, about 12 MB of file); TOAST compresses it.
-- The content is a payer file: it holds PHI, like the intake topic it came from. Rows are kept as long as the
-- rejection rows; delete a file's row once its dead letters are resolved and past the DLT retention.
CREATE TABLE IF NOT EXISTS intake.raw_files (
    tenant_id   text        NOT NULL,
    sha256      text        NOT NULL,
    file_name   text        NOT NULL,
    source      text        NOT NULL,
    format_hint text,
    size_bytes  integer     NOT NULL,
    content     bytea       NOT NULL,
    stored_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, sha256)
);
