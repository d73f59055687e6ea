#!/usr/bin/env bash
# `make down`: stops what `make up` started, and nothing else: every replica
# of the services and the dev sink by their pid files in var/run (only if the
# pid still is our process), then every Kafka node (SIGTERM, all at once:
# a node of a cluster shuts down cleanly only while a majority runs;
# deploy/kafka.sh), then PostgreSQL (pg_ctl stop -m fast; deploy/pg.sh).
# Data in var/ is kept. OF_VAR_DIR and OF_PG_DATA as for make up.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
var="${OF_VAR_DIR:-$root/var}"
[[ -d "$var" ]] && var="$(cd "$var" && pwd)"
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

# Every replica, whatever OF_*_REPLICAS says now: payment-gw first (no new
# payments), then inventory, then notify; the replicas of one service at once.
for name in payment-gw inventory notify; do
    pids=()
    for f in "$var/run/$name.pid" "$var"/run/"$name"-[0-9]*.pid; do
        [[ -e "$f" ]] || continue
        inst="$(basename "$f" .pid)"
        [[ "$inst" =~ ^$name(-[0-9]+)?$ ]] || continue
        stop_proc "$inst" "bin/$name" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || true; done
done
stop_proc sink "deploy/devsink.py"

kdir="$var/kafka"
if [[ -d "$kdir" ]]; then
    pids=()
    for d in "$kdir"/node-[0-9]*; do
        [[ -d "$d" ]] || continue
        "$root/deploy/kafka.sh" stop "$d" &
        pids+=($!)
    done
    # the single-node layout of an older make up (data straight in var/kafka)
    if [[ -f "$kdir/kafka.pid" ]]; then
        "$root/deploy/kafka.sh" stop "$kdir" &
        pids+=($!)
    fi
    for p in "${pids[@]}"; do wait "$p" || true; done
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
