-- The staff console's users (issue 19): who may log in, with which role and for which clinics.
--
-- Only the operators' command line writes here (`offsetstream user add|list|disable`, as the owner login).
-- The console process runs as offsetstream_console: it may read this table (to check a password and that the
-- user is still enabled on every request) and become offsetstream_staff for the ledger views (db.staff_scope:
-- read-only, row-level security on the tenant). It writes nothing in the database: every change it makes is a
-- staff-action or letter event on Kafka, so the stages stay the only writers of the ledger.
-- password_hash is an argon2id PHC string (argon2-cffi); a disabled user keeps its row for the audit trail
-- (the name is the entered_by of the events it published).
CREATE SCHEMA IF NOT EXISTS console;

CREATE TABLE IF NOT EXISTS console.users (
    username      text        PRIMARY KEY CHECK (username ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    password_hash text        NOT NULL,
    role          text        NOT NULL CHECK (role IN ('viewer', 'biller', 'admin')),
    tenants       text[]      NOT NULL CHECK (cardinality(tenants) > 0),
    disabled      boolean     NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    disabled_at   timestamptz
);

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'offsetstream_console') THEN
        CREATE ROLE offsetstream_console NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
    END IF;
END
$$;

GRANT offsetstream_staff TO offsetstream_console;
GRANT USAGE ON SCHEMA console TO offsetstream_console;
GRANT SELECT ON console.users TO offsetstream_console;
