#!/usr/bin/env bash
# Misconfigured starts of rcstored: each must exit with the documented
# status (2: the configuration is wrong; 1: a valid configuration the system
# refused; docs/operations.md, "Exit statuses"), never with a signal, and
# print exactly one line on stderr, "rcstored: " and the problem (one
# format for option, listen, token and metrics errors, printed whatever
# --log-level says). Then the unix socket of a live server (not taken over),
# SIGHUP (ignored), and host names and IPv6 in listen addresses.
set -u
RCSTORED=$1
tmp=$(mktemp -d)
fail=0
holder_pid=
trap 'kill $holder_pid 2>/dev/null; wait $holder_pid 2>/dev/null; rm -rf "$tmp"' EXIT

# Files the cases name.
printf 'tok\n' >"$tmp/token-open"
chmod 644 "$tmp/token-open"
printf 'tok\n' >"$tmp/token-group"
chmod 640 "$tmp/token-group"
: >"$tmp/token-empty"
chmod 600 "$tmp/token-empty"
printf '\n\n' >"$tmp/token-newlines"
chmod 600 "$tmp/token-newlines"
head -c 5000 /dev/zero | tr '\0' k >"$tmp/token-long"
chmod 600 "$tmp/token-long"
mkdir -m 700 "$tmp/token-dir"
printf 'max-refs = many\n' >"$tmp/bad.conf"
printf 'no equals sign here\n' >"$tmp/garbled.conf"
printf 'tok\n' >"$tmp/token-ok"
chmod 600 "$tmp/token-ok"
mkfifo -m 600 "$tmp/token-fifo"
: >"$tmp/not-a-socket"
printf 'auth-token-file = %s/nope\n' "$tmp" >"$tmp/token.conf"
printf 'unix-socket-mode = rw\n' >"$tmp/mode.conf"

