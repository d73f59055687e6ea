#!/usr/bin/env bash
# Runs a private PostgreSQL 15 cluster for local development and tests.
#
#   pg.sh init DATA_DIR PORT   initdb (trust auth, local dev only), listen on
#                              127.0.0.1:PORT, unix socket inside DATA_DIR
#                              (or /tmp when the path is too long); no-op if
#                              already initialised
#   pg.sh start DATA_DIR       start, wait until ready, create role and
#                              database "orderflow" if missing
#   pg.sh stop DATA_DIR [MODE] pg_ctl stop -m MODE (smart|fast|immediate;
#                              default fast)
#   pg.sh status DATA_DIR      exit 0 if running, 3 if not
#   pg.sh port DATA_DIR        print the configured port
#
# PostgreSQL refuses to run as root: as root, every server command runs as the
# "postgres" user (runuser), so DATA_DIR and every directory above it must be
# reachable by that user; `init` chowns DATA_DIR and fails with a clear message
# when a parent directory is not traversable (e.g. a checkout under /root);
# deploy/up.sh then puts the data under /var/tmp instead.
# Environment: OF_PG_BIN (default /usr/lib/postgresql/15/bin),
# OF_PG_START_TIMEOUT (seconds, default 60).
set -euo pipefail

pg_bin="${OF_PG_BIN:-}"
if [[ -z "$pg_bin" ]]; then
    for d in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
        [[ -x "$d/pg_ctl" ]] && { pg_bin="$d"; break; }
    done
fi
start_timeout="${OF_PG_START_TIMEOUT:-60}"

