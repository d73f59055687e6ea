#!/usr/bin/env bash
# Runs an Apache Kafka 3.9.1 node (KRaft, broker+controller in one JVM) from
# the Maven Central jars; no Docker, no Kafka tarball. One node is a
# single-node cluster; N nodes started with the same OF_KAFKA_VOTERS and
# OF_KAFKA_CLUSTER_ID form one cluster (one quorum of N controllers).
#
#   kafka.sh fetch                        copy the jars into $OF_KAFKA_JARS
#                                         (default var/kafka/lib); skipped when
#                                         already complete. Writes Kafka's own
#                                         tools (kafka-topics.sh, ...) into the
#                                         bin/ beside that dir (var/kafka/bin)
#   kafka.sh start DATA_DIR PORT CTL_PORT write config, format if needed, start
#                                         in the background, wait until ready
#   kafka.sh stop DATA_DIR                SIGTERM, wait, SIGKILL after 30 s
#   kafka.sh status DATA_DIR              exit 0 if running, 3 if not
#   kafka.sh pid DATA_DIR                 print the broker's pid if running
#
# DATA_DIR layout: server.properties, log4j.properties, kafka.pid,
# console.log (JVM stdout/stderr), logs/ (broker logs, gc.log: one line per JVM GC pause), data/ (log.dirs).
# Environment: OF_KAFKA_JARS (jar dir), OF_KAFKA_HEAP (default 512m),
# OF_KAFKA_START_TIMEOUT (seconds, default 60), JAVA (default java),
# OF_KAFKA_ADVERTISED_PORT (port advertised to clients, default PORT; the
# fault tests put a TCP proxy there, so every client reconnects through it).
# Several nodes: OF_KAFKA_NODE_ID (default 1), OF_KAFKA_VOTERS (the quorum,
# "1@127.0.0.1:9093,2@127.0.0.1:9095,..."; default this node alone),
# OF_KAFKA_CLUSTER_ID (22-char id every node is formatted with; default a
# random one, fine for one node), OF_KAFKA_REPLICATION (default 1: the
# replication factor of new topics and of the internal ones; at 3 or more,
# min.insync.replicas=2). A node of a cluster is ready only once a majority
# of the voters runs: start the nodes at the same time (in the background).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
pom="$here/kafka/pom.xml"
jars="${OF_KAFKA_JARS:-$root/var/kafka/lib}"
[[ "$jars" == /* ]] || jars="$PWD/$jars"
java_bin="${JAVA:-java}"
heap="${OF_KAFKA_HEAP:-512m}"
start_timeout="${OF_KAFKA_START_TIMEOUT:-60}"
stop_timeout=30

die() { echo "kafka.sh: $*" >&2; exit 1; }
log() { echo "kafka.sh: $*" >&2; }
usage() {
    sed -n '7,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

now() { date +%s.%N; }
elapsed_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# --- fetch -----------------------------------------------------------------

# The stamp records which pom the jar dir was filled from, so an edited pom
# (another Kafka version) refetches while an unchanged one costs nothing.
pom_digest() { sha256sum "$pom" | cut -d' ' -f1; }

jars_complete() {
    [[ -f "$jars/.complete" ]] && [[ "$(cat "$jars/.complete")" == "$(pom_digest)" ]] \
        && compgen -G "$jars/kafka_2.13-*.jar" >/dev/null
}

# Kafka's command-line tools, run from the fetched jars the way the Kafka
# distribution's bin/kafka-run-class.sh runs them: bin/kafka-run-class.sh
# (honours KAFKA_HEAP_OPTS, KAFKA_JVM_PERFORMANCE_OPTS, KAFKA_LOG4J_OPTS,
# KAFKA_OPTS and JAVA_HOME as Kafka's does) and one script per tool naming
# its main class (the classes of Kafka 3.9.1's own bin/ scripts).
tools=(
    kafka-topics.sh:org.apache.kafka.tools.TopicCommand
    kafka-consumer-groups.sh:org.apache.kafka.tools.consumer.group.ConsumerGroupCommand
    kafka-console-consumer.sh:org.apache.kafka.tools.consumer.ConsoleConsumer
    kafka-console-producer.sh:kafka.tools.ConsoleProducer
    kafka-get-offsets.sh:org.apache.kafka.tools.GetOffsetShell
    kafka-configs.sh:kafka.admin.ConfigCommand
    kafka-metadata-quorum.sh:org.apache.kafka.tools.MetadataQuorumCommand
)

write_tools() {
    local bin tool name class
    bin="$(dirname "$jars")/bin"
    mkdir -p "$bin"
    printf '%s\n' \
        '# Written by deploy/kafka.sh: the tools log warnings to stderr, as Kafka'"'"'s own.' \
        'log4j.rootLogger=WARN, stderr' \
        'log4j.appender.stderr=org.apache.log4j.ConsoleAppender' \
        'log4j.appender.stderr.layout=org.apache.log4j.PatternLayout' \
        'log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n' \
        'log4j.appender.stderr.Target=System.err' >"$bin/tools-log4j.properties"
    # Unquoted heredoc: $jars is filled in now, \$ stays for run time.
    cat >"$bin/kafka-run-class.sh.tmp" <<EOF
#!/usr/bin/env bash
# Written by deploy/kafka.sh: runs a class of Kafka 3.9.1 from the jars in
# $jars, like the Kafka distribution's bin/kafka-run-class.sh.
#   kafka-run-class.sh CLASS [ARGS...]
set -euo pipefail
bin="\$(cd "\$(dirname "\${BASH_SOURCE[0]}")" && pwd)"
jars="\${OF_KAFKA_JARS:-$jars}"
if [[ -n "\${JAVA_HOME:-}" ]]; then java="\$JAVA_HOME/bin/java"; else java="\${JAVA:-java}"; fi
# shellcheck disable=SC2086
exec "\$java" \${KAFKA_HEAP_OPTS:--Xmx256M} \\
    \${KAFKA_JVM_PERFORMANCE_OPTS:--XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true} \\
    \${KAFKA_LOG4J_OPTS:--Dlog4j.configuration=file:\$bin/tools-log4j.properties} \\
    \${KAFKA_OPTS:-} -cp "\$jars/*" "\$@"
EOF
    chmod 755 "$bin/kafka-run-class.sh.tmp"
    mv "$bin/kafka-run-class.sh.tmp" "$bin/kafka-run-class.sh"
    for tool in "${tools[@]}"; do
        name="${tool%%:*}" class="${tool#*:}"
        cat >"$bin/$name.tmp" <<EOF
#!/usr/bin/env bash
# Written by deploy/kafka.sh: Kafka 3.9.1's $name ($class).
exec "\$(dirname "\${BASH_SOURCE[0]}")/kafka-run-class.sh" $class "\$@"
EOF
        chmod 755 "$bin/$name.tmp"
        mv "$bin/$name.tmp" "$bin/$name"
    done
}

cmd_fetch() {
    [[ -r "$pom" ]] || die "missing $pom"
    if jars_complete; then
        write_tools
        return 0
    fi
    command -v mvn >/dev/null 2>&1 || die "mvn not found (run deploy/install-deps.sh)"
    log "fetching Kafka jars into $jars (Maven Central, cached in ~/.m2)"
    local tmp="$jars.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    if ! mvn -q -B -Dstyle.color=never dependency:copy-dependencies -DoutputDirectory="$tmp" \
            -DincludeScope=runtime -f "$pom" >"$tmp.log" 2>&1; then
        cat "$tmp.log" >&2
        rm -rf "$tmp" "$tmp.log"
        die "maven could not fetch the Kafka jars (see output above)"
    fi
    rm -f "$tmp.log"
    compgen -G "$tmp/kafka_2.13-*.jar" >/dev/null || { rm -rf "$tmp"; die "no kafka_2.13 jar after fetch"; }
    pom_digest >"$tmp/.complete"
    rm -rf "$jars"
    mkdir -p "$(dirname "$jars")"
    mv "$tmp" "$jars"
    write_tools
}

# --- process helpers ---------------------------------------------------------

pidfile_of() { echo "$1/kafka.pid"; }

# Prints the pid recorded for DATA_DIR if that process is alive and is our
# broker (a java running kafka.Kafka with DATA_DIR's server.properties), so a
# stale pid file whose pid was reused never gets signalled.
running_pid() {
    local dir="$1" pf pid cmdline
    pf="$(pidfile_of "$dir")"
    [[ -f "$pf" ]] || return 1
    pid="$(cat "$pf" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [[ -r "/proc/$pid/cmdline" ]] || return 1
    [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]] || return 1
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
    [[ "$cmdline" == *kafka.Kafka*"$dir/server.properties"* ]] || return 1
    echo "$pid"
}

# The PLAINTEXT port opens only once the broker is ready; the cheap TCP probe
# comes first because a kcat against a closed port waits out its whole -m.
broker_ready() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null \
        && kcat -b "127.0.0.1:$1" -L -m 5 -q >/dev/null 2>&1
}

write_config() {
    local dir="$1" port="$2" ctl="$3"
    local adv="${OF_KAFKA_ADVERTISED_PORT:-$port}"
    local id="${OF_KAFKA_NODE_ID:-1}" rf="${OF_KAFKA_REPLICATION:-1}" isr=1
    local voters="${OF_KAFKA_VOTERS:-$id@127.0.0.1:$ctl}"
    ((rf >= 3)) && isr=2
    cat >"$dir/server.properties" <<EOF
# Written by deploy/kafka.sh; rewritten on every start.
process.roles=broker,controller
node.id=$id
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$ctl
advertised.listeners=PLAINTEXT://127.0.0.1:$adv
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=6
auto.create.topics.enable=false
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
default.replication.factor=$rf
min.insync.replicas=$isr
group.initial.rebalance.delay.ms=0
# After a SIGKILL the controller keeps the dead broker's registration until
# its session times out (default 9 s); a shorter session makes crash-restart
# tests start in about 5 s instead of 15 s.
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=4000
EOF
    cat >"$dir/log4j.properties" <<EOF
# Written by deploy/kafka.sh. Broker logs go to $dir/logs/server.log.
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=$dir/logs/server.log
log4j.appender.file.MaxFileSize=20MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.request.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
EOF
}

java_opts() {
    local dir="$1"
    echo "-Xmx$heap -XX:+UseG1GC -XX:MaxGCPauseMillis=20" \
         "-XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent" \
         "-XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true" \
         "-Xlog:gc:file=$dir/logs/gc.log:time,uptime:filecount=4,filesize=20M" \
         "-Dlog4j.configuration=file:$dir/log4j.properties -Dkafka.logs.dir=$dir/logs"
}

# --- start -------------------------------------------------------------------

cmd_start() {
    [[ $# -eq 3 ]] || usage
    local dir="$1" port="$2" ctl="$3" pid t0
    [[ "$port" =~ ^[0-9]+$ && "$ctl" =~ ^[0-9]+$ ]] || die "PORT and CTL_PORT must be numbers (got '$port' '$ctl')"
    [[ "${OF_KAFKA_NODE_ID:-1}" =~ ^[0-9]+$ ]] || die "OF_KAFKA_NODE_ID must be a number (got '$OF_KAFKA_NODE_ID')"
    [[ "${OF_KAFKA_REPLICATION:-1}" =~ ^[1-9][0-9]*$ ]] \
        || die "OF_KAFKA_REPLICATION must be a positive number (got '$OF_KAFKA_REPLICATION')"
    [[ -z "${OF_KAFKA_CLUSTER_ID:-}" || "$OF_KAFKA_CLUSTER_ID" =~ ^[A-Za-z0-9_][A-Za-z0-9_-]{21}$ ]] \
        || die "OF_KAFKA_CLUSTER_ID must be 22 characters of URL-safe base64 (got '$OF_KAFKA_CLUSTER_ID')"
    command -v "$java_bin" >/dev/null 2>&1 || die "java not found (run deploy/install-deps.sh)"
    command -v kcat >/dev/null 2>&1 || die "kcat not found (run deploy/install-deps.sh)"
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"

    if pid="$(running_pid "$dir")"; then
        log "already running (pid $pid) in $dir"
        return 0
    fi
    jars_complete || cmd_fetch

    t0="$(now)"
    mkdir -p "$dir/data" "$dir/logs"
    write_config "$dir" "$port" "$ctl"

    if [[ ! -f "$dir/data/meta.properties" ]]; then
        # Any 16 random bytes in URL-safe base64 (22 chars) is a valid cluster id;
        # cheaper than a JVM start for `StorageTool random-uuid`.
        local cluster_id="${OF_KAFKA_CLUSTER_ID:-}"
        # (Re-drawn when it starts with '-', which the tool would take for an option.)
        [[ -n "$cluster_id" ]] || cluster_id=-
        while [[ "$cluster_id" == -* ]]; do
            cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
        done
        # shellcheck disable=SC2046
        if ! "$java_bin" $(java_opts "$dir") -cp "$jars/*" kafka.tools.StorageTool format \
                -t "$cluster_id" -c "$dir/server.properties" -g >"$dir/format.log" 2>&1; then
            cat "$dir/format.log" >&2
            die "formatting $dir/data failed"
        fi
    fi

    # Port clash check: a listener already there would make the broker die
    # after a long timeout, or worse, kcat would see someone else's broker.
    # A broker killed a moment ago may still hold its port briefly, and a
    # probe can now and then connect to itself: the port must stay busy for
    # 15 s before this counts as a clash.
    local p tries
    for p in "$port" "$ctl"; do
        tries=0
        while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && ((tries < 30)); do
            sleep 0.5
            tries=$((tries + 1))
        done
        if ((tries >= 30)); then
            die "port $p on 127.0.0.1 is already in use"
        fi
    done

    echo "=== $(date -u +%FT%TZ) start port=$port controller=$ctl" >>"$dir/console.log"
    # setsid: own session, so the broker outlives the caller's terminal/make.
    # shellcheck disable=SC2046
    setsid "$java_bin" $(java_opts "$dir") -cp "$jars/*" kafka.Kafka "$dir/server.properties" \
        >>"$dir/console.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$(pidfile_of "$dir")"

    local deadline=$(( $(date +%s) + start_timeout ))
    until broker_ready "$port"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 40 "$dir/console.log" >&2 || true
            tail -n 40 "$dir/logs/server.log" >&2 2>/dev/null || true
            rm -f "$(pidfile_of "$dir")"
            die "broker exited during start-up (logs: $dir/console.log, $dir/logs/server.log)"
        fi
        if (( $(date +%s) >= deadline )); then
            tail -n 40 "$dir/logs/server.log" >&2 2>/dev/null || true
            kill -KILL "$pid" 2>/dev/null || true
            rm -f "$(pidfile_of "$dir")"
            die "broker not ready on 127.0.0.1:$port after ${start_timeout}s"
        fi
        sleep 0.2
    done
    echo "kafka started on 127.0.0.1:$port (pid $pid) in $(elapsed_since "$t0")s"
}

# --- stop / status -----------------------------------------------------------

cmd_stop() {
    [[ $# -eq 1 ]] || usage
    local dir pid t0 i
    [[ -d "$1" ]] || { log "no data dir $1, nothing to stop"; return 0; }
    dir="$(cd "$1" && pwd)"
    if ! pid="$(running_pid "$dir")"; then
        rm -f "$(pidfile_of "$dir")"
        log "not running ($dir)"
        return 0
    fi
    t0="$(now)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < stop_timeout * 10; i++)); do
        running_pid "$dir" >/dev/null || break
        sleep 0.1
    done
    if running_pid "$dir" >/dev/null; then
        log "broker (pid $pid) still running after ${stop_timeout}s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            running_pid "$dir" >/dev/null || break
            sleep 0.1
        done
    fi
    rm -f "$(pidfile_of "$dir")"
    echo "kafka stopped (pid $pid) in $(elapsed_since "$t0")s"
}

cmd_status() {
    [[ $# -eq 1 ]] || usage
    local dir pid
    if [[ -d "$1" ]] && dir="$(cd "$1" && pwd)" && pid="$(running_pid "$dir")"; then
        echo "kafka running (pid $pid) in $dir"
        return 0
    fi
    echo "kafka not running ($1)"
    return 3
}

cmd_pid() {
    [[ $# -eq 1 ]] || usage
    local dir
    [[ -d "$1" ]] || return 3
    dir="$(cd "$1" && pwd)"
    running_pid "$dir" || return 3
}

[[ $# -ge 1 ]] || usage
cmd="$1"
shift
case "$cmd" in
    fetch)  [[ $# -eq 0 ]] || usage; cmd_fetch ;;
    start)  cmd_start "$@" ;;
    stop)   cmd_stop "$@" ;;
    status) cmd_status "$@" ;;
    pid)    cmd_pid "$@" ;;
    -h|--help|help) usage ;;
    *) log "unknown command '$cmd'"; usage ;;
esac
