#!/usr/bin/env bash
# tls_vs_redis.sh: what TLS costs rcstored, beside what it costs Redis, in
# one run on one machine (issue 17's target: incref over TLS at 50
# connections, pipeline 16, at least 0.8x the same server in plaintext).
#
# Certificates are made in a temporary directory (a CA, a server
# certificate for 127.0.0.1; never committed keys). One rcstored listens on
# a tcp:// and a tls:// port at once, one redis-server on --port and
# --tls-port (Debian's Redis 7 is built with TLS), so that plaintext and
# TLS are measured against the same process. rcstore-bench runs incref and
# redis-benchmark INCR (-t incr, as perf/persist_vs_redis.sh does) with the
# same -c -n -r, pipelined (-P PIPELINE) and once unpipelined (-P 1, with
# N1 requests), plaintext and over TLS (--cacert, the server verified as
# clients would). Each load runs ROUNDS times, the two servers in turn, a
# fresh server per round, plaintext and TLS in alternating order, and the
# median is kept. The table gives each TLS figure with its ratio to the same
# server's plaintext figure (ratio of the medians); below it, the ratio of
# each round (plaintext and TLS back to back) and their median, which the
# target line uses: on a loaded machine it moves less; and the server's CPU
# time per request (from /proc/PID/stat), plaintext against TLS, which
# other load on the machine hardly changes.
#
# With two or more cores the servers run on core 0 and the load testers on
# core 1 (taskset), as compare-redis.sh does; PIN=0 turns that off. Both
# load testers are single-threaded, so each does its own TLS work on one
# core. The temporary directory lives under BUILD_DIR and is removed at the
# end, whatever happens. redis-server and redis-tools come from Debian and
# are installed if missing. A benchmark, not a test: it exits 0 whatever
# the figures are, and prints whether the target is met.
#
# usage: perf/tls_vs_redis.sh [BUILD_DIR] [REQUESTS] [ROUNDS]
#   env: CLIENTS (default 50), PIPELINE (default 16), KEYSPACE (default
#        10000), N1 (unpipelined requests, default REQUESTS/4), PIN (default 1)
set -euo pipefail

BUILD=${1:-build}
N=${2:-2000000}
ROUNDS=${3:-3}
CLIENTS=${CLIENTS:-50}
PIPELINE=${PIPELINE:-16}
KEYSPACE=${KEYSPACE:-10000}
N1=${N1:-$((N / 4))}
PIN=${PIN:-1}
RCSTORED=$BUILD/server/rcstored
RCSTORE=$BUILD/client/rcstore
BENCH=$BUILD/client/rcstore-bench
PY=/usr/bin/python3

for f in "$RCSTORED" "$RCSTORE" "$BENCH"; do
    [ -x "$f" ] || { echo "tls_vs_redis: $f not found: build first (make build)" >&2; exit 2; }
done
# (The help texts are read whole: grep -q would leave early and, under
# pipefail, the writer's SIGPIPE would fail the check.)
if [[ $("$RCSTORED" --help 2>&1) != *--tls-cert-file* ]]; then
    echo "tls_vs_redis: $RCSTORED has no --tls-cert-file" >&2
    exit 2
fi
if [[ $("$BENCH" --help 2>&1) != *--cacert* ]]; then
    echo "tls_vs_redis: $BENCH has no --cacert" >&2
    exit 2
