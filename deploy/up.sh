#!/usr/bin/env bash
# `make up`: the whole stack on this machine, no Docker. Installs what is
# missing, builds librdkafka 2.3.0 (deploy/librdkafka.sh) and the services
# (refusing binaries that load a librdkafka older than 2.3), starts
# PostgreSQL and Kafka (OF_KAFKA_NODES nodes), creates the topics, starts the
# three services (OF_*_REPLICAS replicas each; they apply deploy/sql
# migrations themselves), seeds demo stock, waits until every /readyz
# answers 200 and prints where things are. Running it again starts only
# what is not running (a node or replica that died, say).
#
# State (OF_VAR_DIR, default var/): pg (PostgreSQL data), kafka/node-<i>
# (Kafka node i: config, data, logs), log/ (one log per process), run/ (pid
# files), env.sh (OF_* for ofctl), prometheus.yml (scrape config of this
# stack). The jars and Kafka's own tools stay in var/kafka/lib and bin.
# A single-node var/kafka of an older make up (data in var/kafka/data) is
# moved to var/kafka/node-0 on the first run.
#
# Ports (env): OF_PG_PORT 5433, OF_KAFKA_PORT 9092, OF_KAFKA_CONTROLLER_PORT
# 9093 (node i: OF_KAFKA_PORT + 2*i and OF_KAFKA_CONTROLLER_PORT + 2*i),
# OF_GW_PORT 8080, OF_INVENTORY_PORT 8081, OF_NOTIFY_PORT 8082 (replica k:
# the port + 100*k), OF_SINK_PORT 8099.
# Scale: OF_KAFKA_NODES (1; 3 = a replicated cluster: replication factor 3,
# min.insync.replicas=2, internal topics too), OF_GW_REPLICAS,
# OF_INVENTORY_REPLICAS, OF_NOTIFY_REPLICAS (1 each; replica k > 0 logs to
# log/<service>-k.log; all replicas of a service share its consumer group).
# Every other OF_* variable you set (CONTRACT.md section 8) is passed to the
# services unchanged. Dev defaults: OF_WEBHOOK_SECRETS=dev-webhook-secret,
# OF_ADMIN_TOKEN=dev-admin-token, OF_NOTIFY_SECRET=dev-notify-secret,
# notification provider URLs -> the local dev sink.
# Switches: OF_SEED_DEMO=0 (no demo stock), OF_SKIP_DEPS=1, OF_SKIP_BUILD=1,
# OF_READY_TIMEOUT (seconds, default 60), OF_PG_DATA (PostgreSQL data dir),
# OF_BIN_DIR (the binaries, default build/bin), OF_VAR_DIR (state, default
# var/; a second stack on other ports needs its own).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
var="${OF_VAR_DIR:-$root/var}"
mkdir -p "$var"
var="$(cd "$var" && pwd)"
bin="${OF_BIN_DIR:-build/bin}"
[[ "$bin" == /* ]] || bin="$root/$bin"

die() { echo "up: error: $*" >&2; exit 1; }
step() { echo "==> $*"; }

# --- configuration -------------------------------------------------------------

: "${OF_PG_PORT:=5433}"
: "${OF_KAFKA_PORT:=9092}"
: "${OF_KAFKA_CONTROLLER_PORT:=9093}"
: "${OF_GW_PORT:=8080}"
: "${OF_INVENTORY_PORT:=8081}"
: "${OF_NOTIFY_PORT:=8082}"
: "${OF_SINK_PORT:=8099}"
: "${OF_READY_TIMEOUT:=60}"
: "${OF_SEED_DEMO:=1}"
: "${OF_KAFKA_NODES:=1}"
: "${OF_GW_REPLICAS:=1}"
: "${OF_INVENTORY_REPLICAS:=1}"
: "${OF_NOTIFY_REPLICAS:=1}"

for v in OF_PG_PORT OF_KAFKA_PORT OF_KAFKA_CONTROLLER_PORT OF_GW_PORT OF_INVENTORY_PORT \
         OF_NOTIFY_PORT OF_SINK_PORT OF_READY_TIMEOUT; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || die "$v must be a number (got '${!v}')"
done
[[ "$OF_KAFKA_NODES" =~ ^[1-9]$ ]] || die "OF_KAFKA_NODES must be 1 to 9 (got '$OF_KAFKA_NODES')"
for v in OF_GW_REPLICAS OF_INVENTORY_REPLICAS OF_NOTIFY_REPLICAS; do
    [[ "${!v}" =~ ^[1-9]$ ]] || die "$v must be 1 to 9 (got '${!v}')"
done

# Kafka node i: client port OF_KAFKA_PORT + 2i, controller OF_KAFKA_CONTROLLER_PORT + 2i.
kafka_nodes=() kafka_voters=()
for ((i = 0; i < OF_KAFKA_NODES; i++)); do
    kafka_nodes+=("127.0.0.1:$((OF_KAFKA_PORT + 2 * i))")
    kafka_voters+=("$((i + 1))@127.0.0.1:$((OF_KAFKA_CONTROLLER_PORT + 2 * i))")
done
# Replication factor of every topic: the nodes, at most 3 (with 3 or more,
# kafka.sh sets min.insync.replicas=2).
kafka_rf=$(( OF_KAFKA_NODES < 3 ? OF_KAFKA_NODES : 3 ))

dev_webhook_secret=dev-webhook-secret
dev_admin_token=dev-admin-token
dev_notify_secret=dev-notify-secret

: "${OF_KAFKA_BROKERS:=$(IFS=,; echo "${kafka_nodes[*]}")}"
: "${OF_TOPIC_REPLICATION:=$kafka_rf}"
: "${OF_PG_DSN:=host=127.0.0.1 port=$OF_PG_PORT dbname=orderflow user=orderflow}"
: "${OF_LOG_LEVEL:=info}"
: "${OF_WEBHOOK_SECRETS=$dev_webhook_secret}"
: "${OF_ADMIN_TOKEN:=$dev_admin_token}"
: "${OF_NOTIFY_SECRET:=$dev_notify_secret}"
: "${OF_NOTIFY_EMAIL_URL:=http://127.0.0.1:$OF_SINK_PORT/email}"
: "${OF_NOTIFY_SMS_URL:=http://127.0.0.1:$OF_SINK_PORT/sms}"
: "${OF_NOTIFY_WEBHOOK_URL:=http://127.0.0.1:$OF_SINK_PORT/webhook}"
# Customers' webhook_url may reach only public addresses; the local demo's
# sink is on loopback, so make up admits 127.0.0.1 (contract section 10).
: "${OF_NOTIFY_WEBHOOK_ALLOW=127.0.0.1/32}"
: "${OF_MIGRATIONS_DIR:=$root/deploy/sql}"
# ofctl's URLs: every replica, comma-separated (`pay` and `stock` use the
# first, `ofctl status` asks each).
replica_urls() { # PORT COUNT
    local k urls=()
    for ((k = 0; k < $2; k++)); do urls+=("http://127.0.0.1:$(($1 + 100 * k))"); done
    (IFS=,; echo "${urls[*]}")
}
: "${OF_INVENTORY_URL:=$(replica_urls "$OF_INVENTORY_PORT" "$OF_INVENTORY_REPLICAS")}"
: "${OF_PAYMENT_GW_URL:=$(replica_urls "$OF_GW_PORT" "$OF_GW_REPLICAS")}"
: "${OF_NOTIFY_URL:=$(replica_urls "$OF_NOTIFY_PORT" "$OF_NOTIFY_REPLICAS")}"
export OF_KAFKA_BROKERS OF_PG_DSN OF_LOG_LEVEL OF_WEBHOOK_SECRETS OF_ADMIN_TOKEN \
    OF_NOTIFY_SECRET OF_NOTIFY_EMAIL_URL OF_NOTIFY_SMS_URL OF_NOTIFY_WEBHOOK_URL \
    OF_NOTIFY_WEBHOOK_ALLOW OF_MIGRATIONS_DIR OF_INVENTORY_URL OF_PAYMENT_GW_URL OF_NOTIFY_URL OF_TOPIC_REPLICATION

mkdir -p "$var/log" "$var/run" "$var/kafka"

# --- helpers -------------------------------------------------------------------

# our_pid NAME MATCH: the pid in var/run/NAME.pid if that process is alive and
# its command line contains MATCH (so a reused pid is never taken for ours).
our_pid() {
    local pidf="$var/run/$1.pid" pid cmdline
    [[ -f "$pidf" ]] || return 1
    pid="$(cat "$pidf" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ && -r "/proc/$pid/cmdline" ]] || return 1
    [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]] || return 1
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
    [[ "$cmdline" == *"$2"* ]] || return 1
    echo "$pid"
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# spawn NAME LOG CMD...: start CMD detached (own session, survives make),
# output appended to LOG, pid in var/run/NAME.pid.
spawn() {
    local name="$1" logf="$2"
    shift 2
    echo "=== $(date -u +%FT%TZ) starting $name" >>"$logf"
    (exec setsid "$@" >>"$logf" 2>&1 </dev/null) &
    echo "$!" >"$var/run/$name.pid"
}

# check_rdkafka BIN: the librdkafka BIN loads must be >= min_rdkafka (contract
# section 10: the stack that runs is the one tested and benchmarked).
min_rdkafka=2.3
check_rdkafka() {
    local lib ver
    lib="$(ldd "$1" 2>/dev/null | awk '$1 == "librdkafka.so.1" { print $3 }')"
    [[ -n "$lib" && -r "$lib" ]] || die "$1: cannot resolve librdkafka.so.1 (ldd)"
    ver="$(python3 -c 'import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
lib.rd_kafka_version_str.restype = ctypes.c_char_p
print(lib.rd_kafka_version_str().decode())' "$lib" 2>/dev/null)" || die "$lib: cannot read its version"
    if [[ "$(printf '%s\n%s\n' "$min_rdkafka" "$ver" | sort -V | head -n1)" != "$min_rdkafka" ]]; then
        die "$1 links librdkafka $ver ($lib); the stack needs >= $min_rdkafka: run 'make deps' (or deploy/librdkafka.sh build) and 'make build'"
    fi
}

http_ok() { curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null; }

# wait_ready NAME URL: poll URL until 200; fail early if the process died.
wait_ready() {
    local name="$1" url="$2" match="$3" deadline
    deadline=$(( $(date +%s) + OF_READY_TIMEOUT ))
    until http_ok "$url"; do
        if ! our_pid "$name" "$match" >/dev/null; then
            echo "--- last lines of var/log/$name.log ---" >&2
            tail -n 40 "$var/log/$name.log" >&2 || true
            die "$name exited during start-up (log: var/log/$name.log; 'make down' stops the rest)"
        fi
        if (( $(date +%s) >= deadline )); then
            tail -n 40 "$var/log/$name.log" >&2 || true
            die "$name not ready at $url after ${OF_READY_TIMEOUT}s (log: var/log/$name.log; 'make down' stops the rest)"
        fi
        sleep 0.2
    done
}

# --- 1. dependencies and build ---------------------------------------------------

if [[ "${OF_SKIP_DEPS:-0}" != 1 ]]; then
    step "checking system packages"
    "$root/deploy/install-deps.sh"
fi
if [[ "${OF_SKIP_BUILD:-0}" != 1 ]]; then
    # librdkafka 2.3.0 into var/librdkafka, before the build so CMake links
    # it (Debian's 2.0.2 stalls consumers; a no-op once it is there).
    step "librdkafka $min_rdkafka+ (deploy/librdkafka.sh build)"
    "$root/deploy/librdkafka.sh" build || die "building librdkafka failed (deploy/librdkafka.sh)"
    step "building (make build)"
    make --no-print-directory -C "$root" build
fi
for b in payment-gw inventory notify ofctl; do
    [[ -x "$bin/$b" ]] || die "$bin/$b missing after the build"
    check_rdkafka "$bin/$b"
done
"$root/deploy/kafka.sh" fetch

# --- 2. PostgreSQL ---------------------------------------------------------------

# As root the server runs as user postgres, which must be able to reach the
# data dir. A checkout under a private directory (e.g. /root) is not reachable,
# so the data then lives under /var/tmp, with var/pg a symlink to it.
if [[ -n "${OF_PG_DATA:-}" ]]; then
    pg_dir="$OF_PG_DATA"
elif [[ -L "$var/pg" ]]; then
    pg_dir="$(readlink -f "$var/pg")"
elif [[ $(id -u) -ne 0 || -d "$var/pg" ]] || runuser -u postgres -- test -x "$var"; then
    pg_dir="$var/pg"
else
    key="$root"
    [[ "$var" == "$root/var" ]] || key="$var"
    pg_dir="/var/tmp/orderflow-pg-$(printf '%s' "$key" | sha256sum | cut -c1-12)"
    echo "up: note: user postgres cannot reach $var; PostgreSQL data goes to $pg_dir ($var/pg links to it)"
    ln -sfn "$pg_dir" "$var/pg"
fi
step "postgresql on 127.0.0.1:$OF_PG_PORT ($pg_dir)"
"$root/deploy/pg.sh" init "$pg_dir" "$OF_PG_PORT"
"$root/deploy/pg.sh" start "$pg_dir"

# --- 3. Kafka ----------------------------------------------------------------------

kdir="$var/kafka"
# An older make up ran one broker straight from var/kafka: its data moves to
# node-0, where OF_KAFKA_NODES=1 expects it (same cluster, same records).
if [[ -e "$kdir/server.properties" || -d "$kdir/data" ]]; then
    if "$root/deploy/kafka.sh" status "$kdir" >/dev/null 2>&1; then
        die "a broker started by an older make up runs from $kdir: run 'make down' first (its data then moves to $kdir/node-0)"
    fi
    [[ ! -e "$kdir/node-0" ]] || die "$kdir holds both an old single-node broker (data/) and node-0/: keep one of them"
    mkdir -p "$kdir/node-0"
    for f in data logs server.properties log4j.properties console.log format.log kafka.pid; do
        if [[ -e "$kdir/$f" ]]; then mv "$kdir/$f" "$kdir/node-0/"; fi
    done
    echo "up: note: moved the single-node Kafka data from $kdir to $kdir/node-0 (the layout of OF_KAFKA_NODES)"
fi
# The node count is fixed once the nodes are formatted (one quorum, topics
# replicated to that many): another count needs fresh Kafka data.
formatted=0
for d in "$kdir"/node-*/data/meta.properties; do [[ -e "$d" ]] && formatted=$((formatted + 1)); done
if [[ -f "$kdir/nodes" ]]; then
    had="$(cat "$kdir/nodes")"
elif ((formatted > 0)); then
    had=1
else
    had=""
fi
if [[ -n "$had" && "$had" != "$OF_KAFKA_NODES" ]]; then
    die "$kdir holds a $had-node Kafka cluster, OF_KAFKA_NODES=$OF_KAFKA_NODES asks for $OF_KAFKA_NODES: run with OF_KAFKA_NODES=$had, or 'make down' and remove $kdir/node-* (every topic and record in it is lost) to start anew"
fi
echo "$OF_KAFKA_NODES" >"$kdir/nodes"
# Every node is formatted with the same cluster id (kept in kafka/cluster.id;
# a migrated node keeps its own).
if [[ -f "$kdir/node-0/data/meta.properties" ]]; then
    cluster_id="$(sed -n 's/^cluster.id=//p' "$kdir/node-0/data/meta.properties")"
elif [[ -f "$kdir/cluster.id" ]]; then
    cluster_id="$(cat "$kdir/cluster.id")"
else
    cluster_id=-
    while [[ "$cluster_id" == -* ]]; do
        cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
    done
fi
echo "$cluster_id" >"$kdir/cluster.id"

step "kafka: $OF_KAFKA_NODES node(s) on ${kafka_nodes[*]}"
# All nodes at once: a node of a cluster is ready only once a majority runs.
kpids=()
for ((i = 0; i < OF_KAFKA_NODES; i++)); do
    OF_KAFKA_NODE_ID=$((i + 1)) OF_KAFKA_VOTERS="$(IFS=,; echo "${kafka_voters[*]}")" \
        OF_KAFKA_CLUSTER_ID="$cluster_id" OF_KAFKA_REPLICATION="$kafka_rf" \
        "$root/deploy/kafka.sh" start "$kdir/node-$i" \
            "$((OF_KAFKA_PORT + 2 * i))" "$((OF_KAFKA_CONTROLLER_PORT + 2 * i))" &
    kpids+=($!)
done
kfail=0
for p in "${kpids[@]}"; do wait "$p" || kfail=1; done
((kfail == 0)) || die "kafka did not start (logs: $kdir/node-*/logs/server.log; 'make down' stops the rest)"

step "topics (ofctl topics create)"
"$bin/ofctl" topics create || die "ofctl topics create failed"

# --- 4. dev sink and services --------------------------------------------------------

sink_match="deploy/devsink.py"
if pid="$(our_pid sink "$sink_match")"; then
    echo "dev sink already running (pid $pid)"
else
    port_busy "$OF_SINK_PORT" && die "port $OF_SINK_PORT (OF_SINK_PORT) is already in use"
    spawn sink "$var/log/sink.log" python3 -u "$root/deploy/devsink.py" --port "$OF_SINK_PORT"
fi

declare -A svc_port=([payment-gw]="$OF_GW_PORT" [inventory]="$OF_INVENTORY_PORT" [notify]="$OF_NOTIFY_PORT")
declare -A svc_port_var=([payment-gw]=OF_GW_PORT [inventory]=OF_INVENTORY_PORT [notify]=OF_NOTIFY_PORT)
declare -A svc_replicas=([payment-gw]="$OF_GW_REPLICAS" [inventory]="$OF_INVENTORY_REPLICAS"
                         [notify]="$OF_NOTIFY_REPLICAS")
services=(payment-gw inventory notify)
# Replica k of a service: instance "<service>" (k = 0) or "<service>-k",
# port + 100k, log var/log/<instance>.log, pid var/run/<instance>.pid.
instances=()
declare -A inst_port=() inst_svc=()
for name in "${services[@]}"; do
    for ((k = 0; k < ${svc_replicas[$name]}; k++)); do
        inst="$name"
        ((k == 0)) || inst="$name-$k"
        instances+=("$inst")
        inst_port[$inst]=$(( ${svc_port[$name]} + 100 * k ))
        inst_svc[$inst]="$name"
    done
done
for inst in "${instances[@]}"; do
    name="${inst_svc[$inst]}" port="${inst_port[$inst]}"
    if pid="$(our_pid "$inst" "$bin/$name")"; then
        echo "$inst already running (pid $pid)"
        continue
    fi
    port_busy "$port" && die "port $port for $inst is already in use (set ${svc_port_var[$name]})"
    step "starting $inst on :$port"
    # OF_HTTP_PORT is per replica; everything else is the exported environment.
    OF_HTTP_PORT="$port" spawn "$inst" "$var/log/$inst.log" "$bin/$name"
done
# Replicas beyond the count asked for (an earlier run with more) keep running.
for f in "$var"/run/*.pid; do
    [[ -e "$f" ]] || continue
    inst="$(basename "$f" .pid)"
    [[ "$inst" =~ ^(payment-gw|inventory|notify)-[0-9]+$ ]] || continue
    [[ -n "${inst_svc[$inst]:-}" ]] && continue
    if pid="$(our_pid "$inst" "$bin/${inst%-*}")"; then
        echo "up: note: $inst (pid $pid) is beyond the replicas asked for and keeps running; make down stops it"
    fi
done

wait_ready sink "http://127.0.0.1:$OF_SINK_PORT/ready" "$sink_match"
for inst in "${instances[@]}"; do
    wait_ready "$inst" "http://127.0.0.1:${inst_port[$inst]}/readyz" "$bin/${inst_svc[$inst]}"
done

# --- 5. demo stock -------------------------------------------------------------------

if [[ "$OF_SEED_DEMO" != 0 ]]; then
    seeded=()
    for entry in SKU-RED-MUG:100 SKU-BLUE-MUG:100 SKU-TEE-M:50 SKU-TEE-L:50 SKU-POSTER:10; do
        sku="${entry%%:*}" qty="${entry##*:}"
        code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "${OF_INVENTORY_URL%%,*}/v1/stock/$sku" || true)"
        if [[ "$code" == 404 ]]; then
            "$bin/ofctl" stock set "$sku" "$qty" >/dev/null || die "ofctl stock set $sku $qty failed"
            seeded+=("$sku=$qty")
        fi
    done
    [[ ${#seeded[@]} -eq 0 ]] || echo "seeded demo stock: ${seeded[*]}"
fi

# --- 6. where things are ----------------------------------------------------------------

{
    echo "# Written by make up: settings for ofctl. Use: . var/env.sh"
    for v in OF_KAFKA_BROKERS OF_PG_DSN OF_INVENTORY_URL OF_PAYMENT_GW_URL OF_NOTIFY_URL OF_WEBHOOK_SECRETS \
             OF_ADMIN_TOKEN OF_TOPIC_PREFIX OF_TOPIC_PARTITIONS OF_TOPIC_REPLICATION \
             OF_NOTIFY_RETRY_DELAYS; do
        # single-quoted ('\'' inside): readable, and safe for any value
        if [[ -n "${!v+x}" ]]; then printf "export %s='%s'\n" "$v" "${!v//\'/\'\\\'\'}"; fi
    done
} >"$var/env.sh.tmp"
chmod 600 "$var/env.sh.tmp"
mv "$var/env.sh.tmp" "$var/env.sh"

# var/prometheus.yml: deploy/prometheus/prometheus.yml's jobs and rules with
# this stack's targets, for a local `prometheus --config.file=var/prometheus.yml`.
{
    echo "# Written by make up: deploy/prometheus/prometheus.yml with this stack's targets."
    echo "global: {scrape_interval: 15s, scrape_timeout: 5s, evaluation_interval: 15s}"
    echo "rule_files: [\"$root/deploy/prometheus/alerts.yml\"]"
    echo "scrape_configs:"
    for name in "${services[@]}"; do
        targets=()
        for inst in "${instances[@]}"; do
            [[ "${inst_svc[$inst]}" == "$name" ]] && targets+=("\"127.0.0.1:${inst_port[$inst]}\"")
        done
        echo "  - job_name: $name"
        echo "    static_configs:"
        echo "      - targets: [$(IFS=,; echo "${targets[*]}")]"
    done
} >"$var/prometheus.yml"

show_secret() { # the documented dev value is shown, anything else is not
    if [[ "$1" == "$2" ]]; then echo "$1"; else echo "(your value from the environment)"; fi
}

rel() { # a path under the checkout as the user would type it
    if [[ "$1" == "$root/"* ]]; then echo "${1#"$root/"}"; else echo "$1"; fi
}
declare -A svc_note=([payment-gw]="POST /v1/payments" [inventory]="GET /v1/stock/{sku}, GET /v1/orders/{id}"
                     [notify]="")
echo
echo "orderflow is up."
for inst in "${instances[@]}"; do
    printf '  %-13s http://127.0.0.1:%-6s %s\n' "$inst" "${inst_port[$inst]}" "${svc_note[${inst_svc[$inst]}]}"
done
cat <<EOF
  dev sink      http://127.0.0.1:$OF_SINK_PORT   deliveries logged to $(rel "$var")/log/sink.log
  kafka         $OF_KAFKA_BROKERS
                ($OF_KAFKA_NODES node(s), replication factor $OF_TOPIC_REPLICATION; data in $(rel "$kdir")/node-*)
  postgresql    $OF_PG_DSN
  logs          $(rel "$var")/log/<instance>.log (payment-gw.log, inventory-1.log, ..., sink.log)
  kafka tools   var/kafka/bin/kafka-topics.sh --bootstrap-server ${OF_KAFKA_BROKERS%%,*} --list
                (also kafka-consumer-groups.sh, kafka-console-consumer.sh, kafka-console-producer.sh)
  every service: /healthz /readyz /metrics
  prometheus    prometheus --config.file=$(rel "$var")/prometheus.yml --storage.tsdb.path=$(rel "$var")/prometheus \\
                           --web.listen-address=127.0.0.1:9090

  webhook secret (dev): $(show_secret "$OF_WEBHOOK_SECRETS" "$dev_webhook_secret")
  admin token (dev):    $(show_secret "$OF_ADMIN_TOKEN" "$dev_admin_token")

Try a payment, then look at everything:
  . $(rel "$var")/env.sh && $(rel "$bin")/ofctl pay --order ord_demo_1 --item SKU-RED-MUG:1 --wait
  $(rel "$bin")/ofctl status

Stop everything: make down
EOF
