#!/usr/bin/env bash
# Integration test of rcstore-bench against a real rcstored: every test runs
# and reports, the CSV has redis-benchmark's exact columns, the JSON parses,
# the unix socket works, bad flags are refused, and the load leaves nothing
# behind: once its connections are gone (and a gc has taken the cycle test's
# garbage), the heap holds no object.
set -u
RCSTORED=$1
RCSTORE=$2
BENCH=$3
. "$(dirname "$0")/lib.sh"
host=${addr%:*}
port=${addr##*:}
objects() {
  "$RCSTORE" -H "$addr" gc >/dev/null
  "$RCSTORE" -H "$addr" --json stats | /usr/bin/python3 -c \
    'import json, sys; print(json.load(sys.stdin)["heap"]["objects"])'
}

all=ping,create,get,incref,decref,link,churn,cycle,mixed
"$BENCH" -h "$host" -p "$port" -c 4 -P 3 -n 3000 -r 40 -t "$all" --csv >"$tmp/csv"
check "csv exit status" 0 $?
check "csv header" '"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"' \
  "$(head -1 "$tmp/csv")"
check "csv rows" "PING CREATE GET INCREF DECREF LINK CHURN CYCLE MIXED" \
  "$(tail -n +2 "$tmp/csv" | cut -d'"' -f2 | tr '\n' ' ' | sed 's/ $//')"
check "every rps positive, 8 columns" 9 \
  "$(tail -n +2 "$tmp/csv" | awk -F'","' 'NF == 8 && $2 + 0 > 0' | wc -l)"
check "the load left no object behind" 0 "$(objects)"

# JSON: one object per test; requests counted exactly; no errors.
"$BENCH" -s "$tmp/s.sock" -c 3 -n 999 -t get,incref,churn,cycle --json >"$tmp/json"
check "json over the unix socket" 0 $?
check "json fields" "get 999 0|incref 999 0|churn 1000 0|cycle 1000 0" "$(/usr/bin/python3 -c '
import json, sys
rows = json.load(open(sys.argv[1]))
ok = all(r["latency_ms"]["p50"] <= r["latency_ms"]["p99"] <= r["latency_ms"]["max"] for r in rows)
print("|".join("%s %d %d" % (r["test"], r["requests"], r["errors"]) for r in rows) if ok else "bad latencies")
' "$tmp/json")"
check "json load left no object behind" 0 "$(objects)"

# --duration ends a test by time; -q prints one line per test.
out=$("$BENCH" -h "$host" -p "$port" -c 2 --duration 0.3 -t ping -q)
check "duration and -q" 1 "$([[ $out =~ ^PING:\ [0-9.]+\ requests\ per\ second,\ p50=[0-9.]+\ msec$ ]] && echo 1)"

# Several threads share one test.
"$BENCH" -h "$host" -p "$port" -c 6 --threads 3 -n 3000 -t incref --csv >"$tmp/thr"
check "threads" 1 "$(tail -1 "$tmp/thr" | awk -F'","' '$2 + 0 > 0' | wc -l)"

# Bad flags and unreachable servers are refused with status 2.
"$BENCH" -t nosuch >/dev/null 2>&1
check "unknown test" 2 $?
"$BENCH" -c 0 >/dev/null 2>&1
check "zero clients" 2 $?
"$BENCH" --mix get:0 -t mixed >/dev/null 2>&1
check "mix of zero" 2 $?
"$BENCH" -s "$tmp/none.sock" -n 10 -t ping >/dev/null 2>&1
check "no server" 2 $?
# The token file is read as the server and the CLI read it (common/secret),
# from --auth-file or RCSTORE_AUTH_FILE.
printf 'tok\n' >"$tmp/open-token"
chmod 644 "$tmp/open-token"
"$BENCH" -s "$tmp/s.sock" -n 10 -t ping --auth-file "$tmp/open-token" 2>"$tmp/err" >/dev/null
check "an open --auth-file exits 2" 2 $?
check "and says how to fix it" 1 "$(grep -c 'mode 0644); chmod 600 it' "$tmp/err")"
RCSTORE_AUTH_FILE="$tmp/open-token" "$BENCH" -s "$tmp/s.sock" -n 10 -t ping 2>"$tmp/err" >/dev/null
check "RCSTORE_AUTH_FILE is read" 2 $?
check "and checked the same way" 1 "$(grep -c 'chmod 600 it' "$tmp/err")"
chmod 600 "$tmp/open-token"
RCSTORE_AUTH_FILE="$tmp/open-token" "$BENCH" -s "$tmp/s.sock" -n 10 -t ping -q >/dev/null
check "a private token file is accepted" 0 $?
check "the server still answers" pong "$("$RCSTORE" -H "$addr" ping)"

# --user logs every connection in as a user of the server's --users-file.
printf 'bench-rw\n' >"$tmp/rw.tok"
printf 'bench-ro\n' >"$tmp/ro.tok"
chmod 600 "$tmp/rw.tok" "$tmp/ro.tok"
{
  "$RCSTORE" user-hash --name rw --role write <"$tmp/rw.tok"
  "$RCSTORE" user-hash --name ro --role read <"$tmp/ro.tok"
} >"$tmp/users.ini"
chmod 600 "$tmp/users.ini"
mkfifo "$tmp/ulog"
"$RCSTORED" --listen "unix://$tmp/u.sock" --users-file "$tmp/users.ini" 2>"$tmp/ulog" &
users_pid=$!
while read -r line; do
  case "$line" in *"listening on unix://"*) break ;; esac
done <"$tmp/ulog"
cat "$tmp/ulog" >"$tmp/ulog.txt" &
"$BENCH" -s "$tmp/u.sock" -c 2 -n 200 -t ping,create --user rw --auth-file "$tmp/rw.tok" -q \
  >/dev/null 2>"$tmp/err"
check "--user: a write user's create load runs" 0 $?
RCSTORE_USER=rw "$BENCH" -s "$tmp/u.sock" -c 2 -n 200 -t ping --auth-file "$tmp/rw.tok" -q \
  >/dev/null 2>"$tmp/err"
check "RCSTORE_USER is read" 0 $?
"$BENCH" -s "$tmp/u.sock" -c 2 -n 200 -t ping --user ro --auth-file "$tmp/rw.tok" -q \
  >/dev/null 2>"$tmp/err"
check "--user with another user's token fails" 1 "$([ $? -ne 0 ] && echo 1)"
"$BENCH" -s "$tmp/u.sock" -n 10 -t ping --user rw >/dev/null 2>&1
check "--user without --auth-file exits 2" 2 $?
kill $users_pid; wait $users_pid 2>/dev/null
exit $fail