fi
if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
    echo "tls_vs_redis: installing redis-server and redis-tools from Debian" >&2
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
# Absolute: redis-server changes to --dir before it reads its certificate.
TMP=$(realpath "$(mktemp -d "$BUILD/tls-vs-redis.XXXXXX")")
PID=
cleanup() {
    [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

# Certificates as docs/security.md makes them (RSA 2048, TLS 1.3 by
# default on both sides).
(
    cd "$TMP"
    umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=tls_vs_redis CA" \
        -keyout ca.key -out ca.pem
    printf 'subjectAltName = DNS:localhost, IP:127.0.0.1\n' >server.ext
    openssl req -new -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key \
        -out server.csr
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile server.ext -out server.pem
) >/dev/null 2>&1
PORT=$(free_port)
TPORT=$(free_port)

# start KIND ARGS...: a server in the background, waited for on $PORT.
start() {
    local kind=$1
    shift
    "${SRV[@]}" "$@" >"$TMP/server.log" 2>&1 &
    PID=$!
    for _ in $(seq 300); do
        if [ "$kind" = redis ]; then
            [ "$(redis-cli -p "$PORT" ping 2>/dev/null)" = PONG ] && return
        else
            "$RCSTORE" -H "127.0.0.1:$PORT" ping >/dev/null 2>&1 && return
        fi
        sleep 0.1
    done
    echo "tls_vs_redis: the server did not start: $*" >&2
    cat "$TMP/server.log" >&2
    exit 1
}
stop() { kill -9 "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=; }

rcs_server() {
    start rcstore "$RCSTORED" --listen "tcp://127.0.0.1:$PORT" --listen "tls://127.0.0.1:$TPORT" \
        --tls-cert-file "$TMP/server.pem" --tls-key-file "$TMP/server.key" --log-level warn
}
redis_server() {
    start redis redis-server --port "$PORT" --tls-port "$TPORT" --bind 127.0.0.1 \
        --tls-cert-file "$TMP/server.pem" --tls-key-file "$TMP/server.key" \
        --tls-ca-cert-file "$TMP/ca.pem" --tls-auth-clients no \
        --save '' --appendonly no --dir "$TMP" --daemonize no
}
csv_rps() { awk -F'"' 'NR == 2 { print $4 }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# The server's CPU time so far (user + system), in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$PID/stat"; }

# bench KIND TRANSPORT DEPTH: one load against the running server, its rps
# appended to $TMP/KIND-TRANSPORT-DEPTH and the server's CPU time per
# request (microseconds) to $TMP/KIND-TRANSPORT-DEPTH.cpu.
bench() {
    local kind=$1 transport=$2 depth=$3 n=$N t0
    [ "$depth" = 1 ] && n=$N1
    t0=$(cpu_ticks)
    bench_run "$kind" "$transport" "$depth" "$n"
    awk -v a="$t0" -v b="$(cpu_ticks)" -v hz="$(getconf CLK_TCK)" -v n="$n" \
        'BEGIN { printf "%.3f\n", (b - a) / hz * 1e6 / n }' >>"$TMP/$kind-$transport-$depth.cpu"
}
bench_run() {
    local kind=$1 transport=$2 depth=$3 n=$4
    if [ "$kind" = rcs ]; then
        local addr=(-p "$PORT")
        [ "$transport" = tls ] && addr=(-H "tls://127.0.0.1:$TPORT" --cacert "$TMP/ca.pem")
        "${CLI[@]}" "$BENCH" "${addr[@]}" -c "$CLIENTS" -P "$depth" -n "$n" -r "$KEYSPACE" \
            -t incref --csv | csv_rps >>"$TMP/$kind-$transport-$depth"
    else
        local addr=(-p "$PORT")
        [ "$transport" = tls ] && addr=(-p "$TPORT" --tls --cacert "$TMP/ca.pem")
        "${CLI[@]}" redis-benchmark "${addr[@]}" -c "$CLIENTS" -P "$depth" -n "$n" \
            -r "$KEYSPACE" -t incr --csv | csv_rps >>"$TMP/$kind-$transport-$depth"
    fi
}

echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)" \
    "${SRV:+(servers on core 0, load testers on core 1)}"
echo "# incref / INCR, $CLIENTS connections, keyspace $KEYSPACE; pipeline $PIPELINE: $N requests," \
    "pipeline 1: $N1 requests; median of $ROUNDS rounds; $(openssl version | cut -d' ' -f1-2)"
for kind in rcs redis; do
    for t in plain tls; do
        for d in "$PIPELINE" 1; do : >"$TMP/$kind-$t-$d" && : >"$TMP/$kind-$t-$d.cpu"; done
    done
done
for round in $(seq "$ROUNDS"); do
    order=(plain tls)
    [ $((round % 2)) = 0 ] && order=(tls plain)
    for kind in rcs redis; do
        if [ "$kind" = rcs ]; then rcs_server; else redis_server; fi
        for d in "$PIPELINE" 1; do
            for t in "${order[@]}"; do
                bench $kind "$t" "$d"
            done
        done
        stop
    done
done
echo "# end $(date -u '+%H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A FIG
for kind in rcs redis; do
    for t in plain tls; do
        for d in "$PIPELINE" 1; do FIG[$kind-$t-$d]=$(median <"$TMP/$kind-$t-$d"); done
    done
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
printf '%-12s %12s %12s %6s   %12s %12s %6s\n' load "rcstored" "rcstored TLS" ratio \
    "redis" "redis TLS" ratio
for d in "$PIPELINE" 1; do
    printf '%-12s %12.0f %12.0f %5sx   %12.0f %12.0f %5sx\n' "-c $CLIENTS -P $d" \
        "${FIG[rcs-plain-$d]}" "${FIG[rcs-tls-$d]}" "$(ratio "${FIG[rcs-tls-$d]}" "${FIG[rcs-plain-$d]}")" \
        "${FIG[redis-plain-$d]}" "${FIG[redis-tls-$d]}" \
        "$(ratio "${FIG[redis-tls-$d]}" "${FIG[redis-plain-$d]}")"
done
# Each round measures plaintext and TLS back to back on the same server: on
# a shared machine whose load changes from round to round, the median of
# these per-round ratios is steadier than the ratio of the medians.
round_ratios() { # KIND DEPTH: one TLS/plaintext ratio per round
    paste "$TMP/$1-tls-$2" "$TMP/$1-plain-$2" | awk '{ printf "%.2f\n", ($2 > 0 ? $1 / $2 : 0) }'
}
for kind in rcs redis; do
    for d in "$PIPELINE" 1; do
        FIG[$kind-rr-$d]=$(round_ratios $kind "$d" | median)
        printf '# %s -P %s: TLS / plaintext each round [%s], median %s\n' \
            "$([ $kind = rcs ] && echo rcstored || echo redis)" "$d" \
            "$(round_ratios $kind "$d" | tr '\n' ' ' | sed 's/ $//')" "${FIG[$kind-rr-$d]}"
    done
done
# The server's CPU time per request does not depend on what else the
# machine runs (much): plaintext's over TLS's is the ratio the throughput
# would have where the server's core is the bottleneck.
for kind in rcs redis; do
    for d in "$PIPELINE" 1; do
        p=$(median <"$TMP/$kind-plain-$d.cpu")
        t=$(median <"$TMP/$kind-tls-$d.cpu")
        printf '# %s -P %s: server CPU per request %s us plaintext, %s us TLS: ratio %s\n' \
            "$([ $kind = rcs ] && echo rcstored || echo redis)" "$d" "$p" "$t" "$(ratio "$p" "$t")"
    done
done
r=${FIG[rcs-rr-$PIPELINE]}
echo "target: rcstored TLS / plaintext at pipeline $PIPELINE >= 0.80 (median of the rounds): $r," \
    "$(awk -v r="$r" 'BEGIN { print (r >= 0.8 ? "met" : "NOT met") }');" \
    "rcstored TLS / redis TLS: $(ratio "${FIG[rcs-tls-$PIPELINE]}" "${FIG[redis-tls-$PIPELINE]}")x" \
    "at pipeline $PIPELINE, $(ratio "${FIG[rcs-tls-1]}" "${FIG[redis-tls-1]}")x at pipeline 1"
echo "# each round (rps): $(for kind in rcs redis; do for t in plain tls; do for d in "$PIPELINE" 1; do
    printf '%s %s P%s [%s]; ' $kind "$t" "$d" "$(tr '\n' ' ' <"$TMP/$kind-$t-$d" | sed 's/ $//')"
done; done; done)"
