#!/usr/bin/env bash
# Integration test of rcstore-bench against a real rcstored: every test runs
# and reports, the CSV has redis-benchmark's exact columns, the JSON parses,
# the unix socket works, bad flags are refused, and the load leaves nothing
# behind: once its connections are gone (and a gc has taken the cycle test's
# garbage), the heap holds no object. Then redis-benchmark's habits: host
# names (-h localhost; a resolver failure in its own words), a bad option in
# one line and a hint, --precision, -k 0 (a connection per round of -P,
# counted by the server), and a server that requires a login (the token from
# RCSTORE_AUTH_FILE, --auth-file or -a).
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

# redis-benchmark habits (issue 18).
stat_of() { # stat_of SECTION KEY: a number from the server's stats
  "$RCSTORE" -H "$addr" --json stats | /usr/bin/python3 -c \
    'import json, sys; print(json.load(sys.stdin)[sys.argv[1]][sys.argv[2]])' "$1" "$2"
}
# Host names, resolved with getaddrinfo: -h localhost, and in -H.
out=$("$BENCH" -h localhost -p "$port" -c 2 -n 200 -t ping -q 2>&1)
check "-h localhost" 1 "$([[ $out =~ ^PING:\ [0-9.]+\ requests\ per\ second ]] && echo 1)"
"$BENCH" -H "localhost:$port" -c 2 -n 200 -t ping -q >/dev/null 2>&1
check "-H localhost:PORT" 0 $?
# A name that does not resolve: the resolver's words, one line, status 2.
"$BENCH" -h nohost.invalid -n 10 -t ping >/dev/null 2>"$tmp/err"
check "-h nohost.invalid exits 2" 2 $?
check "and says the resolver's error, in one line" "1 1 0" \
  "$(wc -l <"$tmp/err") $(grep -c '^rcstore-bench: cannot resolve nohost.invalid: ..*' "$tmp/err") $(grep -c 'Success' "$tmp/err")"

# A bad option: one line and a hint, not the whole help; status 2.
for bad in "--bogus" "-x" "-h" "-k 2" "--precision 10" "-c"; do
  # shellcheck disable=SC2086 # bad is a word list on purpose
  "$BENCH" $bad >"$tmp/out" 2>"$tmp/err"
  check "bad option [$bad]: status 2, nothing on stdout, two lines: what and the hint" \
    "2 0 2 Try 'rcstore-bench --help' for more information." \
    "$? $(wc -c <"$tmp/out") $(wc -l <"$tmp/err") $(tail -1 "$tmp/err")"
done
"$BENCH" -h 2>&1 | grep -q -- "-h needs a host (the help is --help)"
check "-h alone points at --help" 0 $?
"$BENCH" -h -p "$port" 2>&1 | grep -q -- "-h needs a host"
check "-h -p PORT: -h has no host" 0 $?

# --precision N: every latency figure with N decimals.
out=$("$BENCH" -h "$host" -p "$port" -c 2 -n 300 -t ping -q --precision 5)
check "--precision 5 with -q" 1 "$([[ $out =~ p50=[0-9]+\.[0-9]{5}\ msec$ ]] && echo 1)"
"$BENCH" -h "$host" -p "$port" -c 2 -n 300 -t ping,get --csv --precision 1 >"$tmp/csv1"
check "--precision 1 in the CSV: 6 latency columns of one decimal, rps of two" 2 \
  "$(tail -n +2 "$tmp/csv1" | grep -cE '^"[A-Z]+","[0-9]+\.[0-9]{2}"(,"[0-9]+\.[0-9]"){6}$')"
out=$("$BENCH" -h "$host" -p "$port" -c 2 -n 300 -t ping --precision 0)
check "--precision 0 in the summary: whole milliseconds" 1 \
  "$(echo "$out" | grep -A1 'p99.9' | tail -1 | grep -cE '^ +([0-9]+ +){6}[0-9]+$')"

