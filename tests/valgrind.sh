#!/usr/bin/env bash
# Runs every unit test under valgrind memcheck, built without the pool
# allocator (the valgrind preset) so that every block is visible. Fails on
# any error or any definitely or indirectly lost byte.
# usage: tests/valgrind.sh BUILD_DIR
set -uo pipefail
BUILD=$1
status=0
for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    case $(basename "$t") in test_server) continue ;; esac # integration: sockets, a child server
    if valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect \
        "$t" >"$t.valgrind.log" 2>&1; then
        echo "valgrind: $(basename "$t") clean"
    else
        echo "valgrind: $(basename "$t") FAILED; see $t.valgrind.log"
        tail -20 "$t.valgrind.log"
        status=1
    fi
done
exit $status