# A port that something else listens on: a socket held by a child whose
# stdin we keep open; it prints the port once listening (an event, not a
# sleep).
coproc HOLDER { /usr/bin/python3 -c '
import socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
print(s.getsockname()[1], flush=True)
sys.stdin.read()
'; }
holder_pid=$HOLDER_PID
read -r busy <&"${HOLDER[0]}"

L="--listen tcp://127.0.0.1:0"
# name | expected status | a pattern stderr's one line must match | arguments
cases=(
  "token file missing|2|--auth-token-file $tmp/nope: No such file|$L --auth-token-file $tmp/nope"
  "token file world-readable|2|mode 0644); chmod 600 it|$L --auth-token-file $tmp/token-open"
  "token file group-readable|2|mode 0640); chmod 600 it|$L --auth-token-file $tmp/token-group"
  "token file empty|2|$tmp/token-empty: empty|$L --auth-token-file $tmp/token-empty"
  "token file only newlines|2|$tmp/token-newlines: empty|$L --auth-token-file $tmp/token-newlines"
  "token file too long|2|longer than 4096 bytes|$L --auth-token-file $tmp/token-long"
  "token file a directory|2|is a directory|$L --auth-token-file $tmp/token-dir"
  "listen malformed|2|cannot listen on tcp://nonsense: not tcp://HOST:PORT|--listen tcp://nonsense"
  "listen bad port|2|cannot listen on tcp://127.0.0.1:99999: not tcp://|--listen tcp://127.0.0.1:99999"
  "listen unknown scheme|2|cannot listen on udp://127.0.0.1:1: not tcp://|--listen udp://127.0.0.1:1"
  "unix socket directory missing|2|unix://$tmp/no/such/dir/s.sock: $tmp/no/such/dir does not exist (create it, or systemd's RuntimeDirectory= does)|--listen unix://$tmp/no/such/dir/s.sock"
  "unix socket directory a file|2|unix://$tmp/not-a-socket/s.sock: $tmp/not-a-socket is not a directory|--listen unix://$tmp/not-a-socket/s.sock"
  "unix socket mode not octal|2|rcstored: --unix-socket-mode 0689: not an octal mode from 0 to 0777|$L --unix-socket-mode 0689"
  "unix socket mode too wide|2|rcstored: --unix-socket-mode 1777: not an octal mode|$L --unix-socket-mode 1777"
  "unix socket mode in the config file|2|$tmp/mode.conf:1: unix-socket-mode = rw: not an octal mode|$L --config $tmp/mode.conf"
  "data directory's parent missing|2|rcstored: cannot create data directory $tmp/no/such/data: $tmp/no/such does not exist (create it, or systemd's StateDirectory= does)|$L --data-dir $tmp/no/such/data"
  "cluster data directory's parent missing|2|rcstored: cannot create data directory $tmp/no/node1: $tmp/no does not exist|$L --data-dir $tmp/no/node1 --node-id 1 --raft-listen 127.0.0.1:1"
  "unix socket path too long|2|unix socket path of 405 bytes; the limit is 107|--listen unix:///tmp/$(head -c 400 /dev/zero | tr '\0' x)"
  "unix socket path one past sun_path|2|unix socket path of 108 bytes; the limit is 107|--listen unix:///tmp/$(head -c 103 /dev/zero | tr '\0' x)"
  "unix socket path holds a file|2|$tmp/not-a-socket exists and is not a socket|--listen unix://$tmp/not-a-socket"
  "listen host does not resolve|2|cannot listen on tcp://no-such-host.invalid:7373: cannot resolve no-such-host.invalid|--listen tcp://no-such-host.invalid:7373"
  "token file a FIFO|2|$tmp/token-fifo: not a regular file|$L --auth-token-file $tmp/token-fifo"
  "token file named in the config file|2|$tmp/token.conf: auth-token-file = $tmp/nope: No such file|$L --config $tmp/token.conf"
  "config file a directory|2|rcstored: cannot read config file $tmp: it is a directory|$L --config $tmp"
  "metrics address not on this host|1|cannot serve metrics on tcp://192.0.2.1:9000: Cannot assign requested address|$L --metrics-listen tcp://192.0.2.1:9000"
  "failure printed with --log-level off|1|rcstored: cannot listen on tcp://127.0.0.1:$busy: address already in use|--log-level off --listen tcp://127.0.0.1:$busy"
  "metrics address malformed|2|--metrics-listen nonsense: expected tcp://|$L --metrics-listen nonsense"
  "port in use|1|cannot listen on tcp://127.0.0.1:$busy: address already in use|--listen tcp://127.0.0.1:$busy"
  "port in use, token fine|1|address already in use|--auth-token-file $tmp/token-ok --listen tcp://127.0.0.1:$busy"
  "address not on this host|1|cannot listen on tcp://192.0.2.1:7373: address not available|--listen tcp://192.0.2.1:7373"
  "metrics port in use|1|cannot serve metrics on tcp://127.0.0.1:$busy: Address already in use|$L --metrics-listen tcp://127.0.0.1:$busy"
  "unknown flag|2|rcstored: unknown option --frobnicate|$L --frobnicate"
  "flag without its value|2|rcstored: --max-refs needs a value|$L --max-refs"
  "stray argument|2|rcstored: unexpected argument extra|$L extra"
  "bad value|2|rcstored: --max-refs many: not a non-negative integer|$L --max-refs many"
  "value out of range|2|rcstored: --max-connections 0: out of range|$L --max-connections 0"
  "bad log level|2|rcstored: --log-level chatty: not one of|$L --log-level chatty"
  "limits that do not fit|2|--max-message-bytes 1024 is too small|$L --max-message-bytes 1k"
  "config file missing|2|cannot read config file $tmp/none.conf|$L --config $tmp/none.conf"
  "config file bad value|2|$tmp/bad.conf:1: max-refs = many: not a non-negative integer|$L --config $tmp/bad.conf"
  "config file garbled|2|$tmp/garbled.conf:1: not a setting|$L --config $tmp/garbled.conf"
)

for c in "${cases[@]}"; do
  IFS='|' read -r name want pattern args <<<"$c"
  # shellcheck disable=SC2086 # args is a word list on purpose
  timeout 20 "$RCSTORED" $args 2>"$tmp/err" >/dev/null </dev/null
  got=$?
  lines=$(wc -l <"$tmp/err")
  if [ "$got" != "$want" ]; then
    echo "FAIL $name: exit status $got, expected $want$([ "$got" -gt 128 ] && echo " (signal $((got - 128)))")"
    sed 's/^/     stderr: /' "$tmp/err"
    fail=1
  elif [ "$lines" != 1 ] || ! grep -qF -- "$pattern" "$tmp/err" || ! grep -q '^rcstored: ' "$tmp/err"; then
    echo "FAIL $name: expected one stderr line \"rcstored: ...\" with [$pattern], got $lines:"
    sed 's/^/     stderr: /' "$tmp/err"
    fail=1
  else
    echo "ok   $name: $want, $(cat "$tmp/err")"
  fi
done

# The environment is a configuration source like the others.
RCSTORED_MAX_REFS=many timeout 20 "$RCSTORED" $L 2>"$tmp/err" >/dev/null </dev/null
got=$?
if [ "$got" = 2 ] && [ "$(wc -l <"$tmp/err")" = 1 ] && grep -qF "RCSTORED_MAX_REFS=many" "$tmp/err"; then
  echo "ok   bad environment variable: 2"
else
  echo "FAIL bad environment variable: status $got"
  cat "$tmp/err"
  fail=1
fi

# The token file named by the environment: the message says so.
RCSTORED_AUTH_TOKEN_FILE="$tmp/nope" timeout 20 "$RCSTORED" $L 2>"$tmp/err" >/dev/null </dev/null
got=$?
if [ "$got" = 2 ] && [ "$(wc -l <"$tmp/err")" = 1 ] &&
  grep -qF "rcstored: RCSTORED_AUTH_TOKEN_FILE=$tmp/nope: No such file" "$tmp/err"; then
  echo "ok   token file from the environment: 2, $(cat "$tmp/err")"
else
  echo "FAIL token file from the environment: status $got"
  cat "$tmp/err"
  fail=1
fi

# Start a server with its log on a fifo; wait for its "ready" line (an
# event, not a sleep). Sets pid; the log goes on into $tmp/NAME.log.
start() { # start NAME ARGS...
  local name=$1 line
  shift
  mkfifo "$tmp/$name.fifo"
  "$RCSTORED" "$@" 2>"$tmp/$name.fifo" >/dev/null </dev/null &
  pid=$!
  exec 4<"$tmp/$name.fifo"
  : >"$tmp/$name.log"
  while read -r line <&4; do
    echo "$line" >>"$tmp/$name.log"
    case "$line" in *" ready "*) break ;; esac
  done
  cat <&4 >>"$tmp/$name.log" &
  exec 4<&-
}
ping_unix() { # ping_unix PATH: 0 when a server answers a ping there
  /usr/bin/python3 - "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
# msgpack-rpc request [0, 1, "ping", []]
s.sendall(bytes([0x94, 0x00, 0x01, 0xa4]) + b"ping" + bytes([0x90]))
reply = s.recv(64)
sys.exit(0 if reply[:1] == bytes([0x94]) and reply[1] == 1 else 1)
PY
}
expect() { # expect NAME CONDITION-STATUS
  if [ "$2" = 0 ]; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi
}

