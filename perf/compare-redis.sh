#!/usr/bin/env bash
# compare-redis.sh: rcstored against redis-server on loopback, each driven by
# its own load tester with identical -c, -P, -n, -r and -d 16:
#   redis-benchmark INCR  vs  rcstore-bench incref   (c 50, P 1 and P 16)
#   redis-benchmark GET   vs  rcstore-bench get      (c 50, P 16)
# Each load runs ROUNDS times, the two servers alternating, and the median
# rps and p99 of each side are compared. redis-server and redis-benchmark come
# from Debian (redis-server, redis-tools) and are installed if missing.
#
# With two or more cores, both servers run pinned to core 0 and both load
# testers to core 1 (taskset), so that neither side's tail depends on where
# the scheduler happened to put it; PIN=0 turns that off.
#
# usage: perf/compare-redis.sh [BUILD_DIR] [REQUESTS] [ROUNDS]
#   env: KEYSPACE (default 10000), CLIENTS (default 50), PIN (default 1)
set -euo pipefail

BUILD=${1:-build}
N=${2:-2000000}
ROUNDS=${3:-3}
KEYSPACE=${KEYSPACE:-10000}
CLIENTS=${CLIENTS:-50}
PIN=${PIN:-1}
SRV=()
CLI=()
if [ "$PIN" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
    SRV=(taskset -c 0)
    CLI=(taskset -c 1)
fi
RCSTORED=$BUILD/server/rcstored
BENCH=$BUILD/client/rcstore-bench

for f in "$RCSTORED" "$BENCH"; do
    [ -x "$f" ] || { echo "compare-redis: $f not found: build first (make build)" >&2; exit 2; }
done
if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
    echo "compare-redis: installing redis-server and redis-tools from Debian" >&2
    apt-get install -y -qq redis-server redis-tools >/dev/null
fi

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
RPORT=$(free_port)
SPORT=$(free_port)
TMP=$(mktemp -d)
cleanup() {
    kill "$RPID" "$SPID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

"${SRV[@]}" redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no --logfile "$TMP/redis.log" &
RPID=$!
"${SRV[@]}" "$RCSTORED" --listen "tcp://127.0.0.1:$SPORT" --log-level warn &
SPID=$!
for _ in $(seq 100); do
    redis-cli -p "$RPORT" ping >/dev/null 2>&1 && "$BUILD/client/rcstore" -H "127.0.0.1:$SPORT" ping \
        >/dev/null 2>&1 && break
    sleep 0.1
done

# GET must find its keys: touch every key of the keyspace (20x over, so that
# fewer than 1 in 10^8 is missed).
redis-benchmark -p "$RPORT" -q -c "$CLIENTS" -P 16 -d 16 -r "$KEYSPACE" \
    -n $((KEYSPACE * 20)) -t set --csv >/dev/null

# One measurement: prints "rps p99" from a CSV with redis-benchmark's columns.
csv_row() { awk -F'"' 'NR == 2 { print $4, $14 }'; }
run_redis() { # test pipeline
    "${CLI[@]}" redis-benchmark -p "$RPORT" -c "$CLIENTS" -P "$2" -n "$N" -r "$KEYSPACE" -d 16 \
        -t "$1" --csv | csv_row
}
run_rcstore() { # test pipeline
    "${CLI[@]}" "$BENCH" -p "$SPORT" -c "$CLIENTS" -P "$2" -n "$N" -r "$KEYSPACE" -d 16 -t "$1" \
        --csv | csv_row
}
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

status=0
compare() { # label redis-test rcstore-test pipeline
    local label=$1 rt=$2 st=$3 p=$4 i
    : >"$TMP/r" && : >"$TMP/s"
    for i in $(seq "$ROUNDS"); do
        run_redis "$rt" "$p" >>"$TMP/r"
        run_rcstore "$st" "$p" >>"$TMP/s"
    done
    local rr sr rp sp ratio verdict
    rr=$(cut -d' ' -f1 "$TMP/r" | median)
    sr=$(cut -d' ' -f1 "$TMP/s" | median)
    rp=$(cut -d' ' -f2 "$TMP/r" | median)
    sp=$(cut -d' ' -f2 "$TMP/s" | median)
    ratio=$(awk -v a="$sr" -v b="$rr" 'BEGIN { printf "%.2f", a / b }')
    if awk -v r="$ratio" -v a="$sp" -v b="$rp" 'BEGIN { exit !(r >= 1.2 && a <= b) }'; then
        verdict="met (>= 1.2x, p99 <= redis)"
    else
        verdict="NOT met (>= 1.2x, p99 <= redis)"
        status=1
    fi
    printf '%-22s %12.0f %12.0f %6sx %9.3fms %9.3fms  %s\n' "$label" "$rr" "$sr" "$ratio" \
        "$rp" "$sp" "$verdict"
}
echo "# $N requests, $CLIENTS clients, keyspace $KEYSPACE, 16-byte values, median of $ROUNDS" \
    "rounds; $(nproc) cores, both load testers on the same machine" \
    "${SRV:+(servers on core 0, testers on core 1)}"
printf '%-22s %12s %12s %7s %10s %10s  %s\n' load redis rcstore ratio "redis p99" "rcs p99" target
compare "incr/incref P1" incr incref 1
compare "incr/incref P16" incr incref 16
compare "get P16" get get 16
exit $status
