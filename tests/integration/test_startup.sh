#!/usr/bin/env bash
# Misconfigured starts of rcstored: each must exit with the documented
# status (2: the configuration is wrong; 1: a valid configuration the system
# refused; docs/operations.md, "Exit statuses"), never with a signal, and
# print exactly one line on stderr, naming the problem.
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
  "unix socket directory missing|2|unix://$tmp/no/such/dir/s.sock: its directory does not exist|--listen unix://$tmp/no/such/dir/s.sock"
  "unix socket path too long|2|not tcp://HOST:PORT or unix:///PATH|--listen unix://$tmp/$(head -c 300 /dev/zero | tr '\0' x)"
  "metrics address malformed|2|--metrics-listen nonsense: expected tcp://|$L --metrics-listen nonsense"
  "port in use|1|cannot listen on tcp://127.0.0.1:$busy: address already in use|--listen tcp://127.0.0.1:$busy"
  "port in use, token fine|1|address already in use|--auth-token-file $tmp/token-ok --listen tcp://127.0.0.1:$busy"
  "address not on this host|1|cannot listen on tcp://192.0.2.1:7373: address not available|--listen tcp://192.0.2.1:7373"
  "metrics port in use|1|cannot serve metrics on tcp://127.0.0.1:$busy|$L --metrics-listen tcp://127.0.0.1:$busy"
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
  elif [ "$lines" != 1 ] || ! grep -qF -- "$pattern" "$tmp/err"; then
    echo "FAIL $name: expected one stderr line with [$pattern], got $lines:"
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

exit $fail
