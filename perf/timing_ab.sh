#!/usr/bin/env bash
# timing_ab.sh: what timing every request costs rcstored (issue 18), as an
# A/B of two builds under the same load: rounds that alternate BASE and NEW,
# each a fresh server pinned to CPU 0 and rcstore-bench pinned to CPU 1
# (get and incref, CLIENTS connections, pipeline PIPELINE, N requests each).
# Prints, per run, the server's CPU time per request (nanoseconds on a CPU,
# from /proc/PID/schedstat: less sensitive than req/s to other load on the
# machine) beside the benchmark's req/s. docs/performance.md has figures.
#
# usage: perf/timing_ab.sh BASE_RCSTORED NEW_RCSTORED RCSTORE_BENCH
#        (env: ROUNDS=6 N=3000000 CLIENTS=50 PIPELINE=16)
set -euo pipefail
BASE=$1 NEW=$2 BENCH=$3
ROUNDS=${ROUNDS:-6} N=${N:-3000000} CLIENTS=${CLIENTS:-50} PIPELINE=${PIPELINE:-16}

free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

run() { # label binary
    local port pid t0 t1 out
    port=$(free_port)
    taskset -c 0 "$2" --listen "tcp://127.0.0.1:$port" --log-level warn &
    pid=$!
    for _ in $(seq 100); do
        "$BENCH" -p "$port" -c 1 -n 1 -t ping -q >/dev/null 2>&1 && break
        sleep 0.1
    done
    t0=$(cut -d' ' -f1 "/proc/$pid/schedstat")
    out=$(taskset -c 1 "$BENCH" -p "$port" -c "$CLIENTS" -P "$PIPELINE" -n "$N" -t get,incref -q |
        tr '\n' ' ')
    t1=$(cut -d' ' -f1 "/proc/$pid/schedstat")
    echo "$1 server_ns_per_request=$(((t1 - t0) / (2 * N))) $out"
    kill "$pid"
    wait "$pid" || true
}

for _ in $(seq "$ROUNDS"); do
    run base "$BASE"
    run new "$NEW"
done
