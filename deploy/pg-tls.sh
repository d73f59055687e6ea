#!/usr/bin/env bash
# TLS for a PostgreSQL cluster made by deploy/pg.sh (local setups and tests).
#
#   pg-tls.sh certs DIR [NAME...]    make a private CA (DIR/ca.crt, ca.key) and a
#                                    server certificate signed by it
#                                    (DIR/server.crt, server.key) for localhost,
#                                    127.0.0.1, ::1 and any extra NAMEs (DNS
#                                    names or IP addresses); existing files are
#                                    kept
#   pg-tls.sh enable DATA_DIR DIR    install DIR/server.{crt,key} in the cluster,
#                                    turn ssl on (TLS 1.2+), and replace
#                                    pg_hba.conf with: TCP only over TLS with a
#                                    SCRAM password (hostssl ... scram-sha-256,
#                                    no plain "host" lines); local socket for
#                                    the postgres superuser (peer); reloads the
#                                    server when it runs
#
# Clients then connect with e.g.
#   OF_PG_DSN='host=localhost port=5432 dbname=orderflow user=orderflow
#              password=... sslmode=verify-full sslrootcert=DIR/ca.crt'
# Create the password role first (while pg.sh's trust rules still apply):
#   CREATE ROLE orderflow LOGIN PASSWORD '...'   (stored as SCRAM-SHA-256)
# Note: after `enable`, `pg.sh start` cannot create its role/database over
# TCP any more (it needs trust); `pg.sh stop`/`status` keep working.
# Environment: OF_PG_BIN (default /usr/lib/postgresql/15/bin), OF_TLS_DAYS
# (certificate lifetime, default 825).
set -euo pipefail

die() { echo "pg-tls.sh: $*" >&2; exit 1; }
usage() {
    sed -n '4,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

pg_bin="${OF_PG_BIN:-}"
if [[ -z "$pg_bin" ]]; then
    for d in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
        [[ -x "$d/pg_ctl" ]] && { pg_bin="$d"; break; }
    done
fi
days="${OF_TLS_DAYS:-825}"

if [[ $(id -u) -eq 0 ]]; then
    as_pg() { runuser -u postgres -- "$@"; }
else
    as_pg() { "$@"; }
fi

command -v openssl >/dev/null 2>&1 || die "openssl not found"

cmd_certs() {
    [[ $# -ge 1 ]] || usage
    local dir="$1"; shift
    mkdir -p "$dir"
    local san="DNS:localhost,IP:127.0.0.1,IP:::1" n
    for n in "$@"; do
        if [[ "$n" =~ ^[0-9.]+$ || "$n" == *:* ]]; then san+=",IP:$n"; else san+=",DNS:$n"; fi
    done
    if [[ ! -f "$dir/ca.crt" || ! -f "$dir/ca.key" ]]; then
        openssl req -x509 -new -nodes -newkey rsa:2048 -sha256 -days "$days" \
            -subj "/CN=orderflow local CA $(date +%s)-$$" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" \
            -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null \
            || die "cannot create the CA in $dir"
        chmod 600 "$dir/ca.key"
    fi
    if [[ ! -f "$dir/server.crt" || ! -f "$dir/server.key" ]]; then
        openssl req -new -nodes -newkey rsa:2048 -sha256 -subj "/CN=localhost" \
            -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null \
            || die "cannot create the server key in $dir"
        printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' "$san" \
            >"$dir/server.ext"
        openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
            -CAcreateserial -days "$days" -sha256 -extfile "$dir/server.ext" \
            -out "$dir/server.crt" 2>/dev/null || die "cannot sign the server certificate"
        rm -f "$dir/server.csr" "$dir/server.ext"
        chmod 600 "$dir/server.key"
    fi
    echo "CA: $dir/ca.crt  server: $dir/server.crt ($san)"
}

cmd_enable() {
    [[ $# -eq 2 ]] || usage
    local data="$1" dir="$2"
    [[ -f "$data/PG_VERSION" ]] || die "$data is not a PostgreSQL data directory"
    [[ -f "$dir/server.crt" && -f "$dir/server.key" ]] || die "no server.crt/server.key in $dir (run: pg-tls.sh certs $dir)"
    install -m 0644 "$dir/server.crt" "$data/server.crt"
    install -m 0600 "$dir/server.key" "$data/server.key"
    [[ $(id -u) -eq 0 ]] && chown postgres: "$data/server.crt" "$data/server.key"
    as_pg tee "$data/tls.conf" >/dev/null <<'EOF'
# Written by deploy/pg-tls.sh: TLS on, passwords as SCRAM-SHA-256.
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
ssl_min_protocol_version = 'TLSv1.2'
password_encryption = 'scram-sha-256'
EOF
    grep -q "^include_if_exists = 'tls.conf'" "$data/postgresql.conf" \
        || echo "include_if_exists = 'tls.conf'" | as_pg tee -a "$data/postgresql.conf" >/dev/null
    as_pg tee "$data/pg_hba.conf" >/dev/null <<'EOF'
# Written by deploy/pg-tls.sh: over TCP only TLS with a SCRAM password; no
# plain "host" lines. The local socket is for the postgres superuser (peer).
# TYPE   DATABASE  USER      ADDRESS        METHOD
local    all       postgres                 peer
hostssl  all       all       127.0.0.1/32   scram-sha-256
hostssl  all       all       ::1/128        scram-sha-256
EOF
    if as_pg "$pg_bin/pg_ctl" status -D "$data" >/dev/null 2>&1; then
        as_pg "$pg_bin/pg_ctl" reload -D "$data" >/dev/null || die "reload failed"
        # The reload is asynchronous: wait until the server reports ssl on.
        local sock i
        sock="$(sed -n "s/^unix_socket_directories = '\([^']*\)'.*/\1/p" "$data/orderflow.conf" 2>/dev/null | tail -n 1)"
        for i in $(seq 1 50); do
            if [[ "$(cd / && as_pg "$pg_bin/psql" -XAtq -h "${sock:-/tmp}" \
                    -p "$(as_pg sed -n 4p "$data/postmaster.pid")" -U postgres -d postgres \
                    -c 'SHOW ssl' 2>/dev/null)" == on ]]; then
                break
            fi
            sleep 0.1
        done
    fi
    echo "TLS enabled in $data (hostssl + scram-sha-256 only)"
}

case "${1:-}" in
    certs) shift; cmd_certs "$@" ;;
    enable) shift; cmd_enable "$@" ;;
    *) usage ;;
esac
