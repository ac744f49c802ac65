#!/bin/sh
# Creates the secrets compose.yaml passes to the containers, in deploy/secrets/ (or $SECRETS_DIR):
# random passwords and keys, and the libpq service file. A file already there is kept, never
# overwritten (to change a secret, see deploy/secrets/README.md). Run as root on the Docker host:
#   sh deploy/make-secrets.sh
# The folder is made readable by root alone (0700); the files in it are 0444, because each is
# bind-mounted into containers whose processes are not root (PostgreSQL's postgres user, sohoa's
# uid 10001) and must read it there. Back the folder up offline: without it the archive stays
# readable (MinIO's administrator can reset users), but the token PIN and passwords are gone.
set -eu

dir=${SECRETS_DIR:-$(dirname "$0")/secrets}
umask 077
mkdir -p "$dir"
chmod 0700 "$dir"

random_hex() {
    # 32 random bytes as 64 hex digits: no character that needs quoting anywhere
    od -An -tx1 -N32 /dev/urandom | tr -d ' \n'
}

write() {  # write NAME CONTENT: create $dir/NAME with CONTENT unless it exists
    if [ -e "$dir/$1" ]; then
        echo "make-secrets: $dir/$1 exists, kept"
    else
        printf '%s\n' "$2" > "$dir/$1"
        chmod 0444 "$dir/$1"
        echo "make-secrets: $dir/$1 created"
    fi
}

write minio_root_user "sohoa-admin"
write minio_root_password "$(random_hex)"
write s3_secret_key "$(random_hex)"
write postgres_password "$(random_hex)"
write pg_service.conf "# libpq service file: sohoa's connection to PostgreSQL (compose service postgres).
# deploy/postgres/initdb/10-sohoa.sh creates this role and database on PostgreSQL's first start.
[sohoa]
host=postgres
port=5432
dbname=sohoa
user=sohoa
password=$(random_hex)"
if [ ! -e "$dir/pkcs11_pin" ]; then
    : > "$dir/pkcs11_pin"
    chmod 0444 "$dir/pkcs11_pin"
    echo "make-secrets: $dir/pkcs11_pin created EMPTY: on the signing host, write the token's PIN in it"
fi
