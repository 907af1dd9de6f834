#!/usr/bin/env bash
# persist_vs_redis.sh: what durability costs rcstored, beside what it costs
# Redis, in one run on one machine (issue 15's targets).
#
# 1. Throughput: incref at CLIENTS connections, pipeline 16 (rcstore-bench),
#    for rcstored in memory, --fsync everysec and --fsync always; and INCR
#    (redis-benchmark, same -c -P -n -r) for redis-server without AOF,
#    --appendonly yes --appendfsync everysec and always. Each load runs
#    ROUNDS times, the six servers in turn, and the median is kept; each
#    durable figure is printed with its ratio to its own in-memory figure.
# 2. Recovery: OBJECTS objects of 16 bytes, one name per 100 objects
#    (perf/persist_recovery.py populate-rcstore), a save, OBJECTS/10 more
#    changes in the journal, kill -9, and the time from the start of
#    rcstored to its first answered ping; Redis: OBJECTS keys (a pipe of
#    SET), SAVE, kill -9, and the time from the start of redis-server to the
#    first PING answered PONG rather than LOADING. Median of ROUNDS restarts.
#
# With two or more cores the servers run on core 0 and the load testers on
# core 1 (taskset), as compare-redis.sh does; PIN=0 turns that off. Data
# directories live in a temporary directory under BUILD_DIR, removed at the
# end, whatever happens. redis-server and redis-tools come from Debian and
# are installed if missing. A benchmark, not a test: it exits 0 whatever
# the figures are, and prints whether each target of issue 15 is met.
#
# usage: perf/persist_vs_redis.sh [BUILD_DIR] [REQUESTS] [ROUNDS]
#   env: CLIENTS (default 50), PIPELINE (default 16), KEYSPACE (default 10000),
#        OBJECTS (default 1000000), PIN (default 1), SKIP_RECOVERY=1
set -euo pipefail

BUILD=${1:-build}
N=${2:-2000000}
ROUNDS=${3:-3}
CLIENTS=${CLIENTS:-50}
PIPELINE=${PIPELINE:-16}
KEYSPACE=${KEYSPACE:-10000}
OBJECTS=${OBJECTS:-1000000}
PIN=${PIN:-1}
HERE=$(cd "$(dirname "$0")" && pwd)
RCSTORED=$BUILD/server/rcstored
BENCH=$BUILD/client/rcstore-bench
PY=/usr/bin/python3

for f in "$RCSTORED" "$BENCH"; do
    [ -x "$f" ] || { echo "persist_vs_redis: $f not found: build first (make build)" >&2; exit 2; }
done
if ! "$RCSTORED" --help | grep -q -- --data-dir; then
    echo "persist_vs_redis: $RCSTORED has no --data-dir" >&2
    exit 2
fi
if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
    echo "persist_vs_redis: installing redis-server and redis-tools from Debian" >&2
    apt-get install -y -qq redis-server redis-tools >/dev/null
