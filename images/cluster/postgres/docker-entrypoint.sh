#!/usr/bin/env bash
# Entrypoint of the postgres stand-in image: initialise PGDATA on first start, then exec the
# server. Runs as whatever user the pod gives it (the chart: 999); never switches user.
set -Eeuo pipefail

die() { echo "postgres entrypoint: $*" >&2; exit 1; }

# VAR or VAR_FILE (a mounted Secret), not both: the official image's rule.
file_env() {
    local var=$1 file_var="${1}_FILE" default=${2:-}
    [[ -n ${!var:-} && -n ${!file_var:-} ]] && die "both $var and $file_var are set; use one"
    local value=$default
    if [[ -n ${!var:-} ]]; then
        value=${!var}
    elif [[ -n ${!file_var:-} ]]; then
        value=$(<"${!file_var}")
    fi
    export "$var=$value"
    unset "$file_var"
}

init_database() {
    [[ -n $POSTGRES_PASSWORD ]] || die "the database is uninitialised and POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE) is not set"
    echo "initialising $PGDATA for user $POSTGRES_USER, database $POSTGRES_DB"
    # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of flags, as in the official image
    initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
        --auth-local=trust --auth-host=scram-sha-256 ${POSTGRES_INITDB_ARGS:-}
    printf "\nlisten_addresses = '*'\nunix_socket_directories = '/var/run/postgresql'\n" >>"$PGDATA/postgresql.conf"
    printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
    if [[ $POSTGRES_DB != postgres ]]; then
        pg_ctl --wait --silent -o "-c listen_addresses='' -c unix_socket_directories=/var/run/postgresql" start
        psql --no-psqlrc --set ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
            --host /var/run/postgresql --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
        pg_ctl --wait --silent --mode fast stop
    fi
}

if [[ ${1:-} == postgres ]]; then
    file_env POSTGRES_PASSWORD
    file_env POSTGRES_USER postgres
    file_env POSTGRES_DB "$POSTGRES_USER"
    mkdir -p "$PGDATA"
    chmod 700 "$PGDATA" || true
    [[ -s $PGDATA/PG_VERSION ]] || init_database
    unset POSTGRES_PASSWORD
fi
exec "$@"
