#!/usr/bin/env bash
# Integration test of the rcstore CLI against a real rcstored on port 0:
# output formats, data sources, exit statuses, and the interactive shell.
set -u
RCSTORED=$1
RCSTORE=$2
. "$(dirname "$0")/lib.sh"

R() { "$RCSTORE" -H "$addr" "$@"; }

# A bare create's object dies with the command's session; --name keeps it.
id=$(R create hello)
check "create prints an id" 1 "$([[ $id =~ ^[0-9]+$ ]] && echo 1)"
R get "$id" >/dev/null 2>&1
check "object of an ended session is gone" 1 $?

id=$(R create world --name greeting)
check "lookup finds the bound name" "$id" "$(R lookup greeting)"
check "get --raw prints data" "world" "$(R get "$id" --raw)"
check "get --json (data in base64)" "{\"id\": $id, \"data\": \"d29ybGQ=\", \"refs\": [], \"refcount\": 1}" \
  "$(R --json get "$id")"
check "names lists it" "$(printf 'greeting\t%s' "$id")" "$(R names gree)"

# Data from --file and from stdin; binary data survives.
printf 'from\0file' >"$tmp/data"
fid=$(R create --file "$tmp/data" "$id" --name f)
cmp -s <(R get "$fid" --raw) "$tmp/data"
check "--file data round-trips bytes" 0 $?
sid=$(echo -n piped | R create --name p)
check "stdin data" "piped" "$(R get "$sid" --raw)"
check "refs given after data" "[$id]" "$(R --json get "$fid" | sed 's/.*"refs": \(\[[^]]*\]\).*/\1/')"
check "referrers" "$fid" "$(R referrers "$id")"
check "stat names" 1 "$(R stat "$id" | awk '$1 == "names:" {print $2}')"

# names past what one request may return (10,000): the CLI pages by itself.
# The names are bound over the wire in pipelined batches (a CLI call each
# would take minutes).
PYTHONPATH="$(dirname "$0")" /usr/bin/python3 - "$addr" <<'PY'
import sys
from rcswire import Conn
host, port = sys.argv[1].rsplit(":", 1)
c = Conn((host, int(port)))
z = c.ok("create", b"z")
for i in range(0, 20050, 2000):
    for k in range(i, min(i + 2000, 20050)):
        c.send("bind", "pg/%05d" % k, z)
    for k in range(i, min(i + 2000, 20050)):
        assert c.reply()[2] is None
PY
check "names pages past the server's bound" "20050 pg/00000 pg/20049" \
  "$(R names pg/ | awk '{n++; l = $1} NR == 1 {f = $1} END {print n, f, l}')"
check "names --limit over pages" "15000 pg/14999" \
  "$(R names pg/ --limit 15000 | awk '{n++; l = $1} END {print n, l}')"
check "names --json over pages" 20050 \
  "$(R --json names pg/ | /usr/bin/python3 -c 'import json, sys; print(len(json.load(sys.stdin)))')"

# The unix socket works too.
check "unix socket ping" "pong" "$("$RCSTORE" -s "$tmp/s.sock" ping)"

