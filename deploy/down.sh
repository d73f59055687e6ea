#!/usr/bin/env bash
# `make down`: stops what `make up` started, and nothing else: the services
# and the dev sink by their pid files in var/run (only if the pid still is our
# process), then Kafka (SIGTERM; deploy/kafka.sh), then PostgreSQL
# (pg_ctl stop -m fast; deploy/pg.sh). Data in var/ is kept.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
var="$root/var"
bin="$root/build/bin"
stop_timeout="${OF_STOP_TIMEOUT:-30}"

our_pid() { # same test as up.sh: alive, not a zombie, command line contains $2
    local pidf="$var/run/$1.pid" pid cmdline
    [[ -f "$pidf" ]] || return 1
    pid="$(cat "$pidf" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ && -r "/proc/$pid/cmdline" ]] || return 1
    [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]] || return 1
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
    [[ "$cmdline" == *"$2"* ]] || return 1
    echo "$pid"
}

# stop_proc NAME MATCH: SIGTERM, wait up to stop_timeout, then SIGKILL.
stop_proc() {
    local name="$1" match="$2" pid i
    if ! pid="$(our_pid "$name" "$match")"; then
        [[ -f "$var/run/$name.pid" ]] && echo "$name: not running (stale pid file removed)"
        rm -f "$var/run/$name.pid"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < stop_timeout * 10; i++)); do
        our_pid "$name" "$match" >/dev/null || break
        sleep 0.1
    done
    if our_pid "$name" "$match" >/dev/null; then
        echo "$name: still running after ${stop_timeout}s, sending SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.2
    fi
    rm -f "$var/run/$name.pid"
    echo "$name stopped (pid $pid)"
}

for name in payment-gw inventory notify; do
    stop_proc "$name" "$bin/$name"
done
stop_proc sink "deploy/devsink.py"

if [[ -d "$var/kafka" ]]; then
    "$root/deploy/kafka.sh" stop "$var/kafka"
fi

if [[ -n "${OF_PG_DATA:-}" ]]; then
    pg_dir="$OF_PG_DATA"
elif [[ -e "$var/pg" ]]; then
    pg_dir="$(readlink -f "$var/pg")"
else
    pg_dir=""
fi
if [[ -n "$pg_dir" && -f "$pg_dir/PG_VERSION" ]]; then
    "$root/deploy/pg.sh" stop "$pg_dir" fast
fi
