#!/usr/bin/env bash
# PostgreSQL's first start (the postgres image runs /docker-entrypoint-initdb.d/* once, on an
# empty data volume): the role and database sohoa uses, named in the libpq service file the
# sohoa containers connect with (Docker secret pg_service.conf, section [sohoa]: user, dbname,
# password).
# - The role logs in with that password and owns its database, but is no superuser: sohoa's
#   migration creates the 'unaccent' extension, which PostgreSQL (13 and later) lets a
#   database's owner create, since unaccent is a trusted extension.
# - The database has a UTF-8 character type (C.UTF-8), so that lower() knows Vietnamese capitals.
# Idempotent (an existing role or database is left as it is); the password never reaches a
# command line (psql 15 or later: \getenv).
set -euo pipefail

service_file=${PGSERVICEFILE:-/run/secrets/pg_service.conf}
section="" role="" database="" sohoa_password=""
while IFS= read -r line || [[ -n $line ]]; do
    line=${line%$'\r'}
    case $line in
        \[*\]) section=${line#[}; section=${section%]} ;;
        user=*) if [[ $section == sohoa ]]; then role=${line#user=}; fi ;;
        dbname=*) if [[ $section == sohoa ]]; then database=${line#dbname=}; fi ;;
        password=*) if [[ $section == sohoa ]]; then sohoa_password=${line#password=}; fi ;;
    esac
done < "$service_file"
if [[ -z $role || -z $database || -z $sohoa_password ]]; then
    echo "10-sohoa.sh: $service_file needs a [sohoa] section with user=, dbname= and password=" >&2
    exit 1
fi

export sohoa_password
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname postgres \
     --set=role="$role" --set=database="$database" <<'SQL'
\getenv password sohoa_password
SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L', :'role', :'password')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
SELECT format('CREATE DATABASE %I OWNER %I ENCODING %L LC_COLLATE %L LC_CTYPE %L TEMPLATE template0',
              :'database', :'role', 'UTF8', 'C.UTF-8', 'C.UTF-8')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'database') \gexec
SQL
unset sohoa_password
echo "10-sohoa.sh: role $role owns database $database (UTF-8, C.UTF-8)"