# Exit statuses: 1 for a server error (message on stderr), 2 for usage and
# connection problems.
R decref "$id" 2>"$tmp/err"
check "decref not held exits 1" 1 $?
check "server message on stderr" 1 "$(grep -c NOT_HELD "$tmp/err")"
R get 99999999 2>/dev/null
check "not found exits 1" 1 $?
R frobnicate 2>/dev/null
check "unknown command exits 2" 2 $?
R get notanumber 2>/dev/null
check "bad id exits 2" 2 $?
R incref "$id" 0 2>"$tmp/err"
check "a zero count exits 2" 2 $?
check "... and says it is the count" 1 "$(grep -c 'not a count' "$tmp/err")"
"$RCSTORE" -H 127.0.0.1:1 ping 2>/dev/null
check "connection refused exits 2" 2 $?
# Every method the server's table has (the keys of stats.ops, less the
# debug ones) is a command of the CLI, spelt with dashes, and --help lists it.
methods=$(R --json stats | /usr/bin/python3 -c 'import json, sys
print(" ".join(m.replace("_", "-") for m in json.load(sys.stdin)["ops"] if not m.startswith("debug")))')
help=$("$RCSTORE" --help)
missing=""
for m in $methods; do
  grep -qE "^  $m( |\$)" <<<"$help" || missing="$missing $m"
done
check "the server lists its methods" 1 "$([ "$(wc -w <<<"$methods")" -ge 20 ] && echo 1)"
check "--help lists every method" "" "$missing"

# watch waits for the free: unbinding in another command triggers it.
wid=$(R create doomed --name doomed)
R watch "$wid" --timeout 30 >"$tmp/watch" &
watch_pid=$!
# The watch is registered once a second watcher sees it in stats' ops count
# (polled, with a bound: no client hears of another's watch).
for ((i = 0; i < 3000; i++)); do
  [ "$(R --json stats | grep -o '"watch": [0-9]*' | grep -o '[0-9]*$')" -ge 1 ] && break
  sleep 0.01
done
check "the watch was registered" 1 "$([ "$i" -lt 3000 ] && echo 1)"
R unbind doomed >/dev/null
wait $watch_pid
check "watch prints the free" "freed $wid (refcount)" "$(cat "$tmp/watch")"

# The shell keeps one session across commands, so holds persist in it.
out=$(printf 'incref %s 2\nincref %s\nstat %s\ndecref %s 5\nping\nquit\n' "$id" "$id" "$id" "$id" \
  | R 2>"$tmp/shell_err")
check "shell: holds persist across commands" 3 "$(echo "$out" | awk '$1 == "holds:" {print $2}')"
check "shell: errors do not end it" "pong" "$(echo "$out" | tail -1)"
check "shell: error reported" 1 "$(grep -c NOT_HELD "$tmp/shell_err")"

# share prints a hex token that claim takes, in another session.
sh_id=$(R create shared --name shared)
tok=$(R share "$sh_id")
check "share prints a hex token" 1 "$([[ $tok =~ ^[0-9a-f]{32}$ ]] && echo 1)"
check "claim takes it" "$sh_id" "$(R claim "$tok")"
R claim "$tok" 2>/dev/null
check "claim twice exits 1" 1 $?

# why prints the chain from the root.
leaf=$(R create leaf --name why-leaf)
mid=$(R create mid "$leaf" --name why-mid)
R unbind why-leaf >/dev/null
check "why prints the chain" "name \"why-mid\" -> $mid -> $leaf" "$(R why "$leaf")"

# --auth-file authenticates against a server with --auth-token-file.
printf 'cli-token\n' >"$tmp/token"
chmod 600 "$tmp/token"
mkfifo "$tmp/alog"
"$RCSTORED" --listen tcp://127.0.0.1:0 --auth-token-file "$tmp/token" 2>"$tmp/alog" &
auth_pid=$!
while read -r line; do
  case "$line" in *"listening on tcp://"*) aaddr=${line##*tcp://}; break ;; esac
done <"$tmp/alog"
cat "$tmp/alog" >/dev/null &
"$RCSTORE" -H "$aaddr" create x 2>/dev/null
check "auth: refused without a token" 1 $?
check "auth: --auth-file works" 1 "$("$RCSTORE" -H "$aaddr" --auth-file "$tmp/token" create x | grep -c '^[0-9]')"
printf 'wrong\n' >"$tmp/wrong"
chmod 600 "$tmp/wrong"
"$RCSTORE" -H "$aaddr" --auth-file "$tmp/wrong" ping 2>/dev/null
check "auth: a wrong token exits 1" 1 $?
# The token file is read as the server reads it (common/secret).
chmod 640 "$tmp/wrong"
"$RCSTORE" -H "$aaddr" --auth-file "$tmp/wrong" ping 2>"$tmp/err"
check "auth: a group-readable --auth-file exits 2" 2 $?
check "auth: and says how to fix it" 1 "$(grep -c 'mode 0640); chmod 600 it' "$tmp/err")"
: >"$tmp/empty"
chmod 600 "$tmp/empty"
"$RCSTORE" -H "$aaddr" --auth-file "$tmp/empty" ping 2>"$tmp/err"
check "auth: an empty --auth-file exits 2" 2 $?
kill $auth_pid; wait $auth_pid 2>/dev/null

# Users (--users-file): user-hash writes the file's sections, --user with
# --auth-file (or RCSTORE_USER / RCSTORE_AUTH_FILE) logs in.
printf 'ro-token\n' >"$tmp/ro.tok"
printf 'rw-token\n' >"$tmp/rw.tok"
chmod 600 "$tmp/ro.tok" "$tmp/rw.tok"
check "user-hash is the token's SHA-256, newline dropped" \
  "token-sha256 = $(printf 'ro-token' | sha256sum | cut -d' ' -f1)" \
  "$("$RCSTORE" user-hash <"$tmp/ro.tok")"
check "user-hash --name --role prints a section and a blank line" \
  "[user ro]|token-sha256 = $(printf 'ro-token' | sha256sum | cut -d' ' -f1)|role = read|" \
  "$("$RCSTORE" user-hash --name ro --role read <"$tmp/ro.tok" | paste -sd'|')"
"$RCSTORE" user-hash --name ro </dev/null 2>/dev/null
check "user-hash: --name without --role exits 2" 2 $?
"$RCSTORE" user-hash --name x --role root <"$tmp/ro.tok" 2>/dev/null
check "user-hash: a bad role exits 2" 2 $?
{
  "$RCSTORE" user-hash --name ro --role read <"$tmp/ro.tok"
  echo "names = jobs/"
  "$RCSTORE" user-hash --name rw --role write <"$tmp/rw.tok"
} >"$tmp/users.ini"
chmod 600 "$tmp/users.ini"
mkfifo "$tmp/ulog"
"$RCSTORED" --listen tcp://127.0.0.1:0 --users-file "$tmp/users.ini" 2>"$tmp/ulog" &
users_pid=$!
while read -r line; do
  case "$line" in *"listening on tcp://"*) uaddr=${line##*tcp://}; break ;; esac
done <"$tmp/ulog"
cat "$tmp/ulog" >/dev/null &
U() { "$RCSTORE" -H "$uaddr" "$@"; }
jid=$(U --user rw --auth-file "$tmp/rw.tok" create job --name jobs/a)
check "users: a write user creates and binds" 1 "$([[ $jid =~ ^[0-9]+$ ]] && echo 1)"
U --user ro --auth-file "$tmp/ro.tok" create x 2>"$tmp/err"
check "users: a read user's create exits 1" 1 $?
check "users: ... with PERMISSION_DENIED" 1 "$(grep -c '^rcstore: PERMISSION_DENIED: ' "$tmp/err")"
check "users: a read user looks up inside its prefix" "$jid" \
  "$(U --user ro --auth-file "$tmp/ro.tok" lookup jobs/a)"
check "users: RCSTORE_USER and RCSTORE_AUTH_FILE" "ro read" \
  "$(RCSTORE_USER=ro RCSTORE_AUTH_FILE="$tmp/ro.tok" U --json hello |
    /usr/bin/python3 -c 'import json, sys; h = json.load(sys.stdin); print(h["user"], h["role"])')"