die() { echo "pg.sh: $*" >&2; exit 1; }
log() { echo "pg.sh: $*" >&2; }
usage() {
    sed -n '4,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}
now() { date +%s.%N; }
elapsed_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

[[ -n "$pg_bin" && -x "$pg_bin/pg_ctl" ]] \
    || die "PostgreSQL server binaries not found (install postgresql, or set OF_PG_BIN)"

# as_pg CMD...: run CMD as the cluster owner (postgres when we are root).
if [[ $(id -u) -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || die "user 'postgres' does not exist (install postgresql)"
    as_pg() { runuser -u postgres -- "$@"; }
else

    as_pg() { "$@"; }
fi

abs_dir() { (cd "$1" && pwd -P); }

# Unix socket paths are limited to 107 bytes; keep the socket in DATA_DIR when
# it fits, else in a per-port directory under /tmp.
socket_dir_for() {
    local dir="$1" port="$2"
    if (( ${#dir} + 20 < 100 )); then
        echo "$dir"
    else
        echo "/tmp/orderflow-pg-$port"
    fi
}

conf_value() { # conf_value DATA_DIR NAME -> value from our include file
    sed -n "s/^$2 = '\{0,1\}\([^']*\)'\{0,1\}.*/\1/p" "$1/orderflow.conf" 2>/dev/null | tail -n 1
}

cmd_init() {
    [[ $# -eq 2 ]] || usage
    local dir="$1" port="$2" sock t0
    [[ "$port" =~ ^[0-9]+$ ]] || die "PORT must be a number (got '$port')"
    mkdir -p "$dir"
    dir="$(abs_dir "$dir")"
    if [[ -f "$dir/PG_VERSION" ]]; then
        # Already initialised: only follow a changed port (effective at the
        # next start).
        local old_port
        old_port="$(conf_value "$dir" port)"
        if [[ -n "$old_port" && "$old_port" != "$port" ]]; then
            as_pg sed -i "s/^port = .*/port = $port/" "$dir/orderflow.conf"
            if is_running "$dir" && [[ "$(live_port "$dir")" != "$port" ]]; then
                log "port changed to $port; restart to apply (pg.sh stop $dir)"
            fi
        fi
        return 0
    fi
    [[ -z "$(ls -A "$dir")" ]] || die "$dir exists, is not empty and is not a PostgreSQL data dir"
    if [[ $(id -u) -eq 0 ]]; then
        chown postgres: "$dir"
        chmod 0700 "$dir"
        if ! as_pg test -w "$dir"; then
            namei -l "$dir" >&2 || true
            die "user postgres cannot reach $dir (a parent directory is not traversable); use a data dir under /var/tmp or /tmp"
        fi
    fi
    t0="$(now)"
    sock="$(socket_dir_for "$dir" "$port")"
    if [[ "$sock" != "$dir" ]]; then
        mkdir -p "$sock"
        [[ $(id -u) -eq 0 ]] && chown postgres: "$sock"
    fi
    # cd to a directory postgres can read, or initdb warns about the cwd.
    (cd / && as_pg "$pg_bin/initdb" -D "$dir" --auth=trust --username=postgres \
        --encoding=UTF8 --locale=C.UTF-8 >"/tmp/orderflow-initdb.$$.log" 2>&1) || {
        cat "/tmp/orderflow-initdb.$$.log" >&2
        rm -f "/tmp/orderflow-initdb.$$.log"
        die "initdb failed for $dir"
    }
    rm -f "/tmp/orderflow-initdb.$$.log"
    as_pg tee "$dir/orderflow.conf" >/dev/null <<EOF
# Written by deploy/pg.sh: local development / test cluster (trust auth).
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$sock'
max_connections = 200
shared_buffers = '128MB'
fsync = on
logging_collector = off
log_min_messages = warning
log_line_prefix = '%m [%p] %d '
log_timezone = 'UTC'
timezone = 'UTC'
EOF
    echo "include = 'orderflow.conf'" | as_pg tee -a "$dir/postgresql.conf" >/dev/null
    echo "postgresql initialised in $dir (port $port) in $(elapsed_since "$t0")s"
}

is_running() {
    [[ -f "$1/PG_VERSION" ]] && as_pg "$pg_bin/pg_ctl" status -D "$1" >/dev/null 2>&1
}

# The port the running server listens on (line 4 of postmaster.pid), which
# differs from the configured one after a port change until the next restart.
live_port() {
    local p
    p="$(as_pg sed -n 4p "$1/postmaster.pid" 2>/dev/null || true)"
    if [[ "$p" =~ ^[0-9]+$ ]]; then echo "$p"; else conf_value "$1" port; fi
}

psql_admin() { # psql_admin DATA_DIR SQL...
    local dir="$1"; shift
    (cd / && as_pg "$pg_bin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 \
        -p "$(live_port "$dir")" -U postgres -d postgres "$@")
}

ensure_orderflow_db() {
    local dir="$1"
    psql_admin "$dir" -c "DO \$\$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'orderflow') THEN
            CREATE ROLE orderflow LOGIN CREATEDB PASSWORD 'orderflow';
        END IF; END \$\$;" >/dev/null
    if [[ "$(psql_admin "$dir" -tA -c "SELECT 1 FROM pg_database WHERE datname = 'orderflow'")" != 1 ]]; then
        psql_admin "$dir" -c "CREATE DATABASE orderflow OWNER orderflow" >/dev/null
    fi
}

cmd_start() {
    [[ $# -eq 1 ]] || usage
    local dir port sock t0
    [[ -f "$1/PG_VERSION" ]] || die "$1 is not an initialised data dir (run: pg.sh init $1 PORT)"
    dir="$(abs_dir "$1")"
    port="$(conf_value "$dir" port)"
    if is_running "$dir"; then
        log "already running in $dir (port $(live_port "$dir"))"
        ensure_orderflow_db "$dir"
        return 0
    fi
    sock="$(conf_value "$dir" unix_socket_directories)"
    if [[ -n "$sock" && ! -d "$sock" ]]; then
        mkdir -p "$sock"
        [[ $(id -u) -eq 0 ]] && chown postgres: "$sock"
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "port $port on 127.0.0.1 is already in use (set another port)"
    fi
    t0="$(now)"
    # -w waits for readiness; the server log is DATA_DIR/server.log.
    if ! (cd / && as_pg "$pg_bin/pg_ctl" start -D "$dir" -w -t "$start_timeout" \
            -l "$dir/server.log" >/dev/null); then
        tail -n 30 "$dir/server.log" >&2 || true
        die "postgresql did not start (log: $dir/server.log)"
    fi
    local elapsed
    elapsed="$(elapsed_since "$t0")"
    ensure_orderflow_db "$dir"
    echo "postgresql started on 127.0.0.1:$port in ${elapsed}s"
}

cmd_stop() {
    [[ $# -ge 1 && $# -le 2 ]] || usage
    local mode="${2:-fast}" dir t0
    case "$mode" in smart|fast|immediate) ;; *) die "stop mode must be smart, fast or immediate" ;; esac
    [[ -f "$1/PG_VERSION" ]] || { log "no data dir at $1, nothing to stop"; return 0; }
    dir="$(abs_dir "$1")"
    if ! is_running "$dir"; then
        log "not running ($dir)"
        return 0
    fi
    t0="$(now)"
    (cd / && as_pg "$pg_bin/pg_ctl" stop -D "$dir" -m "$mode" -w -t 60 >/dev/null) \
        || die "pg_ctl stop failed for $dir"
    echo "postgresql stopped ($mode) in $(elapsed_since "$t0")s"
}

cmd_status() {
    [[ $# -eq 1 ]] || usage
    if [[ -d "$1" ]] && is_running "$(abs_dir "$1")"; then
        echo "postgresql running in $1 (port $(conf_value "$(abs_dir "$1")" port))"
        return 0
    fi
    echo "postgresql not running ($1)"
    return 3
}

cmd_port() {
    [[ $# -eq 1 ]] || usage
    [[ -f "$1/orderflow.conf" ]] || die "$1 has no orderflow.conf (not initialised by pg.sh)"
    conf_value "$(abs_dir "$1")" port
}

[[ $# -ge 1 ]] || usage
cmd="$1"
shift
case "$cmd" in
    init)   cmd_init "$@" ;;
    start)  cmd_start "$@" ;;
    stop)   cmd_stop "$@" ;;
    status) cmd_status "$@" ;;
    port)   cmd_port "$@" ;;
    -h|--help|help) usage ;;
    *) log "unknown command '$cmd'"; usage ;;
esac
