#!/usr/bin/env bash
# Install the build into a temporary prefix and check the tree; build
# deploy/examples/hello.c against it three ways (pkg-config; find_package
# with the shared and with the static library) and run each against a live
# rcstored from the same tree.
set -eu
BUILD=$1
SRC=$2
tmp=$(mktemp -d)
trap 'kill $srv_pid 2>/dev/null; wait $srv_pid 2>/dev/null; rm -rf "$tmp"' EXIT
srv_pid=0
cmake --install "$BUILD" --prefix "$tmp/prefix" >/dev/null
export PKG_CONFIG_PATH=$(dirname "$(find "$tmp/prefix" -name rcstore.pc)")
for f in bin/rcstored bin/rcstore bin/rcstore-bench include/rcstore.h \
         share/man/man8/rcstored.8 share/man/man1/rcstore.1 share/man/man1/rcstore-bench.1 \
         share/doc/rcstore/rcstored.conf; do
  test -e "$tmp/prefix/$f" || { echo "FAIL: $f not installed"; exit 1; }
done
ls "$tmp"/prefix/lib*/librcstore.a "$tmp"/prefix/lib*/librcstore.so.0 >/dev/null
# The units start the installed binary, wherever --prefix put it.
for u in rcstored.service rcstored@.service; do
  grep -q "^ExecStart=$tmp/prefix/bin/rcstored " "$tmp/prefix/lib/systemd/system/$u" ||
    { echo "FAIL: $u does not start $tmp/prefix/bin/rcstored"; grep ExecStart "$tmp/prefix/lib/systemd/system/$u"; exit 1; }
done
# As a package build installs: the real prefix /usr, into a DESTDIR. The
# units name /usr/bin/rcstored, which is there (test_deploy.py verifies
# these files with systemd-analyze --root and runs the ExecStart).
DESTDIR="$tmp/root" cmake --install "$BUILD" --prefix /usr >/dev/null
for u in rcstored.service rcstored@.service; do
  grep -q "^ExecStart=/usr/bin/rcstored " "$tmp/root/usr/lib/systemd/system/$u" ||
    { echo "FAIL: $u (DESTDIR, --prefix /usr) does not start /usr/bin/rcstored"; grep ExecStart "$tmp/root/usr/lib/systemd/system/$u"; exit 1; }
done
test -x "$tmp/root/usr/bin/rcstored" || { echo "FAIL: no /usr/bin/rcstored in the DESTDIR"; exit 1; }
# find_package(rcstore): the shared and the static library.
mkdir "$tmp/cm"
cat >"$tmp/cm/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.20)
project(hello C)
find_package(rcstore 0.1 REQUIRED)
add_executable(hello_shared $SRC/deploy/examples/hello.c)
target_link_libraries(hello_shared PRIVATE rcstore::rcstore)
add_executable(hello_static $SRC/deploy/examples/hello.c)
target_link_libraries(hello_static PRIVATE rcstore::rcstore_static)
EOF
cmake -S "$tmp/cm" -B "$tmp/cm/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/cm/build" >/dev/null
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
for prog in hello cm/build/hello_shared cm/build/hello_static; do
  "$tmp/prefix/bin/rcstore" -H "$addr" unbind examples/hello >/dev/null 2>&1 || true
  out=$("$tmp/$prog" "$addr")
  echo "$out"
  case "$out" in *'holds "hello" (refcount 2)'*) echo "ok installed tree: $prog" ;;
    *) echo "FAIL: unexpected output from $prog"; exit 1 ;; esac
done