U --user rw --auth-file "$tmp/ro.tok" ping 2>"$tmp/err"
check "users: another user's token exits 1" 1 $?
check "users: ... with AUTH_FAILED" 1 "$(grep -c '^rcstore: AUTH_FAILED' "$tmp/err")"
U --user rw ping 2>/dev/null
check "users: --user without --auth-file exits 2" 2 $?
kill $users_pid; wait $users_pid 2>/dev/null

# Sessions shared by consecutive commands through a session file.
export RCSTORE_SESSION_FILE="$tmp/session"
R session start --ttl 1h >/dev/null
check "session file is private" 600 "$(stat -c %a "$tmp/session")"
sid=$(R create "lives on")
check "a session's holds outlive the command" "holds:      1" "$(R stat "$sid" | grep '^holds')"
check "later commands share them" 0 "$(R decref "$sid")"
sid2=$(R create "released at end")
R session end >/dev/null
R get "$sid2" >/dev/null 2>&1
check "session end releases its holds" 1 $?
check "session end removes the file" no "$(test -e "$tmp/session" && echo yes || echo no)"
# A lease that expires: the next command says so and fails.
R session start --ttl 1s >/dev/null
eid=$(R create "expires")
unset RCSTORE_SESSION_FILE
R watch "$eid" --timeout 30 >"$tmp/expired"
check "expiry frees the session's objects" "freed $eid (refcount)" "$(cat "$tmp/expired")"
RCSTORE_SESSION_FILE="$tmp/session" R ping 2>"$tmp/experr"
check "an expired session fails loudly" 1 $?
check "and says it expired" 1 "$(grep -c expired "$tmp/experr")"

check "gc --json has collected" 1 "$(R --json gc | grep -c '"collected"')"
check "stats has six sections" 6 "$(R stats | grep -cE '^(server|heap|memory|gc|sessions|ops):$')"

exit $fail