fi
SRV=()
CLI=()
if [ "$PIN" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
    SRV=(taskset -c 0)
    CLI=(taskset -c 1)
fi

free_port() {
    $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
mkdir -p "$BUILD"
TMP=$(mktemp -d "$BUILD/persist-vs-redis.XXXXXX")
PID=
cleanup() {
    [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
PORT=$(free_port)

# start KIND ARGS...: a server on $PORT in the background, waited for.
start() {
    local kind=$1
    shift
    "${SRV[@]}" "$@" >"$TMP/server.log" 2>&1 &
    PID=$!
    for _ in $(seq 300); do
        if [ "$kind" = redis ]; then
            [ "$(redis-cli -p "$PORT" ping 2>/dev/null)" = PONG ] && return
        else
            "$BUILD/client/rcstore" -H "127.0.0.1:$PORT" ping >/dev/null 2>&1 && return
        fi
        sleep 0.1
    done
    echo "persist_vs_redis: the server did not start: $*" >&2
    cat "$TMP/server.log" >&2
    exit 1
}
stop() { kill -9 "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=; }

rcs_server() { # mode: memory|everysec|always
    rm -rf "$TMP/rcs"
    if [ "$1" = memory ]; then
        start rcstore "$RCSTORED" --listen "tcp://127.0.0.1:$PORT" --log-level warn
    else
        start rcstore "$RCSTORED" --listen "tcp://127.0.0.1:$PORT" --log-level warn \
            --data-dir "$TMP/rcs" --fsync "$1"
    fi
}
redis_server() { # mode: memory|everysec|always
    rm -rf "$TMP/redis" && mkdir -p "$TMP/redis"
    local aof=(--appendonly no)
    [ "$1" = memory ] || aof=(--appendonly yes --appendfsync "$1")
    start redis redis-server --port "$PORT" --bind 127.0.0.1 --save '' "${aof[@]}" \
        --dir "$TMP/redis" --daemonize no
}
csv_rps() { awk -F'"' 'NR == 2 { print $4 }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)" \
    "${SRV:+(servers on core 0, load testers on core 1)}"
echo "# throughput: incref / INCR, $N requests, $CLIENTS connections, pipeline $PIPELINE," \
    "keyspace $KEYSPACE, median of $ROUNDS rounds"
for mode in memory everysec always; do : >"$TMP/rcs-$mode" && : >"$TMP/redis-$mode"; done
for round in $(seq "$ROUNDS"); do
    for mode in memory everysec always; do
        rcs_server $mode
        "${CLI[@]}" "$BENCH" -p "$PORT" -c "$CLIENTS" -P "$PIPELINE" -n "$N" -r "$KEYSPACE" \
            -t incref --csv | csv_rps >>"$TMP/rcs-$mode"
        stop
        redis_server $mode
        "${CLI[@]}" redis-benchmark -p "$PORT" -c "$CLIENTS" -P "$PIPELINE" -n "$N" \
            -r "$KEYSPACE" -t incr --csv | csv_rps >>"$TMP/redis-$mode"
        stop
    done
done
declare -A FIG
for mode in memory everysec always; do
    FIG[rcs-$mode]=$(median <"$TMP/rcs-$mode")
    FIG[redis-$mode]=$(median <"$TMP/redis-$mode")
done
printf '%-28s %12s %7s   %-28s %12s %7s\n' rcstored rps ratio redis-server rps ratio
target() { # ratio minimum
    awk -v r="$1" -v m="$2" 'BEGIN { print (r >= m ? "met" : "NOT met") }'
}
for mode in memory everysec always; do
    rr=$(awk -v a="${FIG[rcs-$mode]}" -v b="${FIG[rcs-memory]}" 'BEGIN { printf "%.2f", a / b }')
    dr=$(awk -v a="${FIG[redis-$mode]}" -v b="${FIG[redis-memory]}" 'BEGIN { printf "%.2f", a / b }')
    case $mode in
        memory) label="in memory"; rlabel="no AOF"; note="" ;;
        everysec) label="--fsync everysec"; rlabel="appendfsync everysec"
            note="  target >= 0.90: $(target "$rr" 0.9)" ;;
        always) label="--fsync always"; rlabel="appendfsync always"
            note="  target >= 0.50: $(target "$rr" 0.5)" ;;
    esac
    printf '%-28s %12.0f %6sx   %-28s %12.0f %6sx%s\n' "$label" "${FIG[rcs-$mode]}" "$rr" \
        "$rlabel" "${FIG[redis-$mode]}" "$dr" "$note"
done
echo "# each round (rps): $(for mode in memory everysec always; do
    printf 'rcstored %s [%s] redis %s [%s]; ' $mode "$(tr '\n' ' ' <"$TMP/rcs-$mode" | sed 's/ $//')" \
        $mode "$(tr '\n' ' ' <"$TMP/redis-$mode" | sed 's/ $//')"; done)"

[ "${SKIP_RECOVERY:-0}" = 1 ] && exit 0
echo "# recovery: $OBJECTS objects of 16 bytes, a name per 100, save, $((OBJECTS / 10))" \
    "changes after it, kill -9; time from start to the first answered ping," \
    "median of $ROUNDS restarts"
rm -rf "$TMP/rcs"
RCS_CMD=("${SRV[@]}" "$RCSTORED" --listen "tcp://127.0.0.1:$PORT" --data-dir "$TMP/rcs")
start rcstore "${RCS_CMD[@]}"
"${CLI[@]}" $PY "$HERE/persist_recovery.py" populate-rcstore "$PORT" "$OBJECTS"
stop
rm -rf "$TMP/redis" && mkdir -p "$TMP/redis"
REDIS_CMD=("${SRV[@]}" redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no
    --dir "$TMP/redis" --daemonize no)
start redis "${REDIS_CMD[@]}"
"${CLI[@]}" $PY "$HERE/persist_recovery.py" populate-redis "$PORT" "$OBJECTS"
stop
: >"$TMP/rcs-rec" && : >"$TMP/redis-rec"
for round in $(seq "$ROUNDS"); do
    $PY "$HERE/persist_recovery.py" first-ping rcstore "$PORT" -- "${RCS_CMD[@]}" \
        >>"$TMP/rcs-rec" 2>>"$TMP/rcs-recovered"
    $PY "$HERE/persist_recovery.py" first-ping redis "$PORT" -- "${REDIS_CMD[@]}" \
        >>"$TMP/redis-rec"
done
rms=$(median <"$TMP/rcs-rec")
dms=$(median <"$TMP/redis-rec")
echo "rcstored:     $rms ms to the first pong ($(awk -v n="$OBJECTS" -v t="$rms" \
    'BEGIN { printf "%.2fM", n / t / 1000 }') objects/s); its log: $(tail -1 "$TMP/rcs-recovered")"
echo "redis-server: $dms ms to the first PONG ($(awk -v n="$OBJECTS" -v t="$dms" \
    'BEGIN { printf "%.2fM", n / t / 1000 }') keys/s)"
awk -v r="$rms" -v d="$dms" -v n="$OBJECTS" 'BEGIN {
    printf "rcstored / redis: %.2fx the time; targets: >= 2.5M objects/s: %s, <= 0.5x redis: %s\n",
        r / d, (n / r / 1000 >= 2.5 ? "met" : "NOT met"), (r / d <= 0.5 ? "met" : "NOT met") }'
