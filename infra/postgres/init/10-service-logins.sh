#!/bin/sh
# Run once by the postgres image when it initialises an empty data volume (docker-compose.yml mounts this folder
# at /docker-entrypoint-initdb.d), before `offsetstream db migrate`.
#
# One login per service, a member of that service's group role only, plus one for staff views and one for the
# staff console (offsetstream_console, migration 0020); migration 0019
# grants the group roles their rights and creates them if they are missing (the local stack and the tests, which
# keep the one trusted login and SET ROLE instead: shared/db.py create_pool). A service logged in this way cannot
# leave its role: it is neither a superuser nor a member of any other role.
# The passwords come from the environment (docker-compose.yml requires them; no defaults).
set -eu
for role in intake detection matching interest notification staff console; do
    var=$(echo "${role}_DB_PASSWORD" | tr '[:lower:]' '[:upper:]')
    eval "password=\${$var:?set $var}"
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
        -v group="offsetstream_${role}" -v login="offsetstream_${role}_login" -v password="$password" <<'SQL'
SELECT format('CREATE ROLE %I NOLOGIN', :'group')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'group') \gexec
SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD %L IN ROLE %I',
              :'login', :'password', :'group') \gexec
SQL
done