# A second server on the unix socket of a live one: refused with status 1
# and one line; the first keeps its socket and still answers.
sock="$tmp/live.sock"
start live --listen "unix://$sock"
live_pid=$pid
timeout 20 "$RCSTORED" --listen "unix://$sock" 2>"$tmp/err" >/dev/null </dev/null
got=$?
if [ "$got" = 1 ] && [ "$(wc -l <"$tmp/err")" = 1 ] &&
  grep -qF "rcstored: cannot listen on unix://$sock: unix socket $sock is in use by another server" "$tmp/err"; then
  echo "ok   unix socket of a live server: 1, $(cat "$tmp/err")"
else
  echo "FAIL unix socket of a live server: status $got"
  cat "$tmp/err"
  fail=1
fi
[ -S "$sock" ]
expect "the live server's socket is still there" $?
ping_unix "$sock"
expect "the live server still answers on it" $?

# SIGHUP: logged and ignored; the server answers, then SIGTERM stops it
# cleanly (status 0) and it removes its socket.
kill -HUP "$live_pid"
ping_unix "$sock"
expect "SIGHUP: the server still answers" $?
kill -TERM "$live_pid"
wait "$live_pid"
expect "SIGTERM after SIGHUP: status 0" $?
grep -qF "SIGHUP ignored: rcstored has nothing to reload" "$tmp/live.log"
expect "SIGHUP: logged" $?
[ ! -e "$sock" ]
expect "a clean stop removes its socket" $?

# A stale socket (its server gone) is replaced.
/usr/bin/python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$sock"
start stale --listen "unix://$sock"
ping_unix "$sock"
expect "a stale socket is replaced" $?
kill -TERM "$pid"
wait "$pid"

# --unix-socket-mode: the socket gets the mode whatever the umask (the unit's
# UMask=0077 would leave srwx------, which only its owner can use); without
# it, the umask decides. Also from the config file, and in the ready log.
umask_was=$(umask)
umask 077
start mode --listen "unix://$tmp/mode.sock" --unix-socket-mode 0660
check_mode() { # check_mode NAME EXPECTED PATH
  local got
  got=$(stat -c %a "$3")
  if [ "$got" = "$2" ]; then echo "ok   $1: $got"; else echo "FAIL $1: mode $got, expected $2"; fail=1; fi
}
check_mode "--unix-socket-mode 0660 under umask 077" 660 "$tmp/mode.sock"
grep -qF "listening on unix://$tmp/mode.sock (mode 0660)" "$tmp/mode.log"
expect "the listening line says the mode" $?
kill -TERM "$pid"
wait "$pid"
printf 'unix-socket-mode = 0666\n' >"$tmp/mode666.conf"
start mode666 --listen "unix://$tmp/mode.sock" --config "$tmp/mode666.conf"
check_mode "unix-socket-mode = 0666 in the config file" 666 "$tmp/mode.sock"
kill -TERM "$pid"
wait "$pid"
start umask --listen "unix://$tmp/mode.sock"
check_mode "no --unix-socket-mode: the umask's" 700 "$tmp/mode.sock"
kill -TERM "$pid"
wait "$pid"
umask "$umask_was"

# Host names resolve (the first IPv4 address), and the metrics endpoint
# takes IPv6 like --listen does (where this host has ::1).
if /usr/bin/python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null; then
  start names --listen tcp://localhost:0 --metrics-listen "tcp://[::1]:0"
  grep -q 'metrics on http://\[::1\]:[0-9]*/metrics' "$tmp/names.log"
  expect "--metrics-listen tcp://[::1]:0" $?
else
  echo "skip --metrics-listen tcp://[::1]:0: no IPv6 loopback here"
  start names --listen tcp://localhost:0
fi
grep -q "listening on tcp://127.0.0.1:" "$tmp/names.log"
expect "--listen tcp://localhost:0 binds 127.0.0.1" $?
kill -TERM "$pid"
wait "$pid"

exit $fail
