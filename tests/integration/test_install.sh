#!/usr/bin/env bash
# Install the build into a temporary prefix, build deploy/examples/hello.c
# against it with pkg-config only, and run it against a live rcstored.
set -eu
BUILD=$1
SRC=$2
tmp=$(mktemp -d)
trap 'kill $srv_pid 2>/dev/null; wait $srv_pid 2>/dev/null; rm -rf "$tmp"' EXIT
srv_pid=0
cmake --install "$BUILD" --prefix "$tmp/prefix" >/dev/null
export PKG_CONFIG_PATH=$(dirname "$(find "$tmp/prefix" -name rcstore.pc)")
test -f "$tmp/prefix/include/rcstore.h"
cc "$SRC/deploy/examples/hello.c" $(pkg-config --cflags --libs rcstore) \
   -Wl,-rpath,"$(pkg-config --variable=libdir rcstore)" -o "$tmp/hello"
mkfifo "$tmp/log"
"$tmp/prefix/bin/rcstored" --listen tcp://127.0.0.1:0 2>"$tmp/log" &
srv_pid=$!
addr=""
while read -r line; do
  case "$line" in *"listening on tcp://"*) addr=${line##*listening on }; break ;; esac
done <"$tmp/log"
cat "$tmp/log" >/dev/null &
out=$("$tmp/hello" "$addr")
echo "$out"
case "$out" in *'holds "hello" (refcount 2)'*) echo "ok install + pkg-config example" ;;
  *) echo "FAIL: unexpected output"; exit 1 ;; esac
