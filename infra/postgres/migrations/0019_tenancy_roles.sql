-- Tenancy enforced by the database (issue 16 point 4).
--
-- One NOLOGIN group role per service and one for staff. A service's connections run as its role (shared/db.py
-- create_pool sets it on every pooled connection; in production each service also logs in as its own user,
-- a member of that role only: docker-compose.yml, infra/postgres/init/). A service role may read and write its
-- own schema and, in ops, only the processed-event claims and outbox rows of its own service. No service reads
-- another's schema: each keeps its own copy of what it learns from events. Staff views run as
-- offsetstream_staff (read-only, every tenant table) with row-level security keyed by the tenant set for the
-- transaction (db.staff_scope: SET LOCAL ROLE offsetstream_staff + set_config('offsetstream.tenant', ..., true)).
--
-- The owner (the role that runs `offsetstream db migrate`) keeps every right and bypasses RLS: it runs
-- migrations and the operators' commands (dlt replay, ledger check over every tenant). Policies apply to the
-- group roles, which own nothing, so FORCE ROW LEVEL SECURITY is not needed.
--
-- ops.enforce_tenancy() (re)applies the grants and policies to every table; `offsetstream db migrate` calls it
-- after every run, so a table added by a later migration is covered without repeating this file. ALTER DEFAULT
-- PRIVILEGES covers the service roles' table and sequence grants for tables created by the migrating role too.

DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['offsetstream_intake', 'offsetstream_detection', 'offsetstream_matching',
                             'offsetstream_interest', 'offsetstream_notification', 'offsetstream_staff'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS', r);
        END IF;
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION ops.enforce_tenancy() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    svc text;
    tbl record;
    services constant text[] := ARRAY['intake', 'detection', 'matching', 'interest', 'notification'];
    service_roles text;
BEGIN
    SELECT string_agg(format('%I', 'offsetstream_' || s), ', ') INTO service_roles FROM unnest(services) AS s;
    FOREACH svc IN ARRAY services LOOP
        EXECUTE format('GRANT USAGE ON SCHEMA %I, ops TO %I', svc, 'offsetstream_' || svc);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO %I',
                       svc, 'offsetstream_' || svc);
        EXECUTE format('GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA %I TO %I',
                       svc, 'offsetstream_' || svc);
        EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO %I',
                       svc, 'offsetstream_' || svc);
        EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO %I',
                       svc, 'offsetstream_' || svc);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ops.processed_events, ops.outbox TO %I',
                       'offsetstream_' || svc);
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO offsetstream_staff', svc);
    END LOOP;

    -- ops: each service sees and writes only its own claims and outbox rows.
    FOR tbl IN SELECT c.oid::regclass AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = 'ops' AND c.relname IN ('processed_events', 'outbox') LOOP
        EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl.name);
        FOREACH svc IN ARRAY services LOOP
            EXECUTE format('DROP POLICY IF EXISTS %I ON %s', 'own_' || svc, tbl.name);
            EXECUTE format('CREATE POLICY %I ON %s TO %I USING (service = %L) WITH CHECK (service = %L)',
                           'own_' || svc, tbl.name, 'offsetstream_' || svc, svc, svc);
        END LOOP;
    END LOOP;

    -- Every table with a tenant_id in the services' schemas: services see every tenant (they process them
    -- all, and can reach only their own schema anyway); staff read only the tenant set for the transaction.
    FOR tbl IN
        SELECT c.oid::regclass AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ANY (services) AND c.relkind IN ('r', 'p')
          AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id'
                      AND NOT a.attisdropped)
    LOOP
        EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl.name);
        EXECUTE format('DROP POLICY IF EXISTS services_all_tenants ON %s', tbl.name);
        EXECUTE format('CREATE POLICY services_all_tenants ON %s TO %s USING (true) WITH CHECK (true)',
                       tbl.name, service_roles);
        EXECUTE format('DROP POLICY IF EXISTS staff_one_tenant ON %s', tbl.name);
        EXECUTE format('CREATE POLICY staff_one_tenant ON %s FOR SELECT TO offsetstream_staff'
                       ' USING (tenant_id = current_setting(''offsetstream.tenant'', true))', tbl.name);
        EXECUTE format('GRANT SELECT ON %s TO offsetstream_staff', tbl.name);
    END LOOP;
END
$$;

REVOKE ALL ON FUNCTION ops.enforce_tenancy() FROM PUBLIC;

SELECT ops.enforce_tenancy();