# -k 0: a new connection for every -P requests (the server counts them);
# -k 1 (the default) keeps one per client.
before=$(stat_of server connections_total)
"$BENCH" -h "$host" -p "$port" -c 2 -n 100 -t ping -q -k 0 >/dev/null
check "-k 0 ping" 0 $?
after=$(stat_of server connections_total)
check "-k 0 -P 1: a connection per request (100 requests, 2 clients: 102)" 102 $((after - before - 1))
before=$after
"$BENCH" -h "$host" -p "$port" -c 2 -n 100 -P 5 -t ping -q -k 0 >/dev/null
after=$(stat_of server connections_total)
# 20 rounds of 5, and each client's last connection, which finds the work
# over; or one fewer, when a client's last round was cut short by it.
n=$((after - before - 1))
check "-k 0 -P 5: a connection per 5 requests (21 or 22, got $n)" 1 "$([ $n -ge 21 ] && [ $n -le 22 ] && echo 1)"
before=$after
"$BENCH" -h "$host" -p "$port" -c 2 -n 100 -t ping -q -k 1 >/dev/null
after=$(stat_of server connections_total)
check "-k 1: one connection per client" 2 $((after - before - 1))
# Every test with -k 0: exact counts, no error; the session of the tests
# whose objects outlive a connection is resumed; nothing is left behind.
resumed=$(stat_of sessions resumed)
"$BENCH" -s "$tmp/s.sock" -c 3 -P 2 -n 300 -r 30 -t "$all" -k 0 --json >"$tmp/k0"
check "-k 0 every test" 0 $?
# (mixed's churn counts a create and its decref per unit: 300 or more.)
check "-k 0: counts exact, no errors, keepalive 0" \
  "ping 300 0 0|create 300 0 0|get 300 0 0|incref 300 0 0|decref 300 0 0|link 300 0 0|churn 300 0 0|cycle 300 0 0|mixed 300+ 0 0" \
  "$(/usr/bin/python3 -c '
import json, sys
print("|".join("%s %s %d %d" % (r["test"], "300+" if r["test"] == "mixed" and r["requests"] >= 300
                                else r["requests"], r["errors"] + r["lost"], r["keepalive"])
               for r in json.load(open(sys.argv[1]))))' "$tmp/k0")"
check "-k 0: sessions were resumed" 1 "$([ "$(stat_of sessions resumed)" -gt "$resumed" ] && echo 1)"
check "-k 0 left no object behind" 0 "$(objects)"

# A server that requires a login: every test, ping included, with the
# token of RCSTORE_AUTH_FILE, of --auth-file, or of -a (with a warning).
printf 'bench-token\n' >"$tmp/auth.tok"
chmod 600 "$tmp/auth.tok"
mkfifo "$tmp/alog"
"$RCSTORED" --listen tcp://127.0.0.1:0 --auth-token-file "$tmp/auth.tok" 2>"$tmp/alog" &
auth_pid=$!
while read -r line; do
  case "$line" in *"listening on tcp://"*) aaddr=${line##*tcp://}; break ;; esac
done <"$tmp/alog"
cat "$tmp/alog" >/dev/null &
RCSTORE_AUTH_FILE="$tmp/auth.tok" "$BENCH" -h "${aaddr%:*}" -p "${aaddr##*:}" -c 2 -n 200 -r 20 \
  -t "$all" --csv >"$tmp/acsv" 2>"$tmp/err"
check "auth server, RCSTORE_AUTH_FILE: every test runs" "0 9" "$? $(tail -n +2 "$tmp/acsv" | wc -l)"
"$BENCH" -h "${aaddr%:*}" -p "${aaddr##*:}" -c 2 -n 200 -t ping -k 0 --auth-file "$tmp/auth.tok" \
  -q >/dev/null 2>&1
check "auth server, --auth-file, -k 0 ping" 0 $?
"$BENCH" -h "${aaddr%:*}" -p "${aaddr##*:}" -c 2 -n 200 -t ping,get -a bench-token -q \
  >/dev/null 2>"$tmp/err"
check "auth server, -a TOKEN" 0 $?
check "-a warns that the command line is visible" 1 \
  "$(grep -c 'warning: a token on the command line (-a) may be seen by other users' "$tmp/err")"
"$BENCH" -h "${aaddr%:*}" -p "${aaddr##*:}" -n 10 -t ping -q >/dev/null 2>"$tmp/err"
check "auth server without a token: status 2" 2 $?
check "and the server's AUTH_REQUIRED is shown" 1 "$(grep -c 'AUTH_REQUIRED' "$tmp/err")"
check "... with a line saying what to give" 1 \
  "$(grep -cx 'rcstore-bench: give --user NAME --auth-file FILE (or RCSTORE_USER and RCSTORE_AUTH_FILE)' "$tmp/err")"
"$BENCH" -h "${aaddr%:*}" -p "${aaddr##*:}" -n 10 -t ping -a wrong-token -q >/dev/null 2>&1
check "auth server, a wrong -a: status 2" 2 $?
"$BENCH" -a x --auth-file "$tmp/auth.tok" -n 10 -t ping >/dev/null 2>&1
check "-a and --auth-file together: usage error" 2 $?
kill $auth_pid; wait $auth_pid 2>/dev/null
exit $fail
