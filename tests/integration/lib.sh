# lib.sh: shared by the shell integration tests. Source it after setting
# RCSTORED. It makes $tmp (removed at exit, with the server), starts rcstored
# on a free TCP port and a unix socket ($tmp/s.sock), and waits for its
# "listening" lines on a fifo (an event, not a sleep): $addr is HOST:PORT.
# check NAME EXPECTED ACTUAL prints ok/FAIL and sets fail=1 on a mismatch.
tmp=$(mktemp -d)
fail=0
srv_pid=
trap 'kill $srv_pid 2>/dev/null; wait $srv_pid 2>/dev/null; rm -rf "$tmp"' EXIT

mkfifo "$tmp/log"
"$RCSTORED" --listen tcp://127.0.0.1:0 --listen "unix://$tmp/s.sock" 2>"$tmp/log" &
srv_pid=$!
exec 3<"$tmp/log"
addr=""
while read -r line <&3; do
  case "$line" in
    *"listening on tcp://"*) addr=${line##*tcp://} ;;
    *"listening on unix://"*) break ;;
  esac
done
cat <&3 >/dev/null &

check() { # check NAME EXPECTED ACTUAL
  if [ "$2" != "$3" ]; then
    echo "FAIL $1: expected [$2], got [$3]"
    fail=1
  else
    echo "ok   $1"
  fi
}
